/**
 * The SDK on a Redis broker (kombu's Redis transport), proven by a real Celery 5 worker started with
 * `broker=redis://127.0.0.1:6379/12` and a `global_keyprefix`, through its own execution records.
 * Tasks sent before the worker existed run once it starts; priorities run lowest number first.
 */
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Celery, PublishError, type CeleryError } from "../../sdk/node.js";
import { RedisTransport, redisTransport } from "../../sdk/transports/redis.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";

const DB = 12;
const BROKER = `redis://127.0.0.1:6379/${DB}`;
const TRANSPORT_OPTIONS = { global_keyprefix: "rb:" };
const log = new ExecutionLog({ key: "celery_edge:executions:redis-broker" });
const appOptions = {
  broker: BROKER,
  backend: BROKER,
  brokerTransportOptions: TRANSPORT_OPTIONS,
  defaultQueue: "ce.default",
  queues: {
    "ce.video": { exchange: "celery_edge.topic", exchangeType: "topic" as const, routingKey: "video.#" },
    "ce.image": { exchange: "celery_edge.topic", exchangeType: "topic" as const, routingKey: "image.#" },
  },
};
const PRIORITIES = [9, 0, 6, 3, 9, 0, 6, 3, 5, 1];
const STEP = (p: number): number => [0, 3, 6, 9].filter((s) => s <= p).pop()!;

let worker: CeleryWorker | undefined;
let app: Celery;
let proxy: TcpProxy | undefined;
const early: { queued: string; topic: string; priority: string[] } = { queued: "", topic: "", priority: [] };

async function flushDb(): Promise<void> {
  const redis = createClient({ url: BROKER, socket: { reconnectStrategy: false } });
  await redis.connect();
  await redis.flushDb();
  await redis.quit();
}

beforeAll(async () => {
  await flushDb();
  await log.clear();
  app = new Celery(appOptions);
  // Before any worker: nothing in Redis but what the SDK writes.
  early.queued = (await app.sendTask("tasks.record", { args: ["early-queue"], queue: "ce.video" })).id;
  early.topic = (await app.sendTask("tasks.record", { args: ["early-topic"], exchange: "celery_edge.topic", routingKey: "video.early" })).id;
  const batch = await app.sendMany(PRIORITIES.map((priority, i) => ({ task: "tasks.record", args: ["priority", i], priority })));
  early.priority = batch.map((r) => r.id);
  worker = await startCeleryWorker({
    queues: ["ce.default", "ce.video", "ce.image"],
    concurrency: 1,
    resultBackend: BROKER,
    env: {
      CELERY_BROKER_URL: BROKER,
      CELERY_BROKER_TRANSPORT_OPTIONS: JSON.stringify(TRANSPORT_OPTIONS),
      CELERY_EDGE_RECORD_KEY: log.key,
    },
  });
}, 90_000);

afterAll(async () => {
  await app?.close();
  await proxy?.close();
  await worker?.stop();
  await flushDb();
});

const SAMPLE_ARGS = [1, "two", { three: 3 }, [4.5, null, true, false], "h\u00e9llo \u2603 \u{1F600}"];
const SAMPLE_KWARGS = { k: "v", n: [1, 2], big: 2 ** 40, neg: -5, f: 0.25, none: null };

describe("tasks sent before the worker existed", () => {
  it("run once it starts, through the binding the SDK recorded for a topic queue", async () => {
    const [queued] = await log.waitFor((r) => r.id === early.queued, 30_000);
    const [topic] = await log.waitFor((r) => r.id === early.topic, 30_000);
    expect(queued!.args).toEqual(["early-queue"]);
    expect(topic!.exchange).toBe("celery_edge.topic");
    expect(topic!.routing_key).toBe("video.early");
  });

  it("run lower priority numbers first, in send order within a step", async () => {
    const ids = new Set(early.priority);
    const records = await log.waitFor({ where: (r) => ids.has(r.id), count: PRIORITIES.length }, 30_000);
    const ran = records.map((r) => r.args[1] as number);
    const expected = PRIORITIES.map((p, i) => ({ p, i }))
      .sort((a, b) => STEP(a.p) - STEP(b.p) || a.i - b.i)
      .map((x) => x.i);
    expect(ran).toEqual(expected);
  });
});

describe("messages reach the worker intact", () => {
  for (const serializer of ["json", "yaml", "msgpack", "pickle"]) {
    for (const compression of [undefined, "gzip", "zlib"] as const) {
      it(`round-trips args and kwargs with ${serializer}${compression ? ` and ${compression}` : ""}`, async () => {
        const r = await app.sendTask("tasks.echo", { args: SAMPLE_ARGS, kwargs: SAMPLE_KWARGS, serializer, compression });
        const rec = await log.waitForTask(r.id, 20_000);
        expect(rec.args).toEqual(SAMPLE_ARGS);
        expect(rec.kwargs).toEqual(SAMPLE_KWARGS);
        expect(rec.headers?.compression ?? null).toBe(compression ? { gzip: "application/x-gzip", zlib: "application/x-gzip" }[compression] : null);
      });
    }
  }

  it("runs a countdown no earlier than asked", async () => {
    const sentAt = Date.now();
    const r = await app.sendTask("tasks.record", { args: ["countdown"], countdown: 2 });
    const rec = await log.waitForTask(r.id, 20_000);
    expect(rec.eta).not.toBeNull();
    expect(rec.started_at * 1000).toBeGreaterThanOrEqual(sentAt + 2000 - 5);
  });

  it("returns results through a Redis backend on the same server", async () => {
    const r = await app.sendTask<number>("tasks.add", { args: [2, 3] });
    expect(await r.get({ timeout: 20_000 })).toBe(5);
  });
});

