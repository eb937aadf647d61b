/**
 * `redisRest` end to end: an edge function bundled for workerd (run in real workerd through
 * miniflare) and for Vercel Edge (run in edge-runtime) publishes over HTTP to the Upstash REST
 * stand-in, which runs the commands on the real Redis; a real Celery worker started with
 * `broker=redis://127.0.0.1:6379/7` and a `global_keyprefix` runs the tasks. Topic routing follows
 * the bindings the worker stored, an unroutable message is refused, a batch is one round trip and a
 * wrong token is a typed error that shows no token. Every kombu serializer (from
 * `celery-edge/serializers`), zlib compression (workerd), a countdown, priorities and a task sent
 * before its queue's worker existed, and 500 concurrent edge requests each run exactly once.
 */
import { createClient } from "redis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { startUpstashRestStandin, type UpstashRestStandin } from "../fixtures/upstash-rest-standin.js";
import { bundle, VERCEL_EDGE_CONDITIONS, WORKERD_CONDITIONS } from "./bundle.js";
import { RUNTIME_VERSIONS, startEdgeRuntime, startWorkerd, type RunningWorker } from "./runtimes.js";

/** A database, key prefix, queues and exchange of our own: other suites use Redis beside this one. */
const DB = 7;
const REDIS_URL = `redis://127.0.0.1:6379/${DB}`;
const PREFIX = "rr:";
const DEFAULT_QUEUE = "rr.default";
const TOPIC_EXCHANGE = "rr.topic";
const TOKEN = "rr-standin-token-5b1f0c";
const WRONG_TOKEN = "rr-wrong-token-77e2aa";
const HANDLER = new URL("./fixtures/redis-rest-worker.ts", import.meta.url).pathname;

type Outcome = { id: string } | { error: string; code: string; message: string; isCeleryError: boolean };

const log = new ExecutionLog({ key: "celery_edge:executions:redis-rest" });
let standin: UpstashRestStandin;
let worker: CeleryWorker;

async function flushDb(): Promise<void> {
  const redis = createClient({ url: REDIS_URL, socket: { reconnectStrategy: false } });
  await redis.connect();
  await redis.flushDb();
  await redis.quit();
}

beforeAll(async () => {
  console.log(`runtimes: workerd ${RUNTIME_VERSIONS.workerd} (miniflare ${RUNTIME_VERSIONS.miniflare}), edge-runtime ${RUNTIME_VERSIONS.edgeRuntime}`);
  await flushDb();
  standin = await startUpstashRestStandin({ redisUrl: REDIS_URL, token: TOKEN });
  worker = await startCeleryWorker({
    queues: [DEFAULT_QUEUE, "rr.video"],
    env: {
      CELERY_BROKER_URL: REDIS_URL,
      CELERY_BROKER_TRANSPORT_OPTIONS: JSON.stringify({ global_keyprefix: PREFIX }),
      CELERY_EDGE_DEFAULT_QUEUE: DEFAULT_QUEUE,
      CELERY_EDGE_EXTRA_QUEUES: JSON.stringify([{ name: "rr.video", exchange: TOPIC_EXCHANGE, exchange_type: "topic", routing_key: "video.#" }]),
      CELERY_EDGE_RECORD_KEY: log.key,
    },
  });
}, 90_000);

afterAll(async () => {
  await worker?.stop();
  await standin?.stop();
  await flushDb();
});

beforeEach(async () => {
  await log.clear();
});

const env = (): Record<string, string> => ({
  REDIS_REST_URL: standin.url,
  REDIS_REST_TOKEN: TOKEN,
  REDIS_DB: String(DB),
  REDIS_KEYPREFIX: PREFIX,
  DEFAULT_QUEUE,
});

const send = async (edge: RunningWorker, calls: unknown[], token?: string): Promise<Outcome[]> => {
  const response = await edge.fetch("/send", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ calls, token }) });
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as Outcome[];
};

