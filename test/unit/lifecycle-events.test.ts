/**
 * Lifecycle events: what a batch keeps (bounded fields, never the body), when a failed record is
 * reported Rejected or Dead-Lettered, and how the publisher puts a batch with the real EventBridge
 * client against the PutEvents stand-in — grouped by 10, failed calls and failed entries retried,
 * never throwing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnvelopeError, PolicyError, SerializationError, PublishError } from "../../sdk/errors.js";
import { EVENT_SOURCE, EventBusPublisher, LifecycleBatch, MAX_EVENTS_PER_INVOCATION, DETAIL_FIELD_MAX, reasonOf, taskFields } from "../../functions/shared/lifecycle-events.js";
import { startEventBridgeStandIn, type EventBridgeStandIn } from "../fixtures/eventbridge-standin.js";
import { Celery } from "../../sdk/node.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

const CREDENTIALS = { accessKeyId: "AKIDEVENTS", secretAccessKey: "secret" };
let standIn: EventBridgeStandIn;
const warnings: Array<Record<string, unknown>> = [];
const logger = { warn: (_m: string, extra: Record<string, unknown>) => warnings.push(extra) };

function publisher(options: { attempts?: number } = {}): EventBusPublisher {
  return new EventBusPublisher({
    eventBusName: "celery-edge-test-bus",
    logger,
    backoffMs: 10,
    ...options,
    clientConfig: { endpoint: standIn.endpoint, region: "us-east-1", credentials: CREDENTIALS },
  });
}

const batchOf = (n: number, prefix: string): LifecycleBatch => {
  const batch = new LifecycleBatch({ emitter: "relay", maxReceiveCount: 3 });
  for (let i = 0; i < n; i++) batch.emit("Task Revoked", { taskId: `${prefix}-${i}`, parked: false });
  return batch;
};
const eventsFor = (prefix: string) => standIn.events.filter((e) => String(e.detail.taskId).startsWith(`${prefix}-`));

beforeAll(async () => {
  standIn = await startEventBridgeStandIn();
});
afterAll(async () => {
  await standIn?.stop();
});

describe("a lifecycle batch", () => {
  it("keeps the task's fields from the message, never its args or kwargs", async () => {
    // Prepare
    const app = new Celery({ broker: new RecordingTransport() });
    const message = await app.buildMessage("tasks.echo", { args: ["secret-arg"], kwargs: { token: "secret-kwarg" }, queue: "ce.lifecycle", eta: new Date(Date.now() + 3_600_000) });
    const batch = new LifecycleBatch({ emitter: "scheduler", maxReceiveCount: 5 });

    // Act
    batch.emit("Task Parked", { ...taskFields(message), fireAt: "2030-01-01T00:00:00.000Z" });

    // Assess
    const detail = JSON.parse(batch.events[0]!.detail) as Record<string, unknown>;
    expect(detail).toEqual({ emitter: "scheduler", taskId: message.meta.id, taskName: "tasks.echo", eta: message.meta.eta, queue: "ce.lifecycle", exchange: message.exchange, routingKey: message.routingKey, fireAt: "2030-01-01T00:00:00.000Z" });
    expect(batch.events[0]!.detail).not.toContain("secret-");
  });

  it("cuts every string and drops fields it does not know", () => {
    const batch = new LifecycleBatch({ emitter: "relay", maxReceiveCount: 3 });
    batch.emit("Task Rejected", { taskName: "n".repeat(10_000), reason: "r".repeat(10_000), ...({ args: ["x"], body: "y" } as object) });
    const detail = JSON.parse(batch.events[0]!.detail) as Record<string, string>;
    expect(detail.taskName).toHaveLength(DETAIL_FIELD_MAX + 1);
    expect(detail.reason).toHaveLength(DETAIL_FIELD_MAX + 1);
    expect(Object.keys(detail).sort()).toEqual(["emitter", "reason", "taskName"]);
  });

  it("keeps at most its cap and counts the rest as dropped", () => {
    const batch = batchOf(MAX_EVENTS_PER_INVOCATION + 5, "cap");
    expect(batch.events).toHaveLength(MAX_EVENTS_PER_INVOCATION);
    expect(batch.dropped).toBe(5);
  });

  it("reports a refused record Rejected on its first receive only, and Dead-Lettered on its last", () => {
    const batch = new LifecycleBatch({ emitter: "relay", maxReceiveCount: 3 });
    const err = new PolicyError("task name not allowed: exchange \"x\"");
    for (const receiveCount of [1, 2, 3]) batch.failed({ err, poison: true, messageId: "m-1", receiveCount, task: { taskId: "t-1" } });
    const seen = batch.events.map((e) => [e.type, (JSON.parse(e.detail) as { receiveCount: number }).receiveCount]);
    expect(seen).toEqual([
      ["Task Rejected", 1],
      ["Task Dead-Lettered", 3],
    ]);
    expect(JSON.parse(batch.events[1]!.detail)).toMatchObject({ code: "ERR_POLICY", reason: err.message, maxReceiveCount: 3, taskId: "t-1" });
  });

  it("reports a record failed for the broker's sake only when it is dead-lettered", () => {
    const batch = new LifecycleBatch({ emitter: "relay", maxReceiveCount: 2 });
    const err = new PublishError("ERR_UNROUTABLE", "unroutable");
    batch.failed({ err, poison: false, messageId: "m-2", receiveCount: 1, task: {} });
    batch.failed({ err, poison: false, messageId: "m-2", receiveCount: 2, task: {} });
    expect(batch.events.map((e) => e.type)).toEqual(["Task Dead-Lettered"]);
  });

  it("gives a decoder's error by its code only, as its message may quote the body", () => {
    expect(reasonOf(new SerializationError("body is not valid UTF-8 JSON: Unexpected token in \"{\"args\": [\"secret\"", "body"))).toEqual({ code: "ERR_SERIALIZATION" });
    expect(reasonOf(new EnvelopeError("invalid envelope: x"))).toEqual({ code: "ERR_ENVELOPE", reason: "invalid envelope: x" });
    expect(reasonOf(new Error("anything"))).toEqual({});
  });
});

describe("the event bus publisher, with the real client against the PutEvents stand-in", () => {
  it("puts 23 events in calls of at most 10, each on the bus with the celery-edge source", async () => {
    const before = standIn.calls.length;
    const report = await publisher().put(batchOf(23, "group"), 5_000);
    expect(report).toEqual({ put: 23, failed: 0, calls: 3 });
    expect(standIn.calls.slice(before).map((c) => c.entries)).toEqual([10, 10, 3]);
    const events = eventsFor("group");
    expect(events.map((e) => e.detail.taskId)).toEqual(Array.from({ length: 23 }, (_, i) => `group-${i}`));
    expect(new Set(events.map((e) => `${e.eventBusName} ${e.source} ${e.detailType}`))).toEqual(new Set([`celery-edge-test-bus ${EVENT_SOURCE} Task Revoked`]));
    expect(events[0]!.accessKeyId).toBe(CREDENTIALS.accessKeyId);
  });

  it("retries a failed call and the entries EventBridge failed, until all are put", async () => {
    // Prepare: the first call fails whole (500), the second accepts all but two throttled entries.
    const before = standIn.calls.length;
    standIn.failCalls(1, "InternalException");
    standIn.failEntries(2, "ThrottlingException");

    // Act
    const report = await publisher().put(batchOf(5, "retry"), 5_000);

    // Assess
    expect(report).toEqual({ put: 5, failed: 0, calls: 3 });
    const calls = standIn.calls.slice(before);
    expect(calls.map((c) => [c.entries, c.error ?? null, c.failedEntries.length])).toEqual([
      [5, "InternalException", 0],
      [5, null, 2],
      [2, null, 0],
    ]);
    expect(eventsFor("retry").map((e) => e.detail.taskId).sort()).toEqual(["retry-0", "retry-1", "retry-2", "retry-3", "retry-4"]);
  });

  it("gives up after its attempts without throwing, and logs how many were not put", async () => {
    standIn.failCalls(3, "ThrottlingException");
    warnings.length = 0;
    const report = await publisher({ attempts: 3 }).put(batchOf(4, "giveup"), 5_000);
    expect(report).toEqual({ put: 0, failed: 4, calls: 3 });
    expect(eventsFor("giveup")).toEqual([]);
    expect(warnings).toEqual([expect.objectContaining({ failed: 4, put: 0, calls: 3, codes: ["ThrottlingException"] })]);
  });

  it("does not retry a refusal that will not pass (AccessDenied, a non-retryable entry code)", async () => {
    standIn.failCalls(1, "AccessDeniedException");
    const denied = await publisher().put(batchOf(2, "denied"), 5_000);
    expect(denied).toEqual({ put: 0, failed: 2, calls: 1 });
    standIn.failEntries(1, "NotAuthorizedForSourceException");
    const partly = await publisher().put(batchOf(2, "partly"), 5_000);
    expect(partly).toEqual({ put: 1, failed: 1, calls: 1 });
  });

  it("makes no call for an empty batch", async () => {
    const before = standIn.calls.length;
    expect(await publisher().put(new LifecycleBatch({ emitter: "relay", maxReceiveCount: 3 }), 5_000)).toEqual({ put: 0, failed: 0, calls: 0 });
    expect(standIn.calls.length).toBe(before);
  });

  it("stops at its time budget when EventBridge cannot be reached", async () => {
    // Nothing listens on the stand-in's port once stopped: every call fails fast and is retried.
    const gone = await startEventBridgeStandIn();
    await gone.stop();
    const p = new EventBusPublisher({ eventBusName: "b", logger, attempts: 50, backoffMs: 50, clientConfig: { endpoint: gone.endpoint, region: "us-east-1", credentials: CREDENTIALS } });
    const started = Date.now();
    const report = await p.put(batchOf(3, "budget"), 300);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(report.failed).toBe(3);
    expect(report.calls).toBeLessThan(50);
  });
});
