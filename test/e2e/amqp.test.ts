/**
 * The producer SDK on the direct AMQP path, proven by a real Celery 5 worker's own execution records.
 */
import type { ConfirmChannel } from "amqplib";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { BatchPublishError, Celery, PublishError, type CeleryError } from "../../sdk/node.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { purgeQueues, queueDepth, withChannel, withConfirmChannel } from "../helpers/rabbit.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";

const BROKER = "amqp://guest:guest@127.0.0.1:5672//";
const QUEUES = ["ce.default", "ce.video", "ce.image", "ce.priority"];
const log = new ExecutionLog();
let worker: CeleryWorker;
let app: Celery;

/** The test app's topology, as a Celery producer configures it (`task_queues`). */
const appOptions = {
  defaultQueue: "ce.default",
  queues: {
    "ce.video": { exchange: "celery_edge.topic", exchangeType: "topic" as const, routingKey: "video.#" },
    "ce.image": { exchange: "celery_edge.topic", exchangeType: "topic" as const, routingKey: "image.#" },
    "ce.priority": { exchange: "", routingKey: "ce.priority", queueArguments: { "x-max-priority": 10 } },
  },
};

beforeAll(async () => {
  await purgeQueues(QUEUES);
  worker = await startCeleryWorker({ queues: ["ce.default", "ce.video", "ce.image"] });
  app = new Celery({ broker: BROKER, ...appOptions });
});

afterAll(async () => {
  await app?.close();
  await worker?.stop();
});

beforeEach(async () => {
  await log.clear();
});

const SAMPLE_ARGS = [1, "two", { three: 3 }, [4.5, null, true, false], "h\u00e9llo \u2603 \u{1F600}"];
const SAMPLE_KWARGS = { k: "v", n: [1, 2], big: 2 ** 40, neg: -5, f: 0.25, none: null, nested: { a: [{ b: "c" }] } };

describe("arguments reach the worker intact", () => {
  for (const protocol of [2, 1] as const) {
    for (const serializer of ["json", "yaml", "msgpack", "pickle"]) {
      it(`round-trips args and kwargs with ${serializer} over protocol ${protocol}`, async () => {
        const r = await app.sendTask("tasks.echo", { args: SAMPLE_ARGS, kwargs: SAMPLE_KWARGS, serializer, protocol });
        const rec = await log.waitForTask(r.id);
        expect(rec.args).toEqual(SAMPLE_ARGS);
        expect(rec.kwargs).toEqual(SAMPLE_KWARGS);
        expect(rec.protocol).toBe(protocol);
        expect(rec.content_type).toBe(
          { json: "application/json", yaml: "application/x-yaml", msgpack: "application/x-msgpack", pickle: "application/x-python-serialize" }[serializer],
        );
      });
    }
  }

  it("runs a typed task sent with delay()", async () => {
    const add = app.task<[number, number], number>("tasks.add");
    const r = await add.delay(2, 2);
    const rec = await log.waitForTask(r.id);
    expect([rec.name, rec.args, rec.kwargs]).toEqual(["tasks.add", [2, 2], {}]);
  });

  it("decompresses a zlib-compressed body", async () => {
    const r = await app.sendTask("tasks.echo", { args: ["x".repeat(10_000)], compression: "zlib" });
    expect((await log.waitForTask(r.id)).args).toEqual(["x".repeat(10_000)]);
  });

  it("keeps a custom task id", async () => {
    const r = await app.sendTask("tasks.echo", { args: [], taskId: "my-own-id-123" });
    expect(r.id).toBe("my-own-id-123");
    expect((await log.waitForTask("my-own-id-123")).id).toBe("my-own-id-123");
  });
});

describe("routing", () => {
  it("routes by routing key on a topic exchange to the bound queue", async () => {
    const v = await app.sendTask("tasks.echo", { args: ["v"], exchange: "celery_edge.topic", routingKey: "video.compress", priority: 7 });
    const i = await app.sendTask("tasks.echo", { args: ["i"], exchange: "celery_edge.topic", routingKey: "image.resize.large" });
    const [rv, ri] = [await log.waitForTask(v.id), await log.waitForTask(i.id)];
    expect([rv.exchange, rv.routing_key, rv.priority]).toEqual(["celery_edge.topic", "video.compress", 7]);
    expect([ri.exchange, ri.routing_key]).toEqual(["celery_edge.topic", "image.resize.large"]);
  });

  it("sends a plain queue through the default exchange with the queue name as key", async () => {
    const r = await app.sendTask("tasks.echo", { args: [], queue: "ce.default" });
    const rec = await log.waitForTask(r.id);
    expect([rec.exchange, rec.routing_key]).toEqual(["", "ce.default"]);
  });

  it("applies app routes by glob pattern, with call options winning", async () => {
    const routed = new Celery({ broker: BROKER, ...appOptions, routes: { "tasks.ec*": { exchange: "celery_edge.topic", routingKey: "video.routed" } } });
    try {
      const a = await routed.sendTask("tasks.echo", { args: ["routed"] });
      const b = await routed.sendTask("tasks.echo", { args: ["override"], routingKey: "image.override" });
      const [ra, rb] = [await log.waitForTask(a.id), await log.waitForTask(b.id)];
      // A matched route drops Celery's unset priority, so kombu's default 0 goes on the wire.
      expect([ra.exchange, ra.routing_key, ra.priority]).toEqual(["celery_edge.topic", "video.routed", 0]);
      expect([rb.exchange, rb.routing_key]).toEqual(["celery_edge.topic", "image.override"]);
    } finally {
      await routed.close();
    }
  });
});

