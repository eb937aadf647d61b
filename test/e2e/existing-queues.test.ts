/**
 * Publishing into queues a Celery fleet already declared, with settings the app does not know
 * (#16): priority, non-durable, quorum, TTL and max-length queues are declared by a real Celery
 * worker first; an app with no `queues` config publishes into each, and the worker runs the task.
 * A queue the app does know (a quorum one) is declared by the app when missing, then consumed.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { LOCAL_CREDENTIALS } from "../../scripts/local/fauxqs.js";
import { Celery, type CeleryWarning, type TopologyMismatchWarning } from "../../sdk/node.js";
import { sqsRelay } from "../../sdk/sqs.js";
import { brokerRefusal } from "../../sdk/transports/amqp-connection.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { withChannel, withConnection } from "../helpers/rabbit.js";
import { startRelayHarness } from "../helpers/relay-harness.js";

const BROKER = "amqp://guest:guest@127.0.0.1:5672//";
/** Its own record list: other files clear the shared one between their tests. */
const RECORD_KEY = "celery_edge:executions:existing-queues";
const log = new ExecutionLog({ key: RECORD_KEY });

/** How the fleet declares its queues (the worker's CELERY_EDGE_EXTRA_QUEUES), one of each kind. */
const FLEET_QUEUES = [
  { kind: "a priority queue", name: "ce.eq.priority", queue_arguments: { "x-max-priority": 10 }, differs: "x-max-priority" },
  { kind: "a non-durable queue", name: "ce.eq.transient", durable: false, differs: "durable" },
  { kind: "a quorum queue", name: "ce.eq.quorum", queue_arguments: { "x-queue-type": "quorum" }, differs: "x-queue-type" },
  { kind: "a queue with a message TTL", name: "ce.eq.ttl", queue_arguments: { "x-message-ttl": 600_000 }, differs: "x-message-ttl" },
  { kind: "a queue with a max length", name: "ce.eq.maxlen", queue_arguments: { "x-max-length": 1_000 }, differs: "x-max-length" },
] as const;
/** Bound to a topic exchange the app believes is direct. */
const BOUND = { name: "ce.eq.bound", exchange: "ce.eq.topic", exchange_type: "topic", routing_key: "bound.#" };
/** Declared by the app from its `queues` config; no worker knows it before. */
const FRESH_QUORUM = "ce.eq.fresh-quorum";

const fleetEnv = (queues: ReadonlyArray<Record<string, unknown>>): Record<string, string> => ({
  CELERY_EDGE_DEFAULT_QUEUE: "ce.eq.default",
  CELERY_EDGE_RECORD_KEY: RECORD_KEY,
  // As a fleet on Celery < 5.5 must, to consume quorum queues (see the test app).
  CELERY_EDGE_PER_CONSUMER_QOS: "1",
  CELERY_EDGE_EXTRA_QUEUES: JSON.stringify(queues.map(({ kind: _k, differs: _d, ...q }) => q)),
});

let worker: CeleryWorker;
let app: Celery;
const warnings: CeleryWarning[] = [];

/** Queues and exchanges of this file, gone: each test run starts with what the fleet declares. */
async function removeTopology(): Promise<void> {
  const queues = [...FLEET_QUEUES.map((q) => q.name), BOUND.name, FRESH_QUORUM, "ce.eq.default"];
  await withChannel(async (ch) => {
    for (const q of queues) await ch.deleteQueue(q);
    // The app binds a queue it does not know to a direct exchange of its name, as Celery does.
    for (const x of [...queues, BOUND.exchange]) await ch.deleteExchange(x);
  });
}

beforeAll(async () => {
  await removeTopology();
  const fleet = [...FLEET_QUEUES, BOUND];
  worker = await startCeleryWorker({ queues: fleet.map((q) => q.name), env: fleetEnv(fleet) });
  // Knows none of the fleet's queues: every one is a missing queue to it, as `queue: "x"` in Celery.
  app = new Celery({ broker: BROKER, defaultQueue: "ce.eq.default", onWarning: (w) => warnings.push(w) });
}, 60_000);

afterAll(async () => {
  await app?.close();
  await worker?.stop();
  await removeTopology();
});

