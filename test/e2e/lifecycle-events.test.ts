/**
 * Lifecycle events end to end: SDK → SQS (fauxqs) → the real relay handler → RabbitMQ, and the
 * scheduler function with the Scheduler stand-in, both putting their events with the real
 * EventBridge client into the PutEvents stand-in (test fixture). Also the relay's EMF metrics.
 *
 * No worker runs here: what is under test is what the functions say about a task, not the task.
 * The Scheduler stand-in's clock is moved forward to fire a schedule at once, so nothing waits for
 * an ETA.
 */
import { CreateScheduleGroupCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import { ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Celery } from "../../sdk/node.js";
import { sqsRelay } from "../../sdk/sqs.js";
import { encodeEnvelope } from "../../sdk/wire/envelope.js";
import { LOCAL_CREDENTIALS, credentialsFor, sqsClientConfig } from "../../scripts/local/fauxqs.js";
import { startSqsEventSource, type SqsEventSource } from "../../scripts/local/sqs-event-source.js";
import type { RelayPolicy } from "../../functions/shared/policy.js";
import { startEventBridgeStandIn, type EventBridgeStandIn, type StandInEvent } from "../fixtures/eventbridge-standin.js";
import { startSchedulerStandIn, type SchedulerStandIn } from "../fixtures/scheduler-standin.js";
import { purgeQueues } from "../helpers/rabbit.js";
import { SCHEDULES_KEY, startRelayHarness, type RelayHarness } from "../helpers/relay-harness.js";
import { sqsRecord } from "../helpers/sqs-record.js";

const BUS = "celery-edge-lifecycle-bus";
const GROUP = "celery-edge-lifecycle";
const QUEUE = "ce.lifecycle";
const THRESHOLD_S = 60;
const LEAD_S = 30;
const MAX_RECEIVE_COUNT = 2;
/** Sent as args and kwargs; must never appear in an event. */
const SECRET = "lifecycle-secret-arg";
const POLICY: RelayPolicy = {
  queues: [{ name: QUEUE, declare: true }],
  exchanges: [{ exchange: "ce.lifecycle.direct", routingKeys: ["#"], declare: { type: "direct" } }],
  contentTypes: ["application/json"],
};

let bus: EventBridgeStandIn;
let harness: RelayHarness;
let scheduler: SchedulerStandIn;
let schedulesClient: SQSClient;
let schedulerRunner: SqsEventSource;
let app: Celery;
/** The Scheduler stand-in's clock runs this far ahead of the real one. */
let schedulerClockOffset = 0;
/** Each scheduler-queue record the scheduler function handled, and whether it failed it. */
const handled: Array<{ messageId: string; failed: boolean }> = [];

beforeAll(async () => {
  process.env.POWERTOOLS_LOG_LEVEL = "WARN";
  await purgeQueues([QUEUE]);
  bus = await startEventBridgeStandIn();
  harness = await startRelayHarness({
    brokerUrl: "amqp://guest:guest@127.0.0.1:5672//",
    policy: POLICY,
    parkThresholdSeconds: THRESHOLD_S,
    maxReceiveCount: MAX_RECEIVE_COUNT,
    visibilityTimeout: 1,
    eventBus: { name: BUS, endpoint: bus.endpoint },
  });
  schedulesClient = new SQSClient(sqsClientConfig(harness.sqs.endpoint, credentialsFor(SCHEDULES_KEY)));
  scheduler = await startSchedulerStandIn({
    sqsClient: schedulesClient,
    queueUrlForArn: (arn) => (arn === harness.park.arn ? harness.park.url : undefined),
    clock: () => Date.now() + schedulerClockOffset,
  });
  const admin = new SchedulerClient({ endpoint: scheduler.endpoint, region: "us-east-1", credentials: LOCAL_CREDENTIALS });
  await admin.send(new CreateScheduleGroupCommand({ Name: GROUP }));
  admin.destroy();
  // The scheduler function reads the same environment at import: the harness set the bus and
  // MAX_RECEIVE_COUNT; the rest is its own.
  Object.assign(process.env, {
    SCHEDULER_QUEUE_ARN: harness.park.arn,
    SCHEDULE_GROUP: GROUP,
    SCHEDULER_ROLE_ARN: "arn:aws:iam::000000000000:role/celery-edge-scheduler",
    LEAD_SECONDS: String(LEAD_S),
    AWS_ENDPOINT_URL_SCHEDULER: scheduler.endpoint,
    POWERTOOLS_SERVICE_NAME: "scheduler-under-test", // the relay's (read at its import) stays relay-under-test
  });
  const { handler } = (await import("../../functions/scheduler/handler.js")) as { handler: (e: SQSEvent, c: Context) => Promise<SQSBatchResponse> };
  schedulerRunner = startSqsEventSource({
    client: harness.client,
    queueUrl: harness.park.url,
    queueArn: harness.park.arn,
    handler: async (event, context) => {
      const response = await handler(event, context);
      for (const r of event.Records) handled.push({ messageId: r.messageId, failed: response.batchItemFailures.some((f) => f.itemIdentifier === r.messageId) });
      return response;
    },
    onError: (e) => console.error("scheduler runner", e),
  });
  app = new Celery({ broker: sqsRelay({ queueUrl: harness.intake.url, endpoint: harness.sqs.endpoint, credentials: LOCAL_CREDENTIALS, maxDelaySeconds: THRESHOLD_S }), defaultQueue: QUEUE });
}, 60_000);

afterAll(async () => {
  await app?.close();
  await schedulerRunner?.stop();
  await scheduler?.stop();
  schedulesClient?.destroy();
  await harness?.stop();
  await bus?.stop();
  await purgeQueues([QUEUE]);
});

async function until<T>(find: () => T | undefined, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 50));
  }
}

