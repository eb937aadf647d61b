/**
 * Flower and `celery events` see tasks celery-edge sends (#16): with `taskSendSentEvent`, Celery's
 * own `app.events.Receiver` (in Python) receives our `task-sent` event, with the fields, types, key
 * order and AMQP properties of the event Python's producer sends for the same call — on the direct
 * AMQP path and through the real relay. The relay sends none when its policy does not allow it (the
 * task still runs), and no envelope reaches `celeryev` directly even when the policy allows events.
 * A broker user refused on `celeryev` loses its events and none of its tasks.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Celery, PyTuple } from "../../sdk/node.js";
import { sqsRelay } from "../../sdk/sqs.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { encodeEnvelope, toEnvelope } from "../../sdk/wire/envelope.js";
import { sentFieldsOfCall, taskSentEvent } from "../../sdk/events/task-sent.js";
import { relayRecord, type RelayLogger } from "../../functions/relay/relay.js";
import { resolvePolicy } from "../../functions/shared/policy.js";
import { LOCAL_CREDENTIALS } from "../../scripts/local/fauxqs.js";
import { captureSentEvents, type CapturedEvent } from "../helpers/celery-events.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { AMQP_URL, deleteQueues, rabbitmqctl } from "../helpers/rabbit.js";
import { startRelayHarness, type RelayHarness } from "../helpers/relay-harness.js";
import { sqsRecord } from "../helpers/sqs-record.js";

/** This file's own queue and record database: no other suite's worker consumes them. */
const QUEUE = "ce.sentev";
const RECORD_DB = 7;
const BROKER = `${AMQP_URL}//`;
/**
 * The call both producers make: same task, arguments, queue, countdown and expiry. Python's
 * `apply_async` makes args a tuple, as our `delay()` does (`PyTuple`).
 */
const CALL = { args: PyTuple.of<unknown>(1, "two"), kwargs: { k: "v" }, countdown: 1, expires: 300 };
const pythonCall = (id: string) => ({ name: "tasks.echo", task_id: id, queue: QUEUE, ...CALL, args: [...CALL.args] });

const log = new ExecutionLog({ db: RECORD_DB });
let worker: CeleryWorker;
let direct: Celery;

beforeAll(async () => {
  await log.clear();
  worker = await startCeleryWorker({ queues: [QUEUE], env: { CELERY_EDGE_DEFAULT_QUEUE: QUEUE, CELERY_EDGE_RECORD_DB: String(RECORD_DB), CELERY_BROKER_URL: BROKER } });
  direct = new Celery({ broker: BROKER, defaultQueue: QUEUE, taskSendSentEvent: true });
});

afterAll(async () => {
  await direct?.close();
  await worker?.stop();
  await deleteQueues([QUEUE]);
});

const eventOf = (events: CapturedEvent[], id: string): CapturedEvent => {
  const found = events.find((e) => e.event.uuid === id);
  if (!found) throw new Error(`no task-sent event for ${id}; got ${events.map((e) => e.event.uuid).join(", ")}`);
  return found;
};

/** What two producers' events for the same call share: all but ids, who sent it, and when. */
function sameCallPart(c: CapturedEvent): Record<string, unknown> {
  const { uuid: _u, root_id: _r, hostname: _h, pid: _p, clock: _c, timestamp: _t, local_received: _l, eta: _e, expires: _x, ...rest } = c.event;
  return rest;
}

/** Asserts that `ours` is the event Python sent for the same call, field for field. */
function expectLikePython(ours: CapturedEvent, python: CapturedEvent, id: string): void {
  // Same fields with the same Python types, as the handler gets them and as they came off the wire.
  expect(ours.types).toEqual(python.types);
  expect(ours.raw).toEqual(python.raw);
  // Same key order in the body, and the same values where the two calls agree.
  expect(Object.keys(JSON.parse(ours.body))).toEqual(Object.keys(JSON.parse(python.body)));
  expect(sameCallPart(ours)).toEqual(sameCallPart(python));
  expect(sameCallPart(ours)).toMatchObject({ name: "tasks.echo", args: "(1, 'two')", kwargs: "{'k': 'v'}", queue: QUEUE, exchange: "", routing_key: QUEUE });
  // The same message around it: exchange, routing key, properties, headers.
  expect(ours.delivery).toEqual(python.delivery);
  expect(ours.delivery).toEqual({ exchange: "celeryev", routing_key: "task.sent" });
  expect(ours.properties).toEqual(python.properties);
  expect(Object.keys(ours.headers)).toEqual(Object.keys(python.headers));
  expect(ours.headers.hostname).toBe(ours.event.hostname);
  // Ids and times that are this call's own.
  expect([ours.event.uuid, ours.event.root_id]).toEqual([id, id]);
  for (const e of [ours, python]) {
    const sentAt = (JSON.parse(e.body) as { timestamp: number }).timestamp * 1000;
    expect(Math.abs(Date.parse(e.event.eta as string) - sentAt - 1000)).toBeLessThan(1000);
    expect(Math.abs(Date.parse(e.event.expires as string) - sentAt - 300_000)).toBeLessThan(1000);
  }
}

