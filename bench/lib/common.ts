/**
 * @module
 * What every benchmark shares: the broker, the dedicated queue nobody consumes, the task every
 * client sends, and the statistics. Benchmarks publish to `bench.q` only, never to the `ce.*`
 * queues the test suite uses.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import amqp, { type Channel, type ChannelModel } from "amqplib";

/** The SDK's spelling (vhost `/`); amqplib reads it the same way. */
export const BROKER_URL = process.env.BENCH_BROKER_URL ?? "amqp://guest:guest@127.0.0.1:5672//";
export const BENCH_QUEUE = "bench.q";
export const TASK_NAME = "bench.noop";
export const PYTHON = "/usr/bin/python3";
export const BENCH_DIR = fileURLToPath(new URL("../", import.meta.url));
export const REPO_DIR = fileURLToPath(new URL("../../", import.meta.url));

/** The typical small task every client sends: `bench.noop(i, 2, user=…, action=…, size=512)`. */
export const SMALL_KWARGS = Object.freeze({ user: "u-123", action: "resize", size: 512 });
export const smallArgs = (i: number): [number, number] => [i, 2];

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Nearest-rank percentile (p in 0..100). */
export const percentile = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};

export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

/** Spread of repeated runs as (max − min) / median, to show how noisy a figure is. */
export const spread = (xs: readonly number[]): number => (xs.length < 2 ? 0 : (Math.max(...xs) - Math.min(...xs)) / median(xs));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An admin connection to declare, purge and count `bench.q` (kombu's declaration: durable, no arguments). */
export class BenchQueue {
  private constructor(
    private readonly model: ChannelModel,
    private channel: Channel,
  ) {}

  static async open(): Promise<BenchQueue> {
    const model = await amqp.connect(BROKER_URL);
    model.on("error", () => {});
    const channel = await model.createChannel();
    channel.on("error", () => {});
    await channel.assertQueue(BENCH_QUEUE, { durable: true, autoDelete: false, exclusive: false });
    return new BenchQueue(model, channel);
  }

  async purge(): Promise<number> {
    return (await this.channel.purgeQueue(BENCH_QUEUE)).messageCount;
  }

  async depth(): Promise<number> {
    return (await this.channel.checkQueue(BENCH_QUEUE)).messageCount;
  }

  /** Polls until the queue holds at least `n` messages; resolves with the time it was seen (performance.now()). */
  async waitForDepth(n: number, timeoutMs = 120_000, everyMs = 5): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const d = await this.depth();
      if (d >= n) return performance.now();
      if (performance.now() > deadline) throw new Error(`${BENCH_QUEUE} holds ${d} messages, expected ${n} within ${timeoutMs} ms`);
      await sleep(everyMs);
    }
  }

  async close(): Promise<void> {
    await this.model.close().catch(() => {});
  }
}

/** Runs a child process and resolves with its stdout; rejects with stderr on a non-zero exit. */
export function run(cmd: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], { cwd: options.cwd ?? REPO_DIR, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 300_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}\n${err.slice(-4000)}`));
    });
  });
}

/** The last line of a child's stdout that parses as JSON (children print their result last). */
export function lastJson<T>(stdout: string): T {
  const lines = stdout.trim().split("\n").reverse();
  for (const line of lines) {
    if (!line.startsWith("{")) continue;
    try {
      return JSON.parse(line) as T;
    } catch {
      // not the result line
    }
  }
  throw new Error(`no JSON result in child output:\n${stdout.slice(-2000)}`);
}

/** `node --import tsx <file>`: children run the TypeScript sources as `npm run bench` does. */
export function tsxArgs(file: string, nodeFlags: readonly string[] = []): string[] {
  return [...nodeFlags, "--import", "tsx", file];
}

export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/**
 * Waits while RabbitMQ reports a resource alarm. Other engineers' fault tests lower the memory
 * watermark on the shared broker; a publish then blocks until it is raised, which would be
 * measured as our latency. Skipped when `rabbitmq-diagnostics` is not on PATH.
 */
export async function waitForNoAlarms(maxWaitMs = 180_000): Promise<void> {
  const deadline = Date.now() + maxWaitMs;
  let warned = false;
  for (;;) {
    try {
      await run("rabbitmq-diagnostics", ["-q", "check_local_alarms"], { timeoutMs: 30_000 });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      if (Date.now() > deadline) throw new Error(`RabbitMQ kept a resource alarm for ${maxWaitMs} ms; measurements would be of a blocked broker`, { cause: err });
      if (!warned) log("RabbitMQ reports a resource alarm (publishers blocked); waiting for it to clear");
      warned = true;
      await sleep(2_000);
    }
  }
}

/** Waits until the broker accepts a connection (fault tests on the shared broker stop and start it). */
export async function waitForBroker(maxWaitMs = 180_000): Promise<void> {
  const deadline = Date.now() + maxWaitMs;
  let warned = false;
  for (;;) {
    try {
      const model = await amqp.connect(BROKER_URL, { timeout: 5_000 });
      await model.close();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`RabbitMQ at ${BROKER_URL.replace(/\/\/[^@]*@/, "//")} did not accept a connection for ${maxWaitMs} ms`, { cause: err });
      if (!warned) log("RabbitMQ refuses connections (restarted by a test?); waiting for it");
      warned = true;
      await sleep(2_000);
    }
  }
  await waitForNoAlarms(Math.max(10_000, deadline - Date.now()));
}

/**
 * Runs one benchmark section; when the shared broker went away or blocked under it, waits for the
 * broker and runs the section once more from scratch (each section opens its own connections).
 */
export async function section<T>(name: string, fn: () => Promise<T>): Promise<T> {
  await waitForBroker();
  try {
    return await fn();
  } catch (err) {
    log(`${name} failed (${err instanceof Error ? err.message.split("\n")[0] : String(err)}); retrying once after the broker is back`);
    await sleep(3_000);
    await waitForBroker();
    return fn();
  }
}
