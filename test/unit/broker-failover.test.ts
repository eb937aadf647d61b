/**
 * Several broker URLs, as Celery takes them: how they are split and checked, the order
 * `broker_failover_strategy` tries them in (round-robin, shuffle with an injected random source),
 * how an app resolves them, and how one connect attempt shares its time among the hosts (loopback
 * listeners that never answer, and a port nobody listens on; no broker needed).
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Celery as UniversalCelery, CeleryError, ConfigurationError, ConnectionError, TimeoutError, type TaskMessage, type Transport } from "../../sdk/index.js";
import { brokerUrlFromSecret } from "../../functions/shared/broker-url.js";
import { Celery } from "../../sdk/node.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { amqpEndpoints } from "../../sdk/transports/amqp-url.js";
import { BrokerRotation, checkFailoverStrategy, splitBrokerUrls } from "../../sdk/transports/failover.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

/** The hosts one connect attempt tries when each of `failing` fails and any other connects. */
function attempt(rotation: BrokerRotation, failing: ReadonlySet<number>): number[] {
  const tried: number[] = [];
  for (const host of rotation.attempt()) {
    tried.push(host);
    if (!failing.has(host)) break;
  }
  return tried;
}

/** A deterministic random source (mulberry32), so a shuffle test fails the same way every time. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("did not throw");
}

describe("splitting a broker setting into URLs", () => {
  it("splits a string at each ';' as kombu does, and drops blanks around each URL", () => {
    expect(splitBrokerUrls("amqp://a:1@h1//; amqp://a:1@h2// ;amqps://h3:5671/v")).toEqual(["amqp://a:1@h1//", "amqp://a:1@h2//", "amqps://h3:5671/v"]);
  });

  it("takes a list as it is, splitting an entry that holds ';'", () => {
    expect(splitBrokerUrls(["amqp://h1//", "amqp://h2//;amqp://h3//"])).toEqual(["amqp://h1//", "amqp://h2//", "amqp://h3//"]);
  });

  it("refuses an empty entry by its position, showing none of the text around it", () => {
    const err = thrown(() => splitBrokerUrls("amqp://u:hunter2@h1//; amqp://u:hunter2@h2//;"));
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toContain("entry 3 of 3 is empty");
    expect(err.message).not.toContain("hunter2");
  });

  it("keeps a ';' inside a password, which kombu would split at, and shows none of it when refusing", () => {
    // Prepare: one URL whose password holds ';' (unencoded), and two URLs with ';;' between them.
    const [one] = amqpEndpoints("amqp://u:hun;ter2@h1:5672//", 30);
    const err = thrown(() => amqpEndpoints("amqp://u:hunter2@h1//;;amqp://u:hunter2@h2//", 30));
    // Assess
    expect(one!.where).toBe("amqp://h1:5672//");
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toContain("amqp://h1//");
    expect(err.message).not.toContain("hunter2");
  });

  it("refuses an empty list and a list holding something other than a string", () => {
    expect(thrown(() => splitBrokerUrls([]))).toBeInstanceOf(ConfigurationError);
    expect(thrown(() => splitBrokerUrls(["amqp://h1//", 5 as unknown as string])).message).toContain("holds a number");
  });

  it("gives each AMQP host the heartbeat and the name errors show, without its password", () => {
    const endpoints = amqpEndpoints("pyamqp://u:hunter2@h1:5672//;amqps://u:hunter2@h2:5671/v", 7);
    expect(endpoints.map((e) => e.url)).toEqual(["amqp://u:hunter2@h1:5672//?heartbeat=7", "amqps://u:hunter2@h2:5671/v?heartbeat=7"]);
    expect(endpoints.map((e) => e.where)).toEqual(["pyamqp://h1:5672//", "amqps://h2:5671/v"]);
  });

  it("reads several hosts from the relay's broker secret, bare or as {url}", () => {
    const list = "amqps://u:p@h1:5671;amqps://u:p@h2:5671";
    for (const secret of [list, JSON.stringify({ url: list })]) {
      expect(amqpEndpoints(brokerUrlFromSecret(secret), 30).map((e) => e.where)).toEqual(["amqps://h1:5671", "amqps://h2:5671"]);
    }
  });

  it("refuses a host that is not amqp://, amqps:// or pyamqp://, naming it without its password", () => {
    const err = thrown(() => amqpEndpoints("amqp://u:hunter2@h1//;redis://u:hunter2@h2:6379/0", 30));
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toContain("redis://h2:6379/0");
    expect(err.message).not.toContain("hunter2");
  });
});

describe("round-robin, Celery's default broker_failover_strategy", () => {
  it("starts with the first URL and keeps to the host that connected", () => {
    const rotation = new BrokerRotation(3, "round-robin");
    expect(attempt(rotation, new Set())).toEqual([0]);
    expect(attempt(rotation, new Set())).toEqual([0]);
  });

  it("moves on to the next URL in the list after each failure, wrapping round, each host once per attempt", () => {
    const rotation = new BrokerRotation(3, "round-robin");
    expect(attempt(rotation, new Set([0]))).toEqual([0, 1]);
    // A broken connection is replaced by trying its own host first (kombu's ensure), then the next.
    expect(attempt(rotation, new Set([1]))).toEqual([1, 2]);
    expect(attempt(rotation, new Set([2]))).toEqual([2, 0]);
    expect(attempt(rotation, new Set([0, 1, 2]))).toEqual([0, 1, 2]);
    // After an attempt where every host failed, the next starts from the last one tried.
    expect(attempt(rotation, new Set([2]))).toEqual([2, 0]);
  });
});

describe("shuffle", () => {
  it("starts with the first URL, as kombu does, and draws the next from the hosts not yet tried", () => {
    // Prepare: a source that always answers the top of the range picks the last host left.
    const rotation = new BrokerRotation(4, "shuffle", () => 0.999);
    // Act / Assess
    expect(attempt(rotation, new Set([0, 3, 2]))).toEqual([0, 3, 2, 1]);
  });

  it("tries every host once per attempt even when the random source repeats itself", () => {
    const rotation = new BrokerRotation(5, "shuffle", () => 0);
    expect(attempt(rotation, new Set([0, 1, 2, 3, 4]))).toEqual([0, 1, 2, 3, 4]);
    expect(new BrokerRotation(3, "shuffle", () => Number.NaN).attempt().next().value).toBe(0);
  });

  it("picks each other host about as often after the first one fails", () => {
    // Prepare
    const random = seeded(16);
    const seen = new Map<string, number>();
    const runs = 6_000;
    // Act: a fresh app each run (first URL first), the first host down.
    for (let i = 0; i < runs; i++) {
      const order = attempt(new BrokerRotation(4, "shuffle", random), new Set([0, 1, 2, 3])).join("");
      seen.set(order, (seen.get(order) ?? 0) + 1);
    }
    // Assess: the 6 orders of hosts 1-3 behind host 0, each near 1/6 (binomial sd ≈ 29).
    expect([...seen.keys()].sort()).toEqual(["0123", "0132", "0213", "0231", "0312", "0321"]);
    for (const count of seen.values()) expect(Math.abs(count - runs / 6)).toBeLessThan(150);
  });

  it("does not move away from a host that keeps connecting", () => {
    const rotation = new BrokerRotation(3, "shuffle", seeded(1));
    const first = attempt(rotation, new Set([0]));
    const host = first[first.length - 1]!;
    expect(attempt(rotation, new Set())).toEqual([host]);
  });

  it("is a typed option: anything but round-robin and shuffle is refused", () => {
    expect(checkFailoverStrategy(undefined)).toBe("round-robin");
    const err = thrown(() => new Celery({ broker: "amqp://h1//;amqp://h2//", brokerFailoverStrategy: "random" as "shuffle" }));
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as CeleryError).code).toBe("ERR_INVALID_OPTION");
    expect(err.message).toContain("brokerFailoverStrategy");
  });
});

describe("an app with several broker URLs", () => {
  const made: Array<{ url: string; strategy: unknown }> = [];
  const factory = (url: string, context?: { failoverStrategy?: unknown }): Transport => {
    made.push({ url, strategy: context?.failoverStrategy });
    return new RecordingTransport();
  };
  afterEach(() => {
    made.length = 0;
  });

  it("makes one transport for all of them, given them joined by ';' and the strategy", () => {
    new UniversalCelery({ broker: ["amqp://h1//", "amqps://h2//;pyamqp://h3//"], transports: { amqp: factory, amqps: factory, pyamqp: factory }, brokerFailoverStrategy: "shuffle" });
    expect(made).toEqual([{ url: "amqp://h1//;amqps://h2//;pyamqp://h3//", strategy: "shuffle" }]);
  });

  it("refuses URLs that different transports serve, naming the schemes only", () => {
    const other = (): Transport => new RecordingTransport();
    const err = thrown(() => new UniversalCelery({ broker: "amqp://u:hunter2@h1//;sqs://u:hunter2@h2", transports: { amqp: factory, sqs: other } }));
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toContain("one transport");
    expect(err.message).not.toContain("hunter2");
    expect(made).toEqual([]);
  });

  it("hands the rpc:// backend every broker host and the strategy", async () => {
    const app = new Celery({ broker: ["amqp://u:p@127.0.0.1:1//", "amqp://u:p@127.0.0.1:2//"], backend: "rpc://", brokerFailoverStrategy: "shuffle" });
    // The backend is made on first use; its error for an unreachable broker names both hosts.
    const err = await app.backend.onTaskCall!("t").then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    await app.close();
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err!.message).toContain("amqp://127.0.0.1:1//");
    expect(err!.message).toContain("amqp://127.0.0.1:2//");
    expect(err!.message).not.toContain("u:p");
  });
});

/** Loopback listeners that take connections and never answer the AMQP handshake; a closed port. */
async function silentListener(): Promise<{ url: string; accepted: () => number; stop: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("error", () => {});
    socket.resume();
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `amqp://guest:hunter2@127.0.0.1:${port}//`,
    accepted: () => accepted,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function closedPort(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `amqp://guest:hunter2@127.0.0.1:${port}//`;
}

async function oneMessage(): Promise<TaskMessage> {
  const recorder = new RecordingTransport();
  await new UniversalCelery({ broker: recorder }).sendTask("tasks.echo", { args: ["failover"] });
  return recorder.messages[0]!;
}

describe("one connect attempt over several hosts", () => {
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await Promise.all(stops.splice(0).map((stop) => stop()));
  });

  it("shares the connect timeout among hosts that never answer, and names each in the TimeoutError", async () => {
    // Prepare
    const [a, b] = await Promise.all([silentListener(), silentListener()]);
    stops.push(a.stop, b.stop);
    const transport = new AmqpTransport({ url: [a.url, b.url], connectTimeout: 1_200 });
    // Act
    const started = Date.now();
    const [outcome] = await transport.publishMany([await oneMessage()]);
    const took = Date.now() - started;
    await transport.close();
    // Assess: both hosts got a turn within the one budget (≈600 ms each), first one first.
    expect(outcome!.ok).toBe(false);
    const error = (outcome as { error: CeleryError }).error;
    expect(error).toBeInstanceOf(TimeoutError);
    expect([a.accepted(), b.accepted()]).toEqual([1, 1]);
    expect(took).toBeGreaterThanOrEqual(1_100);
    expect(took).toBeLessThan(2_500);
    expect(error.message.indexOf(new URL(a.url).port)).toBeLessThan(error.message.indexOf(new URL(b.url).port));
    expect(error.message).not.toContain("hunter2");
  });

  it("moves on at once from a host that refuses, leaving its share to the next", async () => {
    // Prepare
    const refused = await closedPort();
    const silent = await silentListener();
    stops.push(silent.stop);
    const transport = new AmqpTransport({ url: `${refused};${silent.url}`, connectTimeout: 800 });
    // Act
    const started = Date.now();
    const [outcome] = await transport.publishMany([await oneMessage()]);
    const took = Date.now() - started;
    await transport.close();
    // Assess: the silent host had nearly the whole budget (a fixed half would end at ≈400 ms).
    expect(silent.accepted()).toBe(1);
    expect(took).toBeGreaterThanOrEqual(700);
    const error = (outcome as { error: CeleryError }).error;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.message).toMatch(/ECONNREFUSED/);
    expect(error.message).not.toContain("hunter2");
  });

  it("fails with a ConnectionError naming every host when all refuse", async () => {
    const urls = [await closedPort(), await closedPort()];
    const transport = new AmqpTransport({ url: urls });
    const [outcome] = await transport.publishMany([await oneMessage()]);
    await transport.close();
    const error = (outcome as { error: CeleryError }).error;
    expect(error).toBeInstanceOf(ConnectionError);
    for (const url of urls) expect(error.message).toContain(`127.0.0.1:${new URL(url).port}`);
    expect(error.message).not.toContain("hunter2");
  });
});
