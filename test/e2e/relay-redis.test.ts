/**
 * The relay with a Redis fleet: SDK → SQS (fauxqs) → the real relay handler (and the real scheduler
 * function with the EventBridge Scheduler stand-in, both run by scripts/local/functions.ts) → Redis
 * → real Celery workers started with `broker=redis://127.0.0.1:6379/5` and a `global_keyprefix`,
 * which the relay gets from BROKER_TRANSPORT_OPTIONS. Proven by the workers' execution records.
 *
 * The workers run with kombu's `visibility_timeout` lowered to a few seconds: a task a worker holds
 * for its ETA longer than that is given out again by the next restore, which kombu runs when a
 * worker starts polling (and every tenth 10-s tick after), so here a worker joining the fleet does it.
 */
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RelayPolicy } from "../../functions/shared/policy.js";
import { LOCAL_CREDENTIALS, createQueue, sqsClientConfig, startSqsEmulator, type CreatedQueue, type SqsEmulator } from "../../scripts/local/fauxqs.js";
import { SENDER_IDS, startLocalFunctions, type LocalFunctions } from "../../scripts/local/functions.js";
import { Celery } from "../../sdk/node.js";
import { sqsRelay } from "../../sdk/sqs.js";
import { SQSClient } from "@aws-sdk/client-sqs";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";

const DB = 5;
const BROKER = `redis://127.0.0.1:6379/${DB}`;
const PREFIX = "relay-redis:";
const SEP = "\x06\x16";
/** Lowered from kombu's hour so a held task is given out again within the test. */
const VISIBILITY_S = 3;
const TRANSPORT_OPTIONS = { global_keyprefix: PREFIX, visibility_timeout: VISIBILITY_S };
const THRESHOLD_S = 10;
const LEAD_S = 5;
const POLICY: RelayPolicy = {
  queues: [
    { name: "rr.default", declare: true },
    { name: "rr.priority", declare: false },
    { name: "rr.early", declare: true },
  ],
  exchanges: [{ exchange: "celery_edge.topic", routingKeys: ["video.#"] }],
  contentTypes: ["application/json", "application/x-msgpack", "application/x-yaml"],
  // Only so the pickle case below can prove the relay carries every serializer to a Redis fleet: the
  // test worker accepts pickle and every sender here is the test itself. Production policies keep it off.
  dangerouslyAllowPickle: true,
};
const log = new ExecutionLog({ key: "celery_edge:executions:relay-redis" });
const workerEnv = {
  CELERY_BROKER_URL: BROKER,
  CELERY_BROKER_TRANSPORT_OPTIONS: JSON.stringify(TRANSPORT_OPTIONS),
  CELERY_EDGE_DEFAULT_QUEUE: "rr.default",
  CELERY_EDGE_EXTRA_QUEUES: JSON.stringify([{ name: "rr.priority" }]),
  CELERY_EDGE_RECORD_KEY: log.key,
};

let sqs: SqsEmulator;
let client: SQSClient;
let intake: CreatedQueue;
let functions: LocalFunctions;
let worker: CeleryWorker;
const joined: CeleryWorker[] = [];
/** Through the relay; countdowns up to the threshold wait in SQS, further ETAs are parked. */
let viaRelay: Celery;
/** Through the relay with no SQS delay: the relay decides whether a worker may hold the task. */
let heldViaRelay: Celery;
/** Straight to Redis, as a Python producer would send. */
let direct: Celery;
const redis = createClient({ url: BROKER, socket: { reconnectStrategy: false } });

async function deleteOurKeys(): Promise<void> {
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length > 0) await redis.del(keys);
}