const eventsAbout = (taskId: string, type?: string): StandInEvent[] => bus.events.filter((e) => e.detail.taskId === taskId && (type === undefined || e.detailType === type));
const event = (taskId: string, type: string) => until(() => eventsAbout(taskId, type)[0]);
const farEta = () => new Date(Date.now() + 10 * 60_000);

describe("the scheduler's events", () => {
  it("reports Task Parked when it creates the schedule and Task Released when the schedule fires", async () => {
    // Prepare / Act: a task due in 10 minutes, so the relay hands it to the scheduler to park.
    const eta = farEta();
    const r = await app.sendTask("tasks.echo", { args: [SECRET], kwargs: { token: SECRET }, eta });

    // Assess: parked, with the task's fields and none of its arguments.
    const parked = await event(r.id, "Task Parked");
    expect(parked.source).toBe("celery-edge");
    expect(parked.eventBusName).toBe(BUS);
    expect(parked.detail).toEqual({
      emitter: "scheduler",
      taskId: r.id,
      taskName: "tasks.echo",
      eta: expect.any(String), // as the message carries it (Celery's isoformat)
      queue: QUEUE, // the default exchange's routing key
      exchange: "",
      routingKey: QUEUE,
      fireAt: new Date(eta.getTime() - LEAD_S * 1000).toISOString(),
    });
    expect(new Date(String(parked.detail.eta)).getTime()).toBe(eta.getTime());
    expect(parked.rawDetail).not.toContain(SECRET);
    expect(eventsAbout(r.id, "Task Released")).toEqual([]);

    // Act: Scheduler's clock reaches the fire time.
    schedulerClockOffset = 10 * 60_000;
    try {
      const released = await event(r.id, "Task Released");
      // Assess
      expect(released.detail).toMatchObject({ emitter: "scheduler", taskId: r.id, taskName: "tasks.echo", eta: parked.detail.eta, queue: QUEUE });
      expect(released.rawDetail).not.toContain(SECRET);
      expect(scheduler.fired.filter((f) => f.name === `celery-edge-${r.id}`)).toHaveLength(1);
    } finally {
      schedulerClockOffset = 0;
    }
  });

  it("reports Task Revoked (parked: true) when its owner's revoke deletes the schedule", async () => {
    const r = await app.sendTask("tasks.echo", { args: [SECRET], eta: farEta() });
    await event(r.id, "Task Parked");
    await app.revoke(r.id);
    const revoked = await event(r.id, "Task Revoked");
    expect(revoked.detail).toMatchObject({ emitter: "scheduler", taskId: r.id, parked: true, taskName: "tasks.echo", queue: QUEUE });
    expect(scheduler.schedules().has(`${GROUP}/celery-edge-${r.id}`)).toBe(false);
  });
});

describe("the relay's events", () => {
  it("reports Task Revoked (parked: false) once a revoke of a task not parked is broadcast to the workers", async () => {
    const id = `lifecycle-unparked-${Date.now()}`;
    await app.revoke(id);
    const revoked = await event(id, "Task Revoked");
    expect(revoked.detail).toEqual({ emitter: "relay", taskId: id, parked: false });
  });

  it("reports a refused task Task Rejected once, with the policy's reason and no args, and Task Dead-Lettered on its last receive", async () => {
    // Prepare / Act: a queue the policy does not allow.
    const r = await app.sendTask("tasks.echo", { args: [SECRET], kwargs: { token: SECRET }, queue: "ce.lifecycle.refused" });

    // Assess: refused on the first receive, dead-lettered on receive MAX_RECEIVE_COUNT.
    const dead = await event(r.id, "Task Dead-Lettered");
    expect(dead.detail).toMatchObject({ emitter: "relay", taskId: r.id, taskName: "tasks.echo", code: "ERR_POLICY", receiveCount: MAX_RECEIVE_COUNT, maxReceiveCount: MAX_RECEIVE_COUNT });
    const rejected = eventsAbout(r.id, "Task Rejected");
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.detail).toMatchObject({ emitter: "relay", taskId: r.id, taskName: "tasks.echo", routingKey: "ce.lifecycle.refused", code: "ERR_POLICY", receiveCount: 1 });
    expect(String(rejected[0]!.detail.reason)).toMatch(/routing key "ce\.lifecycle\.refused"/);
    for (const e of [...rejected, dead]) expect(e.rawDetail).not.toContain(SECRET);
    // And SQS did move it to the dead-letter queue.
    const dlq = await harness.client.send(new ReceiveMessageCommand({ QueueUrl: harness.intake.dlqUrl!, MaxNumberOfMessages: 10, WaitTimeSeconds: 5 }));
    expect((dlq.Messages ?? []).some((m) => m.Body?.includes(r.id))).toBe(true);
  });
});