const idOf = (o: Outcome | undefined): string => {
  if (!o || !("id" in o)) throw new Error(`not sent: ${JSON.stringify(o)}`);
  return o.id;
};

const workerEnv = (queues: { name: string; exchange?: string; exchange_type?: string; routing_key?: string }[]): Record<string, string> => ({
  CELERY_BROKER_URL: REDIS_URL,
  CELERY_BROKER_TRANSPORT_OPTIONS: JSON.stringify({ global_keyprefix: PREFIX }),
  CELERY_EDGE_DEFAULT_QUEUE: DEFAULT_QUEUE,
  CELERY_EDGE_EXTRA_QUEUES: JSON.stringify(queues),
  CELERY_EDGE_RECORD_KEY: log.key,
});

const CONTENT_TYPE = { json: "application/json", msgpack: "application/x-msgpack", yaml: "application/x-yaml", pickle: "application/x-python-serialize" } as const;
/** kombu's default priority steps, and the list a priority lands in (`<queue>` or `<queue>\x06\x16<step>`). */
const STEPS = [0, 3, 6, 9];
const step = (p: number): number => STEPS.filter((s) => s <= p).pop()!;

async function listLength(key: string): Promise<number> {
  const redis = createClient({ url: REDIS_URL, socket: { reconnectStrategy: false } });
  await redis.connect();
  try {
    return await redis.lLen(key);
  } finally {
    await redis.quit();
  }
}

async function until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

