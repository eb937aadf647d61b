/**
 * A publish's `timeout` is the whole call, connecting included, on the AMQP transport: against a
 * broker address that accepts the TCP connection and never answers the AMQP handshake (a listener
 * on loopback), the call settles at its deadline with `TimeoutError`, whichever limit is the
 * shorter, and the socket it opened does not outlive the transport.
 */
import net from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Celery, TimeoutError, type TaskMessage } from "../../sdk/index.js";
import type { PublishOptions } from "../../sdk/transport.js";
import { AmqpTransport, type AmqpTransportOptions } from "../../sdk/transports/amqp.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

/** A TCP listener that takes connections, reads what comes and never says a word; it records when one closes. */
interface SilentBroker {
  url: string;
  readonly accepted: number;
  /** Resolves when a connection it accepted has been closed by the client. */
  closed: Promise<void>;
  stop(): Promise<void>;
}

async function silentBroker(): Promise<SilentBroker> {
  const sockets = new Set<net.Socket>();
  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));
  const state = { accepted: 0 };
  const server = net.createServer((socket) => {
    state.accepted++;
    sockets.add(socket);
    socket.on("error", () => {});
    // Reads (and drops) what the client sends: a socket with unread data never reports the client's close.
    socket.resume();
    socket.on("close", () => {
      sockets.delete(socket);
      markClosed();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}//`,
    get accepted() {
      return state.accepted;
    },
    closed,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function oneMessage(): Promise<TaskMessage> {
  const recorder = new RecordingTransport();
  await new Celery({ broker: recorder }).sendTask("tasks.echo", { args: ["deadline"] });
  return recorder.messages[0]!;
}

/** Publishes one message and reports how it settled and when (ms after the call). */
async function publishTimed(options: Omit<AmqpTransportOptions, "url">, call: PublishOptions): Promise<{ error: unknown; ms: number }> {
  const transport = new AmqpTransport({ url: broker.url, ...options });
  const message = await oneMessage();
  const t0 = Date.now();
  try {
    const error = await transport.publish(message, call).then(
      () => undefined,
      (e: unknown) => e,
    );
    return { error, ms: Date.now() - t0 };
  } finally {
    await transport.close();
  }
}

let broker: SilentBroker;

beforeEach(async () => {
  broker = await silentBroker();
});

afterEach(async () => {
  await broker.stop();
});

describe("an AMQP publish with a timeout, against a broker that never answers", () => {
  it("settles at the call's timeout when the transport's connectTimeout is longer", async () => {
    // Act
    const { error, ms } = await publishTimed({ connectTimeout: 10_000 }, { timeout: 400 });

    // Assess
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).code).toBe("ERR_TIMEOUT");
    expect((error as Error).message).toContain("400 ms");
    expect(ms).toBeGreaterThanOrEqual(390);
    expect(ms).toBeLessThan(1_000);
    expect(broker.accepted).toBe(1);
  });

  it("settles at the transport's connectTimeout when that is the shorter", async () => {
    // Act
    const { error, ms } = await publishTimed({ connectTimeout: 300 }, { timeout: 5_000 });

    // Assess
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toContain("300 ms");
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(1_000);
  });

  it("still honours the deprecated per-call connectTimeout", async () => {
    // Act
    const { error, ms } = await publishTimed({}, { connectTimeout: 300 });

    // Assess
    expect(error).toBeInstanceOf(TimeoutError);
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(1_000);
  });

  it("abandons, on close(), a connection still being opened after the call gave up on it, and closes its socket", async () => {
    // Prepare: the call gives up after 300 ms; the attempt itself may take 10 s and goes on, for later calls.
    const transport = new AmqpTransport({ url: broker.url, connectTimeout: 10_000 });
    const error = await transport.publish(await oneMessage(), { timeout: 300 }).catch((e: unknown) => e);

    // Act
    const t0 = Date.now();
    await transport.close();
    const closeMs = Date.now() - t0;
    const socketClosed = await Promise.race([broker.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2_000))]);

    // Assess: close() did not wait out the attempt, and the broker saw the client hang up.
    expect(error).toBeInstanceOf(TimeoutError);
    expect(closeMs).toBeLessThan(1_000);
    expect(socketClosed).toBe(true);
  });
});