describe("a failed PutEvents", () => {
  it("is retried, and the record it is about is not failed", async () => {
    // Prepare: the next call fails whole, and one entry of the call after is throttled.
    const callsBefore = bus.calls.length;
    const handledBefore = handled.length;
    bus.failCalls(1, "InternalException");
    bus.failEntries(1, "ThrottlingException");

    // Act: the scheduler parks a task (one event).
    const r = await app.sendTask("tasks.echo", { args: [SECRET], eta: farEta() });

    // Assess: put on the third call; the park request was handled, not failed.
    await event(r.id, "Task Parked");
    expect(bus.calls.slice(callsBefore).map((c) => [c.error ?? null, c.failedEntries.map((f) => f.errorCode)])).toEqual([
      ["InternalException", []],
      [null, ["ThrottlingException"]],
      [null, []],
    ]);
    const during = handled.slice(handledBefore);
    expect(during.length).toBeGreaterThan(0);
    expect(during.every((h) => !h.failed)).toBe(true);
    await app.revoke(r.id);
    await event(r.id, "Task Revoked");
  });

  it("that never passes is logged and dropped, and the record it is about is still not failed", async () => {
    // Prepare: every attempt of the relay's next put fails.
    const failuresBefore = harness.runner.stats.failures;
    bus.failCalls(3, "ThrottlingException");
    const id = `lifecycle-lost-${Date.now()}`;

    // Act: a revoke the relay broadcasts (forwarded to the scheduler first, handed back, broadcast).
    await app.revoke(id);

    // Assess
    const line = await until(() => harness.logs.find((l) => l.includes("lifecycle events not put")));
    expect(JSON.parse(line)).toMatchObject({ level: "WARN", failed: 1, put: 0, calls: 3, codes: ["ThrottlingException"] });
    expect(eventsAbout(id)).toEqual([]);
    expect(harness.runner.stats.failures).toBe(failuresBefore);
  });
});

describe("the relay's metrics", () => {
  it("prints one EMF line per invocation with the Relayed, Parked, Rejected and Failed counts", async () => {
    // Prepare: five records of known fate, invoked directly as one event.
    const builder = new Celery({ broker: sqsRelay({ queueUrl: harness.intake.url, endpoint: harness.sqs.endpoint, credentials: LOCAL_CREDENTIALS }) });
    const envelope = async (options: Record<string, unknown>) => encodeEnvelope(await builder.buildMessage("tasks.echo", { args: [1], queue: QUEUE, ...options }));
    const bodies = [
      await envelope({}), // relayed
      await envelope({}), // relayed
      await envelope({ eta: farEta() }), // parked
      await envelope({ queue: "ce.lifecycle.refused" }), // rejected by the policy
      await envelope({ exchange: "ce.lifecycle.direct", routingKey: "nobody.bound", queue: undefined }), // unroutable: failed
    ];
    const records = bodies.map((b, i) => sqsRecord(b, `metrics-${i}`, { queueArn: harness.intake.arn }));
    const context = { functionName: "relay", awsRequestId: "metrics", getRemainingTimeInMillis: () => 30_000 } as unknown as Context;
    const linesBefore = harness.logs.length;

    // Act
    const response = await harness.handler({ Records: records }, context);

    // Assess
    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(["metrics-3", "metrics-4"]);
    const emf = harness.logs
      .slice(linesBefore)
      .flatMap((c) => c.split("\n"))
      .filter((l) => l.includes('"_aws"'))
      .map((l) => JSON.parse(l) as Record<string, unknown> & { _aws: { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string; Unit: string }> }> } });
    expect(emf).toHaveLength(1);
    const [line] = emf;
    expect(line!._aws.CloudWatchMetrics[0]!.Namespace).toBe("CeleryEdge");
    expect(line!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([["service"]]);
    expect(line!._aws.CloudWatchMetrics[0]!.Metrics.map((m) => `${m.Name}/${m.Unit}`).sort()).toEqual(["Failed/Count", "Parked/Count", "Rejected/Count", "Relayed/Count"]);
    expect(line).toMatchObject({ service: "relay-under-test", Relayed: 2, Parked: 1, Rejected: 1, Failed: 1 });
    await builder.close();
  });
});