describe("priority", () => {
  it("runs a higher-priority task queued behind lower ones first", async () => {
    await purgeQueues(["ce.priority"]);
    const low = await app.sendMany(Array.from({ length: 5 }, (_, n) => ({ task: "tasks.echo", args: [`low${n}`], queue: "ce.priority", priority: 1 })));
    const high = await app.sendTask("tasks.echo", { args: ["high"], queue: "ce.priority", priority: 9 });
    expect(await queueDepth("ce.priority")).toBe(6);
    const pw = await startCeleryWorker({ queues: ["ce.priority"], concurrency: 1, pool: "solo" });
    try {
      const recs = await log.waitFor({ where: (r) => r.routing_key === "ce.priority", count: 6 }, 30_000);
      recs.sort((a, b) => a.started_at - b.started_at);
      expect(recs[0]!.id).toBe(high.id);
      expect(recs[0]!.priority).toBe(9);
      expect(new Set(recs.slice(1).map((r) => r.id))).toEqual(new Set(low.map((r) => r.id)));
    } finally {
      await pw.stop();
    }
  });
});

describe("timing", () => {
  it("runs a countdown task no earlier than asked", async () => {
    const sent = Date.now();
    const r = await app.sendTask("tasks.echo", { args: [], countdown: 3 });
    const rec = await log.waitForTask(r.id, 20_000);
    expect(rec.started_at * 1000).toBeGreaterThanOrEqual(sent + 3_000);
    expect(rec.eta).not.toBeNull();
  });

  it("runs an eta task no earlier than its eta", async () => {
    const eta = new Date(Date.now() + 2_500);
    const r = await app.sendTask("tasks.echo", { args: [], eta });
    const rec = await log.waitForTask(r.id, 20_000);
    expect(rec.started_at * 1000).toBeGreaterThanOrEqual(eta.getTime());
  });

  it("does not execute a task that already expired", async () => {
    const expired = await app.sendTask("tasks.echo", { args: ["expired"], expires: new Date(Date.now() - 60_000) });
    // The worker runs ce.default in order (one process): the marker sent after it ran last.
    const marker = await app.sendTask("tasks.echo", { args: ["marker"] });
    await log.waitForTask(marker.id);
    expect((await log.read()).map((r) => r.id)).not.toContain(expired.id);
  });

  it("does not execute a task whose expiry passes while it waits for its eta", async () => {
    const r = await app.sendTask("tasks.echo", { args: ["late"], countdown: 2, expires: 1 });
    const marker = await app.sendTask("tasks.echo", { args: ["marker"], countdown: 3 });
    await log.waitForTask(marker.id, 20_000);
    expect((await log.read()).map((x) => x.id)).not.toContain(r.id);
  });
});

/** amqplib's confirm channel class (its module is not importable directly), as the SDK gets it. */
const confirmChannelPrototype = (): Promise<ConfirmChannel> => withConfirmChannel(async (ch) => Object.getPrototypeOf(ch) as ConfirmChannel);

