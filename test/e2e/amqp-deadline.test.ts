/**
 * One `timeout` for the whole AMQP publish, against the real RabbitMQ: connecting, declaring and
 * the confirm share it, and when it runs out the call settles then, with `TimeoutError`. The broker
 * is reached through a proxy on loopback that delays every chunk (a slow network) or stops
 * forwarding (a connection that died silently, as a Lambda thawed after a freeze finds it).
 */
import net from "node:net";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { Celery, TimeoutError, type TaskMessage } from "../../sdk/node.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { deleteQueues } from "../helpers/rabbit.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

const QUEUE = "ce.deadline";

/** A proxy to RabbitMQ that delays each chunk by `delayMs` each way, or stops forwarding when frozen. */
interface SlowProxy {
  url: string;
  /** Client connections still open. */
  readonly open: number;
  /** Existing connections stop forwarding in both directions; their sockets stay open. */
  freeze(): void;
  close(): Promise<void>;
}

async function slowProxy(delayMs: number): Promise<SlowProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; frozen: boolean }>();
  const server = net.createServer((client) => {
    const upstream = net.connect(5672, "127.0.0.1");
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    // Timers of one delay fire in the order they were set: chunks keep their order.
    const relay = (to: net.Socket) => (chunk: Buffer) => {
      if (!pair.frozen) setTimeout(() => pair.frozen || to.destroyed || to.write(chunk), delayMs);
    };
    client.on("data", relay(upstream));
    upstream.on("data", relay(client));
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `amqp://guest:guest@127.0.0.1:${(server.address() as net.AddressInfo).port}//`,
    get open() {
      return pairs.size;
    },
    freeze() {
      for (const p of pairs) p.frozen = true;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A task for QUEUE as the app builds it (declaring the queue first, as kombu does). */
async function task(): Promise<TaskMessage> {
  const recorder = new RecordingTransport();
  await new Celery({ broker: recorder }).sendTask("tasks.echo", { args: ["deadline"], queue: QUEUE });
  return recorder.messages[0]!;
}

async function timed(work: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const t0 = Date.now();
  try {
    await work;
    return { error: undefined, ms: Date.now() - t0 };
  } catch (error) {
    return { error, ms: Date.now() - t0 };
  }
}

async function waitFor(condition: () => boolean, ms: number): Promise<boolean> {
  for (const until = Date.now() + ms; Date.now() < until; await new Promise((r) => setTimeout(r, 20))) if (condition()) return true;
  return condition();
}

let proxy: SlowProxy;
const transports: AmqpTransport[] = [];
function transportVia(options: { idleProbeAfterMs?: number } = {}): AmqpTransport {
  const t = new AmqpTransport({ url: proxy.url, ...options });
  transports.push(t);
  return t;
}

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await proxy.close();
});

afterAll(async () => {
  await deleteQueues([QUEUE]);
});

describe("a slow network (100 ms each way): connecting takes about 1 s, declaring and confirming about 0.8 s more", () => {
  beforeEach(async () => {
    proxy = await slowProxy(100);
  });

  it("with the deprecated connectTimeout and publishTimeout of 1.4 s each, publishes: each part fits its own limit", async () => {
    // Act
    const { error, ms } = await timed(transportVia().publish(await task(), { connectTimeout: 1_400, publishTimeout: 1_400 }));

    // Assess: it worked, and took longer than 1.4 s in all.
    expect(error).toBeUndefined();
    expect(ms).toBeGreaterThan(1_400);
  });

  it("with a timeout of 1.4 s, settles at 1.4 s with TimeoutError: one budget for connecting and confirming", async () => {
    // Prepare
    const transport = transportVia();

    // Act
    const { error, ms } = await timed(transport.publish(await task(), { timeout: 1_400 }));
    const next = await timed(transport.publish(await task(), { timeout: 5_000 }));

    // Assess: settled when the budget was spent, not later; the connection it opened serves the next call.
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).code).toBe("ERR_TIMEOUT");
    expect((error as Error).message).toContain("1400 ms");
    expect(ms).toBeGreaterThanOrEqual(1_390);
    expect(ms).toBeLessThan(1_700);
    expect(next.error).toBeUndefined();
    expect(transport.connectionsOpened).toBe(1);
  });
});

describe("a connection that died silently after it was used", () => {
  beforeEach(async () => {
    proxy = await slowProxy(0);
  });

  it("fails a publish whose confirm never comes at its timeout, tears the dead socket down, and the next publish opens a new connection", async () => {
    // Prepare: no idle probe, so the publish is written into the dead connection.
    const transport = transportVia({ idleProbeAfterMs: 60_000 });
    await transport.publish(await task());
    proxy.freeze();

    // Act
    const { error, ms } = await timed(transport.publish(await task(), { timeout: 500 }));
    const socketGone = await waitFor(() => proxy.open === 0, 1_000);
    const next = await timed(transport.publish(await task(), { timeout: 5_000 }));

    // Assess
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toMatch(/no confirm for task .* within 500 ms; it may or may not have been delivered/);
    expect(ms).toBeGreaterThanOrEqual(490);
    expect(ms).toBeLessThan(800);
    expect(socketGone).toBe(true);
    expect(next.error).toBeUndefined();
    expect(transport.connectionsOpened).toBe(2);
  });
});