describe("direct AMQP", () => {
  it("publishes the task-sent event Python's producer sends for the same call, and the task runs", async () => {
    // Arrange
    const id = `sentev-direct-${randomUUID()}`;
    const pyId = `sentev-python-${randomUUID()}`;
    const capture = captureSentEvents({ brokerUrl: BROKER, until: [id], pythonCall: pythonCall(pyId) });
    await capture.ready;

    // Act
    await direct.sendTask("tasks.echo", { taskId: id, ...CALL });

    // Assess
    const events = await capture.done;
    const ours = eventOf(events, id);
    expectLikePython(ours, eventOf(events, pyId), id);
    // The producer's own nodename and process, as Python's dispatcher names itself.
    expect(ours.event.hostname).toMatch(/^gen\d+@/);
    expect(ours.event.pid).toBe(process.pid);
    const ran = await log.waitForTask(id, 20_000);
    expect([ran.args, ran.kwargs]).toEqual([[1, "two"], CALL.kwargs]);
  });

  it("publishes no event when the option is off", async () => {
    // Arrange: a sentinel with events, sent after the task without them; the receiver consumes in order.
    const quiet = new Celery({ broker: BROKER, defaultQueue: QUEUE });
    const id = `sentev-quiet-${randomUUID()}`;
    const sentinel = `sentev-sentinel-${randomUUID()}`;
    const capture = captureSentEvents({ brokerUrl: BROKER, until: [sentinel] });
    await capture.ready;

    // Act
    await quiet.sendTask("tasks.echo", { taskId: id, ...CALL });
    await quiet.close();
    await direct.sendTask("tasks.echo", { taskId: sentinel });

    // Assess
    const ids = (await capture.done).map((e) => e.event.uuid);
    expect(ids).toContain(sentinel);
    expect(ids).not.toContain(id);
    await log.waitForTask(id, 20_000);
  });
});

describe("a broker user that may not write to celeryev", () => {
  const USER = "ce-sentev-nowrite";
  let app: Celery;

  beforeAll(async () => {
    await rabbitmqctl(["add_user", USER, "pw"]);
    await rabbitmqctl(["set_permissions", "-p", "/", USER, ".*", "^(?!celeryev$).*", ".*"]);
    app = new Celery({ broker: `amqp://${USER}:pw@127.0.0.1:5672//`, defaultQueue: QUEUE, taskSendSentEvent: true });
  });

  afterAll(async () => {
    await app?.close();
    await rabbitmqctl(["delete_user", USER]);
  });

  it("gets its events refused, and every task still sent and run", async () => {
    // Arrange: the refusal is real (RabbitMQ's 403 closes the channel an event arrives on).
    const transport = app.transport as AmqpTransport;
    const probe = await app.buildMessage("tasks.echo", { taskId: `sentev-probe-${randomUUID()}` });
    const [refused] = await transport.publishEvents([taskSentEvent(sentFieldsOfCall(probe.meta.sentEvent as never, probe), { hostname: "h", pid: 1, clock: 1 })]);
    expect(refused!.ok).toBe(false);
    const prefix = `sentev-nowrite-${randomUUID()}`;

    // Act: rounds of concurrent sends, each round's events still in flight as the next one goes out.
    const outcomes: string[] = [];
    for (let round = 0; round < 5; round++) {
      const sent = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => app.sendTask("tasks.echo", { taskId: `${prefix}-${round}-${i}` })));
      outcomes.push(...sent.map((r) => (r.status === "fulfilled" ? "ok" : String((r.reason as { code?: string }).code))));
    }

    // Assess
    expect(outcomes.filter((o) => o !== "ok")).toEqual([]);
    const ran = await log.waitFor({ where: (r) => r.id.startsWith(prefix), count: 100 }, 30_000);
    expect(new Set(ran.map((r) => r.id)).size).toBe(100);
  });
});