describe("exchanges", () => {
  it("routes a topic publish by the app's queues", async () => {
    const r = await app.sendTask("tasks.record", { args: ["image"], exchange: "celery_edge.topic", routingKey: "image.resize" });
    const rec = await log.waitForTask(r.id, 20_000);
    expect([rec.exchange, rec.routing_key]).toEqual(["celery_edge.topic", "image.resize"]);
  });

  it("routes a topic publish by the workers' bindings when the app does not know the exchange (kombu's producer drops it)", async () => {
    const bare = new Celery({ broker: BROKER, brokerTransportOptions: TRANSPORT_OPTIONS, defaultQueue: "ce.default" });
    try {
      const r = await bare.sendTask("tasks.record", { args: ["bare"], exchange: "celery_edge.topic", routingKey: "video.compress" });
      const rec = await log.waitForTask(r.id, 20_000);
      expect(rec.routing_key).toBe("video.compress");
    } finally {
      await bare.close();
    }
  });

  it("refuses a topic publish no binding takes with ERR_UNROUTABLE, and nothing of it runs", async () => {
    const taskId = crypto.randomUUID();
    const error = await app.sendTask("tasks.record", { args: ["lost"], taskId, exchange: "celery_edge.topic", routingKey: "audio.x" }).then(
      () => null,
      (e: CeleryError) => e,
    );
    expect(error).toBeInstanceOf(PublishError);
    expect(error!.code).toBe("ERR_UNROUTABLE");
    // A sentinel sent after it, on the one worker process, runs after anything sent before it.
    const sentinel = await app.sendTask("tasks.record", { args: ["sentinel"], exchange: "celery_edge.topic", routingKey: "video.sentinel" });
    await log.waitForTask(sentinel.id, 20_000);
    expect((await log.read()).filter((r) => r.id === taskId)).toEqual([]);
  });
});

describe("load and connections", () => {
  it("runs 500 concurrent sends each exactly once, over one connection", async () => {
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => app.sendTask("tasks.record", { args: ["burst", i] })));
    const ids = new Set(results.map((r) => r.id));
    expect(ids.size).toBe(500);
    await log.waitFor({ where: (r) => ids.has(r.id), count: 500 }, 60_000);
    // Read after a sentinel queued behind the burst has run: a duplicate would have run by then.
    const sentinel = await app.sendTask("tasks.record", { args: ["after-burst"] });
    await log.waitForTask(sentinel.id, 30_000);
    const runs = new Map<string, number>();
    for (const r of await log.read()) if (ids.has(r.id)) runs.set(r.id, (runs.get(r.id) ?? 0) + 1);
    expect(runs.size).toBe(500);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect((app.transport as RedisTransport).connectionsOpened).toBe(1);
  }, 90_000);

  it("finds a frozen connection with a PING after an idle spell and sends on a new one", async () => {
    proxy = await startTcpProxy({ host: "127.0.0.1", port: 6379 });
    const transport = redisTransport(`redis://127.0.0.1:${proxy.port}/${DB}`, { transportOptions: TRANSPORT_OPTIONS, idleProbeAfterMs: 100, probeTimeoutMs: 300 });
    const viaProxy = new Celery({ broker: transport, defaultQueue: "ce.default" });
    try {
      await viaProxy.sendTask("tasks.record", { args: ["before-freeze"] });
      proxy.freezeExisting();
      await new Promise((r) => setTimeout(r, 150)); // idle longer than idleProbeAfterMs
      const r = await viaProxy.sendTask("tasks.record", { args: ["after-freeze"] });
      expect((await log.waitForTask(r.id, 20_000)).args).toEqual(["after-freeze"]);
      expect(transport.connectionsOpened).toBe(2);
    } finally {
      await viaProxy.close();
    }
  });

  it("gives up on a connection that stops answering within the call's timeout (TimeoutError)", async () => {
    proxy ??= await startTcpProxy({ host: "127.0.0.1", port: 6379 });
    const transport = redisTransport(`redis://127.0.0.1:${proxy.port}/${DB}`, { transportOptions: TRANSPORT_OPTIONS, idleProbeAfterMs: 60_000 });
    const message = await app.buildMessage("tasks.record", { args: ["before-timeout"] });
    await transport.publish(message);
    proxy.freezeExisting();
    const started = Date.now();
    const error = await transport.publish(message, { timeout: 400 }).then(() => null, (e: CeleryError) => e);
    expect(error?.code).toBe("ERR_TIMEOUT");
    expect(Date.now() - started).toBeLessThan(2_000);
    await transport.close();
  });

  it("reports a broker that refuses connections as ERR_CONNECTION, without the password", async () => {
    const down = new Celery({ broker: "redis://:s3cret@127.0.0.1:1/12" });
    const error = await down.sendTask("tasks.record").then(() => null, (e: CeleryError) => e);
    expect(error?.code).toBe("ERR_CONNECTION");
    expect(error!.message).not.toContain("s3cret");
    await down.close();
  });
});