describe("AMQP semantics", () => {
  it("reuses one connection across many calls", async () => {
    const local = new AmqpTransport({ url: BROKER });
    const a = new Celery({ broker: local, ...appOptions });
    try {
      for (let i = 0; i < 20; i++) await a.sendTask("tasks.echo", { args: [i] });
      expect(local.connectionsOpened).toBe(1);
      await log.waitFor(20);
    } finally {
      await a.close();
    }
  });

  it("sends a batch with sendMany and every task runs", async () => {
    const results = await app.sendMany(Array.from({ length: 100 }, (_, i) => ({ task: "tasks.add", args: [i, 1] })));
    const recs = await log.waitFor(100, 30_000);
    expect(new Set(recs.map((r) => r.id))).toEqual(new Set(results.map((r) => r.id)));
  });

  it("sends a batch bigger than amqplib's write buffer in slices, waiting for 'drain', and every task runs", async () => {
    // Prepare: watch (not replace) amqplib's publish, to know the batch really outgrew the buffer.
    const publish = vi.spyOn(await confirmChannelPrototype(), "publish");
    try {
      // Act
      const results = await app.sendMany(Array.from({ length: 3_000 }, (_, i) => ({ task: "tasks.add", args: [i, 1] })));

      // Assess
      expect(publish.mock.results.some((r) => r.type === "return" && r.value === false)).toBe(true);
      const recs = await log.waitFor(3_000, 120_000);
      expect(new Set(recs.map((r) => r.id))).toEqual(new Set(results.map((r) => r.id)));
    } finally {
      publish.mockRestore();
    }
  }, 150_000);

  it("fails the unwritten rest of a batch as not published when the connection drops while it waits for 'drain'", async () => {
    // Prepare: the connection goes through a proxy that is cut the first time amqplib's buffer fills.
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: 5672 });
    const a = new Celery({ broker: new AmqpTransport({ url: `amqp://guest:guest@127.0.0.1:${proxy.port}//` }), ...appOptions });
    await a.sendTask("tasks.echo", { args: ["connected"] });
    await log.waitFor(1);
    const proto = await confirmChannelPrototype();
    const original = proto.publish;
    let cut = false;
    proto.publish = function (this: ConfirmChannel, ...args: Parameters<ConfirmChannel["publish"]>): boolean {
      const ok = original.apply(this, args);
      if (!ok && !cut) {
        cut = true;
        proxy.setDown(true);
      }
      return ok;
    };
    try {
      // Act
      const err = await a.sendMany(Array.from({ length: 3_000 }, (_, i) => ({ task: "tasks.echo", args: [`cut-${i}`] }))).catch((e: unknown) => e);

      // Assess: every task has a typed outcome; the ones never written say so and never run.
      expect(cut).toBe(true);
      expect(err).toBeInstanceOf(BatchPublishError);
      const outcomes = (err as BatchPublishError).outcomes;
      expect(outcomes).toHaveLength(3_000);
      const failed = outcomes.filter((o) => !o.ok);
      for (const o of failed) expect(["ERR_CONNECTION", "ERR_CHANNEL_CLOSED"]).toContain(o.error.code);
      const unwritten = failed.filter((o) => o.error.code === "ERR_CONNECTION" && /it was not published/.test(o.error.message));
      expect(unwritten.length).toBeGreaterThan(0);
      const confirmed = outcomes.filter((o) => o.ok).map((o) => o.id);
      const wanted = new Set(confirmed);
      if (wanted.size > 0) await log.waitFor({ where: (r) => wanted.has(r.id), count: wanted.size }, 60_000);
      // Whatever the broker took before the cut is queued ahead of a sentinel sent now, and the
      // worker (one process) runs ce.default in order: once the sentinel ran, so did all of it.
      const sentinel = await app.sendTask("tasks.echo", { args: ["sentinel"] });
      await log.waitForTask(sentinel.id, 60_000);
      const ran = new Set((await log.read()).map((r) => r.id));
      console.log(
        `[reliability] cut while waiting for 'drain': ${confirmed.length} confirmed, ${failed.length - unwritten.length} ERR_CHANNEL_CLOSED (written, unconfirmed), ` +
          `${unwritten.length} ERR_CONNECTION not published; ran: ${confirmed.filter((id) => ran.has(id)).length} confirmed, ` +
          `${failed.filter((o) => o.error.code === "ERR_CHANNEL_CLOSED" && ran.has(o.id)).length} unconfirmed, ${unwritten.filter((o) => ran.has(o.id)).length} unwritten`,
      );
      expect(unwritten.filter((o) => ran.has(o.id))).toEqual([]);
    } finally {
      proto.publish = original;
      await a.close();
      await proxy.close();
    }
  }, 120_000);

  it("times out the unwritten rest of a batch as not published when 'drain' never comes", async () => {
    // Prepare: amqplib reports its buffer full after the 5th task, and no 'drain' follows.
    const a = new Celery({ broker: new AmqpTransport({ url: BROKER }), ...appOptions, publishTimeout: 1_000 });
    await a.sendTask("tasks.echo", { args: ["connected"] });
    await log.waitFor(1);
    const proto = await confirmChannelPrototype();
    const original = proto.publish;
    let calls = 0;
    proto.publish = function (this: ConfirmChannel, ...args: Parameters<ConfirmChannel["publish"]>): boolean {
      original.apply(this, args);
      return ++calls < 5;
    };
    try {
      // Act
      const err = await a.sendMany(Array.from({ length: 20 }, (_, i) => ({ task: "tasks.echo", args: [`stuck-${i}`] }))).catch((e: unknown) => e);

      // Assess: the 5 written are confirmed (or "may or may not"); the 15 never written say so and never run.
      expect(err).toBeInstanceOf(BatchPublishError);
      const outcomes = (err as BatchPublishError).outcomes;
      const unwritten = outcomes.slice(5);
      for (const o of unwritten) {
        expect(o.ok).toBe(false);
        if (!o.ok) {
          expect(o.error.code).toBe("ERR_TIMEOUT");
          expect(o.error.message).toMatch(/it was not published/);
        }
      }
      for (const o of outcomes.slice(0, 5)) if (!o.ok) expect(o.error.message).toMatch(/may or may not have been delivered/);
      // Whatever `a` wrote reached the broker before its connection closed; a sentinel sent after
      // that runs after it (one worker process, ce.default in order).
      await a.close();
      proto.publish = original;
      const sentinel = await app.sendTask("tasks.echo", { args: ["sentinel"] });
      await log.waitForTask(sentinel.id);
      const ran = new Set((await log.read()).map((r) => r.id));
      expect(unwritten.filter((o) => ran.has(o.id))).toEqual([]);
    } finally {
      proto.publish = original;
      await a.close();
    }
  }, 60_000);

  it("rejects an unroutable mandatory task with ERR_UNROUTABLE", async () => {
    const err = await app.sendTask("tasks.echo", { args: [], exchange: "celery_edge.topic", routingKey: "nobody.listens", mandatory: true }).catch((e: CeleryError) => e);
    expect(err).toBeInstanceOf(PublishError);
    expect((err as CeleryError).code).toBe("ERR_UNROUTABLE");
  });

  it("rejects a missing exchange clearly and the next publish still works", async () => {
    const err = await app.sendTask("tasks.echo", { args: [], exchange: "no.such.exchange", routingKey: "x" }).catch((e: CeleryError) => e);
    expect((err as CeleryError).code).toBe("ERR_EXCHANGE_NOT_FOUND");
    expect((err as Error).message).toContain("no.such.exchange");
    const ok = await app.sendTask("tasks.echo", { args: ["after"] });
    expect((await log.waitForTask(ok.id)).args).toEqual(["after"]);
  });

  it("refuses `immediate` when no consumer is attached, instead of killing the connection", async () => {
    await withChannel(async (ch) => {
      await ch.assertQueue("ce.nobody", { durable: true });
    });
    const err = await app.sendTask("tasks.echo", { args: [], queue: "ce.nobody", immediate: true }).catch((e: CeleryError) => e);
    expect((err as CeleryError).code).toBe("ERR_NO_CONSUMERS");
    const ok = await app.sendTask("tasks.echo", { args: ["imm"], queue: "ce.default", immediate: true });
    expect((await log.waitForTask(ok.id)).args).toEqual(["imm"]);
  });

  it("finds a silently dead connection before publishing and sends exactly once on a new one", async () => {
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: 5672 });
    const transport = new AmqpTransport({ url: `amqp://guest:guest@127.0.0.1:${proxy.port}//`, idleProbeAfterMs: 200, probeTimeoutMs: 500 });
    const a = new Celery({ broker: transport, ...appOptions });
    try {
      const first = await a.sendTask("tasks.echo", { args: ["before-freeze"] });
      proxy.freezeExisting(); // what a frozen-then-thawed Lambda finds
      await new Promise((r) => setTimeout(r, 400));
      const second = await a.sendTask("tasks.echo", { args: ["after-freeze"] });
      // A resend of either would be queued on the new connection ahead of this sentinel, which the
      // worker (one process) runs after it.
      const sentinel = await a.sendTask("tasks.echo", { args: ["sentinel"] });
      await log.waitForTask(sentinel.id);
      const ids = (await log.read()).map((r) => r.id);
      expect(ids.filter((x) => x === first.id)).toHaveLength(1);
      expect(ids.filter((x) => x === second.id)).toHaveLength(1);
      expect(transport.connectionsOpened).toBe(2);
    } finally {
      await a.close();
      await proxy.close();
    }
  });

  it("fails with a clear connection error that hides the password", async () => {
    const a = new Celery({ broker: "amqp://guest:s3cret-pw@127.0.0.1:1//", connectTimeout: 2_000 });
    const err = await a.sendTask("tasks.echo", { args: [] }).catch((e: CeleryError) => e);
    await a.close();
    expect((err as CeleryError).code).toBe("ERR_CONNECTION");
    expect((err as Error).message).not.toContain("s3cret-pw");
    expect((err as Error).message).toContain("127.0.0.1:1");
  });
});