describe("a queue the workers declared with settings the app does not know", () => {
  it.each(FLEET_QUEUES)("publishes into $kind, and the worker runs the task", async ({ name }) => {
    // Act
    const r = await app.sendTask("tasks.record", { args: [name], queue: name });

    // Assess
    const rec = await log.waitForTask(r.id);
    expect([rec.routing_key, rec.hostname, rec.args]).toEqual([name, worker.hostname, [name]]);
  });

  it.each(FLEET_QUEUES)("warns once that $kind differs, naming what the broker said differs", async ({ name, differs }) => {
    // Prepare: more tasks to the same queue, one by one and as a batch.
    await app.sendTask("tasks.record", { args: ["again"], queue: name });
    const batch = await app.sendMany([1, 2, 3].map((n) => ({ task: "tasks.record", args: [n], queue: name })));
    await log.waitForTask(batch[2]!.id);

    // Act
    const about = warnings.filter((w) => (w as TopologyMismatchWarning).entity === name);

    // Assess
    expect(about).toHaveLength(1);
    const w = about[0] as TopologyMismatchWarning;
    expect([w.code, w.kind]).toEqual(["WARN_QUEUE_MISMATCH", "queue"]);
    expect(w.brokerReply).toContain(`inequivalent arg '${differs}'`);
    expect(w.message).toContain(name);
    expect(w.message).not.toContain("guest:guest");
  });

  it("leaves the queue's settings as the workers declared them", async () => {
    // Act: what a declare with the fleet's settings, and one with the app's defaults, are told.
    const asFleet = await withChannel((ch) => ch.assertQueue("ce.eq.priority", { durable: true, arguments: { "x-max-priority": 10 } }));
    const asDefaults = await withChannel((ch) => ch.assertQueue("ce.eq.priority", { durable: true }).catch((e: unknown) => e));

    // Assess
    expect(asFleet.queue).toBe("ce.eq.priority");
    expect(brokerRefusal(asDefaults)?.replyCode).toBe(406);
  });

  it("sends a task's priority to a quorum queue as Celery does; RabbitMQ 3.10 takes it without ordering by it", async () => {
    // Act
    const r = await app.sendTask("tasks.record", { args: ["prio"], queue: "ce.eq.quorum", priority: 9 });

    // Assess
    const rec = await log.waitForTask(r.id);
    expect([rec.routing_key, rec.priority]).toEqual(["ce.eq.quorum", 9]);
  });

  it("publishes through an exchange of another type than the app's queues config says, warning once", async () => {
    // Prepare: the app thinks ce.eq.topic is a direct exchange; the fleet made it a topic exchange.
    const seen: CeleryWarning[] = [];
    const knowing = new Celery({
      broker: BROKER,
      queues: { [BOUND.name]: { exchange: BOUND.exchange, exchangeType: "direct", routingKey: BOUND.routing_key } },
      onWarning: (w) => seen.push(w),
    });
    try {
      // Act
      const r = await knowing.sendTask("tasks.record", { args: ["bound"], queue: BOUND.name, exchange: BOUND.exchange, routingKey: "bound.x" });
      await knowing.sendTask("tasks.record", { args: ["bound again"], queue: BOUND.name, exchange: BOUND.exchange, routingKey: "bound.y" });

      // Assess: routed by the topic binding the fleet made, to the worker.
      const rec = await log.waitForTask(r.id);
      expect([rec.exchange, rec.routing_key, rec.hostname]).toEqual([BOUND.exchange, "bound.x", worker.hostname]);
      expect(seen.map((w) => [w.code, (w as TopologyMismatchWarning).entity])).toEqual([["WARN_EXCHANGE_MISMATCH", BOUND.exchange]]);
      expect((seen[0] as TopologyMismatchWarning).brokerReply).toContain("inequivalent arg 'type'");
    } finally {
      await knowing.close();
    }
  });
});

describe("a quorum queue in the app's queues config", () => {
  it("is declared by the app when missing, as a quorum queue a Celery worker then consumes", async () => {
    // Prepare
    const seen: CeleryWarning[] = [];
    const knowing = new Celery({ broker: BROKER, queues: { [FRESH_QUORUM]: { queueType: "quorum" } }, onWarning: (w) => seen.push(w) });
    let consumer: CeleryWorker | undefined;
    try {
      // Act: nothing has declared the queue yet; the task waits in it for a worker.
      const r = await knowing.sendTask("tasks.record", { args: ["fresh"], queue: FRESH_QUORUM });
      const declared = await withConnection(async (c) => {
        const asQuorum = await c.createChannel().then((ch) => ch.assertQueue(FRESH_QUORUM, { durable: true, arguments: { "x-queue-type": "quorum" } }));
        const ch = await c.createChannel();
        ch.on("error", () => {});
        const asClassic = await ch.assertQueue(FRESH_QUORUM, { durable: true }).catch((e: unknown) => e);
        return { asQuorum, asClassic };
      });
      consumer = await startCeleryWorker({
        queues: [FRESH_QUORUM],
        env: fleetEnv([{ name: FRESH_QUORUM, queue_arguments: { "x-queue-type": "quorum" } }]),
      });

      // Assess: a quorum queue (a classic declare is refused), holding the task until the worker ran it.
      expect(declared.asQuorum.messageCount).toBe(1);
      expect(brokerRefusal(declared.asClassic)?.replyCode).toBe(406);
      const rec = await log.waitForTask(r.id);
      expect([rec.routing_key, rec.hostname]).toEqual([FRESH_QUORUM, consumer.hostname]);
      expect(seen).toEqual([]);
    } finally {
      await knowing.close();
      await consumer?.stop();
    }
  }, 60_000);
});

describe("through the relay", () => {
  it("relays a task into a queue the fleet declared with x-max-priority, though the policy declares it without arguments", async () => {
    // Prepare: the policy's `declare: true` means a durable queue without arguments.
    const harness = await startRelayHarness({ brokerUrl: BROKER, policy: { queues: [{ name: "ce.eq.priority", declare: true }] } });
    const viaRelay = new Celery({
      broker: sqsRelay({ queueUrl: harness.intake.url, endpoint: harness.sqs.endpoint, credentials: LOCAL_CREDENTIALS }),
    });
    try {
      // Act
      const r = await viaRelay.sendTask("tasks.record", { args: ["relayed"], queue: "ce.eq.priority", priority: 8 });

      // Assess: run by the worker, and the relay logged once, as a structured warning with its code, how the queue differs.
      const rec = await log.waitForTask(r.id, 30_000);
      expect([rec.routing_key, rec.priority, rec.hostname]).toEqual(["ce.eq.priority", 8, worker.hostname]);
      const said = harness.logs.filter((line) => line.includes("WARN_QUEUE_MISMATCH")).map((line) => JSON.parse(line) as { level: string; message: string; code: string });
      expect(said).toHaveLength(1);
      expect(said[0]!.level).toBe("WARN");
      expect(said[0]!.code).toBe("WARN_QUEUE_MISMATCH");
      expect(said[0]!.message).toMatch(/"ce\.eq\.priority".*inequivalent arg 'x-max-priority'/);
      expect(said[0]!.message).not.toContain("guest:guest");
    } finally {
      await viaRelay.close();
      await harness.stop();
    }
  }, 60_000);
});