describe("through the relay", () => {
  let harness: RelayHarness;
  let relayed: Celery;

  beforeAll(async () => {
    harness = await startRelayHarness({ brokerUrl: BROKER, policy: { queues: [{ name: QUEUE, declare: true }], sentEvents: true } });
    relayed = new Celery({
      broker: sqsRelay({ queueUrl: harness.intake.url, endpoint: harness.sqs.endpoint, credentials: LOCAL_CREDENTIALS }),
      defaultQueue: QUEUE,
      taskSendSentEvent: true,
    });
  });

  afterAll(async () => {
    await relayed?.close();
    await harness?.stop();
  });

  const relayLine = (message: string, id: string): Record<string, unknown> | undefined =>
    harness.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.message === message && l.taskId === id);

  it("publishes the task-sent event the envelope asks for when the policy allows it, and the task runs", async () => {
    // Arrange
    const id = `sentev-relay-${randomUUID()}`;
    const pyId = `sentev-python-${randomUUID()}`;
    const capture = captureSentEvents({ brokerUrl: BROKER, until: [id], pythonCall: pythonCall(pyId) });
    await capture.ready;

    // Act
    await relayed.sendTask("tasks.echo", { taskId: id, ...CALL });

    // Assess
    const events = await capture.done;
    const ours = eventOf(events, id);
    expectLikePython(ours, eventOf(events, pyId), id);
    // Sent by the relay (this process runs it), named as Python names a producer process.
    expect(ours.event.hostname).toBe(`gen${process.pid}@${hostname()}`);
    expect(ours.event.pid).toBe(process.pid);
    await log.waitForTask(id, 20_000);
    expect(relayLine("published", id)?.sentEvent).toBe("published");
  });

  it("refuses an envelope that targets celeryev itself, even with sentEvents allowed", async () => {
    // Arrange: a forged task-sent event, as an envelope straight to the event exchange.
    const forged = `sentev-forged-${randomUUID()}`;
    const sentinel = `sentev-sentinel-${randomUUID()}`;
    const task = await relayed.buildMessage("tasks.echo", { taskId: forged });
    const body = JSON.stringify({ hostname: "evil@host", uuid: forged, name: "tasks.echo", type: "task-sent", timestamp: 1.5 });
    const envelope = { ...toEnvelope(task), exchange: "celeryev", routingKey: "task.sent", bodyEncoding: "utf-8", body };
    const capture = captureSentEvents({ brokerUrl: BROKER, until: [sentinel] });
    await capture.ready;

    // Act
    await harness.client.send(new SendMessageCommand({ QueueUrl: harness.intake.url, MessageBody: JSON.stringify(envelope) }));
    await expect.poll(() => harness.logs.some((l) => l.includes("rejected envelope") && l.includes("event exchange")), { timeout: 20_000 }).toBe(true);
    await direct.sendTask("tasks.echo", { taskId: sentinel });

    // Assess
    const ids = (await capture.done).map((e) => e.event.uuid);
    expect(ids).toContain(sentinel);
    expect(ids).not.toContain(forged);
  });
});

describe("through the relay, under a policy without sentEvents", () => {
  it("publishes the task without its event", async () => {
    // Arrange: the relay's own record handling on a real broker, with the default (off) switch.
    const broker = new AmqpTransport({ url: BROKER });
    const lines: Array<[string, Record<string, unknown>]> = [];
    const logger: RelayLogger = { info: (m, x) => lines.push([m, x]), warn: (m, x) => lines.push([m, x]), error: (m, x) => lines.push([m, x]) };
    const deps = { broker, policy: resolvePolicy({ queues: [{ name: QUEUE, declare: true }] }), trustedForwarders: [], forceMandatory: false, logger };
    const id = `sentev-off-${randomUUID()}`;
    const sentinel = `sentev-sentinel-${randomUUID()}`;
    const envelope = encodeEnvelope(await direct.buildMessage("tasks.echo", { taskId: id, ...CALL }));
    expect(JSON.parse(envelope).sendSentEvent).toBe(true);
    const capture = captureSentEvents({ brokerUrl: BROKER, until: [sentinel] });
    await capture.ready;

    // Act
    const action = await relayRecord(sqsRecord(envelope, `m-${id}`), deps);
    await direct.sendTask("tasks.echo", { taskId: sentinel });

    // Assess
    expect(action).toBe("published");
    expect(lines.find(([m]) => m === "published")?.[1].sentEvent).toBe("not allowed");
    const ids = (await capture.done).map((e) => e.event.uuid);
    expect(ids).toContain(sentinel);
    expect(ids).not.toContain(id);
    await log.waitForTask(id, 20_000);
    await broker.close();
  });
});