/** The behaviours every runtime must show, run against a started edge function. */
function behaviours(label: string, start: () => Promise<RunningWorker>, { compression }: { compression: boolean }): void {
  let edge: RunningWorker;
  beforeAll(async () => {
    edge = await start();
  }, 60_000);
  afterAll(async () => {
    await edge?.dispose();
  });

  it("sends a task to the default queue that the Celery worker on redis://…/7 runs", async () => {
    // Act
    const [sent] = await send(edge, [{ task: "tasks.add", args: [2, 3] }]);

    // Assess
    const record = await log.waitForTask(idOf(sent), 20_000);
    expect(record.name).toBe("tasks.add");
    expect(record.args).toEqual([2, 3]);
    expect(record.routing_key).toBe(DEFAULT_QUEUE);
    expect(record.hostname).toBe(worker.hostname);
  });

  it("routes by topic through the binding the worker stored, with nothing configured on the edge", async () => {
    // Act
    const [sent] = await send(edge, [{ task: "tasks.record", args: ["topic"], exchange: TOPIC_EXCHANGE, routingKey: "video.edge.hd" }]);

    // Assess
    const record = await log.waitForTask(idOf(sent), 20_000);
    expect([record.exchange, record.routing_key]).toEqual([TOPIC_EXCHANGE, "video.edge.hd"]);
    expect(record.args).toEqual(["topic"]);
  });

  it("refuses a message no binding takes with ERR_UNROUTABLE, and sends the rest of its batch", async () => {
    // Act
    const [lost, kept] = await send(edge, [
      { task: "tasks.record", args: ["lost"], exchange: TOPIC_EXCHANGE, routingKey: "audio.edge" },
      { task: "tasks.record", args: ["kept"], exchange: TOPIC_EXCHANGE, routingKey: "video.kept" },
    ]);

    // Assess
    expect(lost).toMatchObject({ error: "PublishError", code: "ERR_UNROUTABLE", isCeleryError: true });
    expect((lost as { message: string }).message).toContain('no queue bound to exchange "rr.topic" with routing key "audio.edge"');
    // The sentinel sent after it in the same batch ran; the refused one did not.
    await log.waitForTask(idOf(kept), 20_000);
    expect((await log.read()).map((r) => r.args[0])).toEqual(["kept"]);
  });

  it("sends a batch of 25 in one /pipeline request, and the worker runs each once", async () => {
    // Prepare
    const before = standin.requests["/pipeline"] ?? 0;

    // Act
    const outcomes = await send(edge, Array.from({ length: 25 }, (_, i) => ({ task: "tasks.record", args: ["batch", i] })));

    // Assess
    expect((standin.requests["/pipeline"] ?? 0) - before).toBe(1);
    const ids = new Set(outcomes.map(idOf));
    const records = await log.waitFor({ where: (r) => ids.has(r.id), count: 25 }, 30_000);
    expect(records.map((r) => r.args[1]).sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(new Set(records.map((r) => r.id)).size).toBe(25);
  });

  for (const serializer of ["json", "yaml", "msgpack", "pickle"] as const) {
    it(`sends a ${serializer} task the worker runs with its args and kwargs`, async () => {
      // Act
      const args = [1, "two", { three: [3.5, null, true] }];
      const kwargs = { k: "v", n: -7 };
      const [sent] = await send(edge, [{ task: "tasks.record", args, kwargs, serializer }]);

      // Assess
      const record = await log.waitForTask(idOf(sent), 20_000);
      expect(record.content_type).toBe(CONTENT_TYPE[serializer]);
      expect(record.args).toEqual(args);
      expect(record.kwargs).toEqual(kwargs);
    });
  }

  // Not in edge-runtime 4.0.1: it has no CompressionStream, which the SDK's compression uses (refused, below).
  it.runIf(compression)("sends a zlib-compressed msgpack task the worker inflates", async () => {
    const args = ["compressed", "x".repeat(2_000)];
    const [sent] = await send(edge, [{ task: "tasks.record", args, serializer: "msgpack", compression: "zlib" }]);
    const record = await log.waitForTask(idOf(sent), 20_000);
    expect(record.args).toEqual(args);
    expect(record.headers?.compression).toBe("application/x-gzip");
  });

  it.runIf(!compression)("refuses compression with UnsupportedRuntimeError where the runtime has no CompressionStream", async () => {
    const response = await edge.fetch("/send", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ calls: [{ task: "tasks.record", args: ["compressed"], compression: "zlib" }] }),
    });
    expect(response.status).toBe(422);
    expect(await response.json()).toEqual({ error: "UnsupportedRuntimeError", code: "ERR_UNSUPPORTED_RUNTIME", message: expect.stringContaining("CompressionStream") });
  });

  it("sends a 2-s countdown the worker runs no earlier than asked", async () => {
    // Act
    const sentAt = Date.now();
    const [sent] = await send(edge, [{ task: "tasks.record", args: ["countdown"], countdown: 2 }]);

    // Assess
    const record = await log.waitForTask(idOf(sent), 20_000);
    expect(record.eta).not.toBeNull();
    expect(Date.parse(record.eta!)).toBeGreaterThanOrEqual(sentAt + 2000 - 5);
    expect(record.started_at * 1000).toBeGreaterThanOrEqual(sentAt + 2000 - 5);
  });

  it("sends tasks before any worker consumes their queue; a worker started later runs them lowest priority number first, in send order within a step", async () => {
    // Prepare: one batch of mixed priorities plus a plain task, all to a queue no worker consumes yet.
    const queue = `rr.late.${label}`;
    const priorities = [9, 0, 6, 3, 7, 1, 4];
    const outcomes = await send(edge, [
      ...priorities.map((priority, i) => ({ task: "tasks.record", args: ["priority", i], queue, priority })),
      { task: "tasks.record", args: ["before-worker"], queue },
    ]);
    const ids = outcomes.map(idOf);
    const lists = STEPS.map((s) => `${PREFIX}${queue}${s ? `\x06\x16${s}` : ""}`);
    expect((await Promise.all(lists.map(listLength))).reduce((a, b) => a + b, 0)).toBe(priorities.length + 1);
    expect((await log.read()).filter((r) => ids.includes(r.id))).toEqual([]);

    // Act
    const late = await startCeleryWorker({ queues: [queue], concurrency: 1, env: workerEnv([{ name: queue }]) });
    try {
      // Assess
      const records = await log.waitFor({ where: (r) => ids.includes(r.id), count: ids.length }, 30_000);
      expect(records.every((r) => r.hostname === late.hostname)).toBe(true);
      const order = records.map((r) => ids.indexOf(r.id));
      // The plain task has no priority: kombu reads that as 0.
      const expected = [...priorities, 0].map((p, i) => ({ p: step(p), i })).sort((a, b) => a.p - b.p || a.i - b.i).map((x) => x.i);
      expect(order).toEqual(expected);
    } finally {
      await late.stop();
    }
  }, 60_000);

  it("runs 500 concurrent sends, one edge request each, each exactly once", async () => {
    // Act: 500 concurrent requests to the edge function, each publishing one task in its own app.
    const before = { ...standin.requests };
    const startedAt = Date.now();
    const outcomes = (await Promise.all(Array.from({ length: 500 }, (_, i) => send(edge, [{ task: "tasks.record", args: ["burst", i] }])))).flat();
    const sentMs = Date.now() - startedAt;
    const restCalls = Object.entries(standin.requests).map(([path, n]) => `${path} ${n - (before[path] ?? 0)}`).join(", ");
    const ids = new Set(outcomes.map(idOf));
    expect(ids.size).toBe(500);
    await log.waitFor({ where: (r) => ids.has(r.id), count: 500 }, 90_000);
    const ranMs = Date.now() - startedAt;
    // Read after a sentinel queued behind the burst has run: a duplicate would have run by then.
    const [sentinel] = await send(edge, [{ task: "tasks.record", args: ["after-burst"] }]);
    await log.waitForTask(idOf(sentinel), 30_000);

    // Assess
    const runs = new Map<string, number>();
    for (const r of await log.read()) if (ids.has(r.id)) runs.set(r.id, (runs.get(r.id) ?? 0) + 1);
    console.log(`${label}: 500 concurrent edge requests answered in ${sentMs} ms, all run after ${ranMs} ms; REST requests: ${restCalls}`);
    expect(runs.size).toBe(500);
    expect([...runs.values()].filter((n) => n !== 1)).toEqual([]);
    expect((await log.read()).filter((r) => r.args[0] === "burst").map((r) => r.args[1]).sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 500 }, (_, i) => i));
  }, 150_000);

  it("answers a wrong token with AuthenticationError (ERR_AUTH) that shows no token", async () => {
    // Act
    const [refused] = await send(edge, [{ task: "tasks.add", args: [1, 1] }], WRONG_TOKEN);

    // Assess
    expect(refused).toMatchObject({ error: "AuthenticationError", code: "ERR_AUTH", isCeleryError: true });
    const message = (refused as { message: string }).message;
    expect(message).toMatch(/refused the REST token \(HTTP 401.*the tasks were not sent/);
    expect(message).not.toContain(WRONG_TOKEN);
    expect(message).not.toContain(TOKEN);
  });
}

describe("redisRest in workerd", () => {
  behaviours("workerd", async () => {
    const b = await bundle({
      contents: `import { handle } from ${JSON.stringify(HANDLER)};\nexport default { fetch: (request, env) => handle(request, env) };`,
      conditions: WORKERD_CONDITIONS,
      loader: "js",
    });
    expect(b.nodeBuiltins).toEqual([]);
    return startWorkerd({ script: b.code, compatibilityDate: "2025-09-01", bindings: env() });
  }, { compression: true });
});

describe("redisRest in edge-runtime (Vercel Edge)", () => {
  behaviours("vercel", async () => {
    const b = await bundle({
      contents: `import { handle } from ${JSON.stringify(HANDLER)};\naddEventListener("fetch", (event) => event.respondWith(handle(event.request, process.env)));`,
      conditions: VERCEL_EDGE_CONDITIONS,
      format: "iife",
      loader: "js",
    });
    expect(b.nodeBuiltins).toEqual([]);
    return startEdgeRuntime({ code: b.code, env: env() });
  }, { compression: false });
});