async function until(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

const received = (w: CeleryWorker, id: string): number => w.logs().split(`Task tasks.record[${id}] received`).length - 1;

beforeAll(async () => {
  // The refusals below are logged as errors by design; the assertions read outcomes, not log lines.
  process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
  process.env.POWERTOOLS_METRICS_DISABLED = "true";
  await redis.connect();
  await deleteOurKeys();
  await log.clear();
  sqs = await startSqsEmulator({ senderIds: SENDER_IDS });
  client = new SQSClient(sqsClientConfig(sqs.endpoint));
  const suffix = Math.random().toString(36).slice(2, 8);
  intake = await createQueue(client, `rr-intake-${suffix}`, { visibilityTimeout: 2, dlq: { maxReceiveCount: 3 } });
  const park = await createQueue(client, `rr-park-${suffix}`, { visibilityTimeout: 2 });
  const scheduleDlq = await createQueue(client, `rr-schedule-dlq-${suffix}`);
  functions = await startLocalFunctions({
    sqs,
    brokerUrl: BROKER,
    brokerTransportOptions: TRANSPORT_OPTIONS,
    policy: POLICY,
    intake,
    park,
    scheduleDlq,
    parkThresholdSeconds: THRESHOLD_S,
    leadSeconds: LEAD_S,
    scheduleGroup: "relay-redis",
  });
  worker = await startCeleryWorker({ queues: ["rr.default", "ce.video"], resultBackend: BROKER, env: workerEnv });
  const sqsOptions = { queueUrl: intake.url, endpoint: sqs.endpoint, credentials: LOCAL_CREDENTIALS };
  viaRelay = new Celery({ broker: sqsRelay({ ...sqsOptions, maxDelaySeconds: THRESHOLD_S }), defaultQueue: "rr.default" });
  heldViaRelay = new Celery({ broker: sqsRelay({ ...sqsOptions, useDelaySeconds: false }), defaultQueue: "rr.default" });
  direct = new Celery({ broker: BROKER, brokerTransportOptions: TRANSPORT_OPTIONS, defaultQueue: "rr.default" });
}, 120_000);

afterAll(async () => {
  await Promise.all([viaRelay?.close(), heldViaRelay?.close(), direct?.close()]);
  await functions?.stop();
  await Promise.all([worker?.stop(), ...joined.map((w) => w.stop())]);
  client?.destroy();
  await sqs?.stop();
  await deleteOurKeys();
  await redis.quit();
});

// First in the file: kombu's own restore on the first worker comes every tenth 10-s tick (~100 s
// after it started), and must not fall inside this test's window.
describe("far-ETA tasks on a Redis fleet", () => {
  it("runs a far-ETA task sent through parking once, while the same task sent straight to the worker and held past visibility_timeout runs twice", async () => {
    // Prepare: the same task, due in 20 s, sent both ways.
    const eta = new Date(Date.now() + 20_000);
    const straight = await direct.sendTask("tasks.record", { args: ["far-eta"], eta });
    const parked = await viaRelay.sendTask("tasks.record", { args: ["far-eta"], eta });
    expect(await until(() => received(worker, straight.id) === 1, 10_000)).toBe(true);
    expect(await until(() => functions.standIn.calls.some((c) => c.operation === "CreateSchedule" && c.name === `celery-edge-${parked.id}` && !c.error), 10_000)).toBe(true);

    // Act: once the straight task has been held longer than the visibility timeout, a worker joins.
    await new Promise((r) => setTimeout(r, (VISIBILITY_S + 1) * 1000));
    const joiner = await startCeleryWorker({ queues: ["rr.default"], resultBackend: BROKER, env: workerEnv });
    joined.push(joiner);
    // The restore must have run before the parked task is released (about a second before its ETA).
    expect(Date.now()).toBeLessThan(eta.getTime() - 3_000);

    // Assess
    const straightRuns = await log.waitFor({ where: (r) => r.id === straight.id, count: 2 }, 40_000);
    const [parkedRun] = await log.waitFor((r) => r.id === parked.id, 40_000);
    // Both acknowledged, nothing left for a restore to give out again.
    expect(await until(async () => (await redis.hLen(`${PREFIX}unacked`)) === 0, 5_000)).toBe(true);
    const runs = await log.read();
    console.log(`straight: ran ${straightRuns.length}× (at ${straightRuns.map((r) => (r.started_at * 1000 - eta.getTime()).toFixed(0)).join(", ")} ms from its ETA); parked: ran ${runs.filter((r) => r.id === parked.id).length}× (${(parkedRun!.started_at * 1000 - eta.getTime()).toFixed(0)} ms from its ETA)`);
    expect(runs.filter((r) => r.id === straight.id)).toHaveLength(2);
    expect(runs.filter((r) => r.id === parked.id)).toHaveLength(1);
    expect(parkedRun!.started_at * 1000).toBeGreaterThanOrEqual(eta.getTime() - 5);
    expect(functions.standIn.fired.filter((f) => f.name === `celery-edge-${parked.id}`)).toHaveLength(1);
    // The fleet is one worker again for the tests below, which look at its logs.
    await joiner.stop();
  }, 90_000);

  it("parks a task due later than half the workers' visibility_timeout even when it reaches the relay at once, and publishes it near its ETA", async () => {
    // Prepare: due in 8 s, above the relay's Redis threshold (half of 3 s), below the scheduler's.
    const eta = Date.now() + 8_000;
    const r = await heldViaRelay.sendTask("tasks.record", { args: ["held-back"], eta: new Date(eta) });

    // Act: the relay hands it to the scheduler function, which sends it back with an SQS delay.
    expect(await until(() => functions.handled.some((h) => h.fn === "scheduler" && h.body.includes(r.id)), 5_000)).toBe(true);
    await new Promise((res) => setTimeout(res, Math.max(0, eta - 3_000 - Date.now())));
    const receivedEarly = received(worker, r.id);
    const rec = await log.waitForTask(r.id, 20_000);

    // Assess: not in any worker's hands 3 s before its ETA; run once, on time.
    expect(receivedEarly).toBe(0);
    expect(rec.started_at * 1000).toBeGreaterThanOrEqual(eta - 5);
    expect(received(worker, r.id)).toBe(1);
  }, 30_000);
});

const CONTENT_TYPE = { json: "application/json", msgpack: "application/x-msgpack", yaml: "application/x-yaml", pickle: "application/x-python-serialize" } as const;

describe("relayed tasks run on the Redis fleet", () => {
  for (const serializer of ["json", "msgpack", "yaml", "pickle"] as const) {
    it(`runs a ${serializer} task with its args and kwargs`, async () => {
      const args = [1, "two", { three: [3.5, null, true] }];
      const kwargs = { k: "v", n: -7 };
      const r = await viaRelay.sendTask("tasks.record", { args, kwargs, serializer });
      const rec = await log.waitForTask(r.id, 20_000);
      expect(rec.args).toEqual(args);
      expect(rec.kwargs).toEqual(kwargs);
      expect(rec.content_type).toBe(CONTENT_TYPE[serializer]);
      // The policy's queue was declared as a worker would (also when no worker declared it yet).
      expect(await redis.sMembers(`${PREFIX}_kombu.binding.rr.default`)).toContain(`rr.default${SEP}${SEP}rr.default`);
    });
  }

  it("routes a topic publish by the bindings the workers stored", async () => {
    const r = await viaRelay.sendTask("tasks.record", { args: ["topic"], exchange: "celery_edge.topic", routingKey: "video.relayed" });
    const rec = await log.waitForTask(r.id, 20_000);
    expect([rec.exchange, rec.routing_key]).toEqual(["celery_edge.topic", "video.relayed"]);
  });

  it("runs relayed priorities lowest number first once a worker takes the queue", async () => {
    // Prepare: tasks of several priorities, all in Redis before any worker consumes rr.priority.
    const priorities = [9, 0, 6, 3, 7, 1];
    const step = (p: number): number => [0, 3, 6, 9].filter((s) => s <= p).pop()!;
    const sent = await viaRelay.sendMany(priorities.map((priority, i) => ({ task: "tasks.record", args: ["priority", i], queue: "rr.priority", priority })));
    const lists = [0, 3, 6, 9].map((s) => `${PREFIX}rr.priority${s ? `${SEP}${s}` : ""}`);
    expect(await until(async () => (await Promise.all(lists.map((k) => redis.lLen(k)))).reduce((a, b) => a + b, 0) === priorities.length, 20_000)).toBe(true);

    // Act
    const taker = await startCeleryWorker({ queues: ["rr.priority"], concurrency: 1, resultBackend: BROKER, env: workerEnv });
    joined.push(taker);

    // Assess: in step order (within a step the relay's order follows SQS, which does not keep one).
    const ids = new Set(sent.map((r) => r.id));
    const ran = (await log.waitFor({ where: (r) => ids.has(r.id), count: priorities.length }, 30_000)).map((r) => priorities[r.args[1] as number]!);
    expect(ran.map(step)).toEqual(priorities.map(step).sort((a, b) => a - b));
    await taker.stop();
  }, 60_000);
});

describe("the policy on a Redis fleet", () => {
  it("refuses a queue the policy does not list and Celery's event exchange: the records reach the DLQ and nothing reaches Redis", async () => {
    // Act
    const other = await viaRelay.sendTask("tasks.record", { args: ["refused"], queue: "rr.forbidden" });
    const events = await viaRelay.sendTask("tasks.record", { args: ["refused"], exchange: "celeryev", routingKey: "task.sent" });

    // Assess: both dead-lettered after their receives, each failed by the relay.
    const dead = new Set<string>();
    await until(async () => {
      const out = await client.send(new ReceiveMessageCommand({ QueueUrl: intake.dlqUrl!, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
      for (const m of out.Messages ?? []) dead.add((JSON.parse(m.Body!) as { task: { id: string } }).task.id);
      return dead.has(other.id) && dead.has(events.id);
    }, 30_000);
    expect([...dead].sort()).toEqual([other.id, events.id].sort());
    const handled = functions.handled.filter((h) => h.fn === "relay" && (h.body.includes(other.id) || h.body.includes(events.id)));
    expect(handled.length).toBeGreaterThanOrEqual(2);
    expect(handled.every((h) => h.failed)).toBe(true);
    expect(await redis.exists(`${PREFIX}rr.forbidden`)).toBe(0);
    expect((await log.read()).filter((r) => r.id === other.id || r.id === events.id)).toEqual([]);
  }, 45_000);
});

describe("revokes reach the Redis fleet", () => {
  it("revokes, from the SDK through the relay, a task the worker holds for its ETA", async () => {
    // Prepare: a task the worker receives now and holds for 8 s (sent straight: the relay would park it).
    const held = await direct.sendTask("tasks.record", { args: ["to-revoke"], countdown: 8 });
    expect(await until(() => received(worker, held.id) === 1, 10_000)).toBe(true);

    // Act: revoke it the way any producer does, through the intake queue.
    await viaRelay.revoke(held.id);
    expect(await until(() => worker.logs().includes(`revoked: ${held.id}`), 15_000)).toBe(true);
    // A marker due after it: once it has run, the revoked task's ETA has passed too.
    const marker = await direct.sendTask("tasks.record", { args: ["marker"], countdown: 9 });
    await log.waitForTask(marker.id, 30_000);

    // Assess
    expect((await log.read()).filter((r) => r.id === held.id)).toEqual([]);
    expect(worker.logs()).toMatch(new RegExp(`Discarding revoked task: tasks\\.record\\[${held.id}\\]`));
  }, 60_000);
});

describe("the rest of the Redis broker's acceptance list, through the relay", () => {
  for (const compression of ["gzip", "zlib"] as const) {
    it(`runs a ${compression}-compressed msgpack task`, async () => {
      const args = ["compressed", "x".repeat(2_000), [1, 2, 3]];
      const r = await viaRelay.sendTask("tasks.record", { args, serializer: "msgpack", compression });
      const rec = await log.waitForTask(r.id, 20_000);
      expect(rec.args).toEqual(args);
      expect(rec.headers?.compression).toBe("application/x-gzip");
    });
  }

  it("runs a 2-s countdown (below the park threshold) no earlier than its ETA", async () => {
    // Act
    const sentAt = Date.now();
    const r = await viaRelay.sendTask("tasks.record", { args: ["countdown"], countdown: 2 });
    const rec = await log.waitForTask(r.id, 20_000);

    // Assess: the ETA travelled with the task, and the worker started it no earlier; not parked.
    expect(rec.eta).not.toBeNull();
    const eta = Date.parse(rec.eta!);
    expect(eta).toBeGreaterThanOrEqual(sentAt + 2000 - 5);
    expect(rec.started_at * 1000).toBeGreaterThanOrEqual(eta - 5);
    expect(rec.started_at * 1000).toBeGreaterThanOrEqual(sentAt + 2000 - 5);
    expect(functions.standIn.calls.some((c) => c.name === `celery-edge-${r.id}`)).toBe(false);
  });

  it("runs a task relayed before any worker consumed its queue, once a worker starts", async () => {
    // Prepare: no worker consumes rr.early; the relay records the policy's binding as kombu's declare would.
    const r = await viaRelay.sendTask("tasks.record", { args: ["before-worker"], queue: "rr.early" });
    expect(await until(async () => (await redis.lLen(`${PREFIX}rr.early`)) === 1, 20_000)).toBe(true);
    expect(await redis.sMembers(`${PREFIX}_kombu.binding.rr.early`)).toEqual([`rr.early${SEP}${SEP}rr.early`]);
    expect((await log.read()).filter((x) => x.id === r.id)).toEqual([]);

    // Act
    const late = await startCeleryWorker({ queues: ["rr.early"], resultBackend: BROKER, env: workerEnv });
    joined.push(late);

    // Assess
    const rec = await log.waitForTask(r.id, 30_000);
    expect(rec.hostname).toBe(late.hostname);
    expect(rec.routing_key).toBe("rr.early");
    await late.stop();
  }, 60_000);

  it("runs 500 concurrent sends through the relay each exactly once", async () => {
    // Act: 500 concurrent sendTask calls into the intake queue; the relay takes them in SQS batches.
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => viaRelay.sendTask("tasks.record", { args: ["burst", i] })));
    const ids = new Set(results.map((r) => r.id));
    expect(ids.size).toBe(500);
    await log.waitFor({ where: (r) => ids.has(r.id), count: 500 }, 90_000);
    const allRan = Date.now() - started;
    // Read after a sentinel sent after the burst has run: a duplicate relayed publish would have run by then.
    const sentinel = await viaRelay.sendTask("tasks.record", { args: ["after-burst"] });
    await log.waitForTask(sentinel.id, 30_000);

    // Assess
    const runs = new Map<string, number>();
    for (const r of await log.read()) if (ids.has(r.id)) runs.set(r.id, (runs.get(r.id) ?? 0) + 1);
    console.log(`500 relayed sends: all run ${allRan} ms after the first send`);
    expect(runs.size).toBe(500);
    expect([...runs.values()].filter((n) => n !== 1)).toEqual([]);
    expect((await log.read()).filter((r) => r.args[0] === "burst").map((r) => r.args[1]).sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 500 }, (_, i) => i));
  }, 150_000);
});
