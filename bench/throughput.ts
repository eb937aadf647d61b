/**
 * @module
 * 1. Direct AMQP throughput with publisher confirms, and 2. the latency of one awaited publish.
 * Every variant publishes the same small task to `bench.q` (durable, persistent messages, nobody
 * consuming, purged between runs); variants are interleaved within each repetition so background
 * load on the shared machine hits them alike.
 */
import amqp, { type ConfirmChannel, type Options } from "amqplib";
import { Celery, type TaskMessage } from "../sdk/node.js";
import { toPublishOptions } from "../sdk/transports/amqp-properties.js";
import {
  BENCH_DIR,
  BENCH_QUEUE,
  BROKER_URL,
  BenchQueue,
  PYTHON,
  SMALL_KWARGS,
  TASK_NAME,
  lastJson,
  log,
  median,
  percentile,
  round,
  run,
  smallArgs,
  spread,
  tsxArgs,
  waitForNoAlarms,
} from "./lib/common.js";

/** The same bytes and properties the SDK publishes, ready for `channel.publish`. */
export interface RawPublish {
  exchange: string;
  routingKey: string;
  content: Buffer;
  options: Options.Publish;
}

export function toRaw(m: TaskMessage): RawPublish {
  return { exchange: m.exchange, routingKey: m.routingKey, content: Buffer.from(m.body), options: toPublishOptions(m) };
}

export async function buildMessages(app: Celery, n: number, from = 0): Promise<TaskMessage[]> {
  const out: TaskMessage[] = [];
  for (let i = from; i < from + n; i++) out.push(await app.buildMessage(TASK_NAME, { args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: BENCH_QUEUE }));
  return out;
}

export async function openRawConfirmChannel(): Promise<{ channel: ConfirmChannel; close(): Promise<void> }> {
  const model = await amqp.connect(BROKER_URL);
  const channel = await model.createConfirmChannel();
  // The same declarations the SDK and kombu make for the queue.
  await channel.assertExchange(BENCH_QUEUE, "direct", { durable: true, autoDelete: false });
  await channel.assertQueue(BENCH_QUEUE, { durable: true, autoDelete: false, exclusive: false });
  await channel.bindQueue(BENCH_QUEUE, BENCH_QUEUE, BENCH_QUEUE);
  return { channel, close: () => model.close().catch(() => {}) };
}

const confirmOne = (ch: ConfirmChannel, r: RawPublish): Promise<void> =>
  new Promise((resolve, reject) => {
    ch.publish(r.exchange, r.routingKey, r.content, r.options, (err) => (err ? reject(err) : resolve()));
  });

export interface ThroughputVariant {
  id: string;
  label: string;
  /** Tasks per run (fewer for clients too slow to finish 20k within the time budget). */
  n: number;
  /** Seconds per run. */
  runs: number[];
  /** Median tasks per second. */
  perSecond: number;
  /** CPU time of the publishing process per task (user + system), median: robust to a busy machine. */
  cpuMicrosPerTask: number;
  spread: number;
  confirmed: boolean;
  note?: string;
}

export interface ThroughputResult {
  variants: ThroughputVariant[];
}

interface Runner {
  id: string;
  label: string;
  n: number;
  confirmed: boolean;
  note?: string;
  /** Seconds for one run (and CPU seconds when measured in a child); the queue is empty before it and checked after it. */
  once(): Promise<number | { seconds: number; cpuSeconds: number }>;
  /** Messages the run leaves in the queue (warm-ups included). */
  expect: number;
  /** Unconfirmed clients: the queue may still be filling when the run returns. */
  waitForAll?: boolean;
}

export async function measureThroughput(options: { n: number; reps: number; python: boolean; celeryNodeN: number; celeryNodeNoDelayN: number }): Promise<ThroughputResult> {
  const { n, reps } = options;
  const queue = await BenchQueue.open();
  const app = new Celery({ broker: BROKER_URL });
  const noop = app.task(TASK_NAME);
  const raw = await openRawConfirmChannel();

  // Connect, declare and warm the JIT off the clock.
  await app.sendMany(Array.from({ length: 500 }, (_, i) => ({ task: TASK_NAME, args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: BENCH_QUEUE })));
  for (let i = 0; i < 200; i++) await noop.applyAsync({ args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: BENCH_QUEUE });
  const warm = (await buildMessages(app, 500)).map(toRaw);
  for (const r of warm) raw.channel.publish(r.exchange, r.routingKey, r.content, r.options);
  await raw.channel.waitForConfirms();
  for (const r of warm.slice(0, 200)) await confirmOne(raw.channel, r);

  const prebuilt = await buildMessages(app, n);
  const rawMessages = prebuilt.map(toRaw);
  const calls = () => Array.from({ length: n }, (_, i) => ({ task: TASK_NAME, args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: BENCH_QUEUE }));

  const runners: Runner[] = [
    {
      id: "raw.pipelined",
      label: "raw amqplib, confirm channel, publish all then waitForConfirms (same bytes)",
      n,
      confirmed: true,
      expect: n,
      async once() {
        const t0 = performance.now();
        for (const r of rawMessages) raw.channel.publish(r.exchange, r.routingKey, r.content, r.options);
        await raw.channel.waitForConfirms();
        return (performance.now() - t0) / 1000;
      },
    },
    {
      id: "raw.drain",
      label: "raw amqplib, confirm channel, publish all pausing on 'drain', then waitForConfirms (same bytes)",
      n,
      confirmed: true,
      expect: n,
      async once() {
        const t0 = performance.now();
        for (const r of rawMessages) {
          if (!raw.channel.publish(r.exchange, r.routingKey, r.content, r.options)) await new Promise((wake) => raw.channel.once("drain", wake));
        }
        await raw.channel.waitForConfirms();
        return (performance.now() - t0) / 1000;
      },
    },
    {
      id: "sdk.sendMany",
      label: "celery-edge app.sendMany (build + publish + confirms)",
      n,
      confirmed: true,
      expect: n,
      async once() {
        const batch = calls();
        const t0 = performance.now();
        await app.sendMany(batch);
        return (performance.now() - t0) / 1000;
      },
    },
    {
      id: "sdk.publishMany",
      label: "celery-edge transport.publishMany (prebuilt messages: transport only)",
      n,
      confirmed: true,
      expect: n,
      async once() {
        const t0 = performance.now();
        const outcomes = await app.transport.publishMany(prebuilt);
        const elapsed = (performance.now() - t0) / 1000;
        if (!outcomes.every((o) => o.ok)) throw new Error("publishMany reported failures");
        return elapsed;
      },
    },
    {
      id: "raw.awaited",
      label: "raw amqplib, confirm channel, await each confirm (same bytes)",
      n,
      confirmed: true,
      expect: n,
      async once() {
        const t0 = performance.now();
        for (const r of rawMessages) await confirmOne(raw.channel, r);
        return (performance.now() - t0) / 1000;
      },
    },
    {
      id: "sdk.awaited",
      label: "celery-edge await task.applyAsync() one by one",
      n,
      confirmed: true,
      expect: n,
      async once() {
        const t0 = performance.now();
        for (let i = 0; i < n; i++) await noop.applyAsync({ args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: BENCH_QUEUE });
        return (performance.now() - t0) / 1000;
      },
    },
    ...(options.python ? (["confirm", "noconfirm"] as const) : []).map(
      (mode): Runner => ({
        id: `python.${mode}`,
        label:
          mode === "confirm"
            ? 'Python Celery apply_async, broker_transport_options={"confirm_publish": True}'
            : "Python Celery apply_async, default (no confirms; returns once written)",
        n,
        confirmed: mode === "confirm",
        expect: n + 1,
        waitForAll: mode === "noconfirm",
        async once() {
          const out = await run(PYTHON, [`${BENCH_DIR}python_apply_async.py`, mode, String(n), BENCH_QUEUE, BROKER_URL], { timeoutMs: 240_000 });
          return lastJson<{ seconds: number; cpuSeconds: number }>(out);
        },
      }),
    ),
    ...([
      ["default", options.celeryNodeN, "as shipped (Nagle on, 3 round trips per task); fewer tasks to fit the time budget"],
      ["nodelay", options.celeryNodeNoDelayN, "with CELERY_BROKER_OPTIONS={noDelay:true}"],
    ] as const)
      .filter(([, count]) => count > 0)
      .map(
        ([mode, count, note]): Runner => ({
          id: `celery-node.${mode}`,
          label: `celery-node 0.5.9 sendTask, no confirms, clock stops when the queue holds all (${mode})`,
          n: count,
          confirmed: false,
          note,
          expect: count,
          async once() {
            const out = await run(process.execPath, tsxArgs(`${BENCH_DIR}celery-node-child.ts`, []).concat([String(count), mode]), { timeoutMs: 300_000 });
            return lastJson<{ seconds: number; cpuSeconds: number }>(out);
          },
        }),
      ),
  ];

  const seconds = new Map<string, number[]>(runners.map((r) => [r.id, []]));
  const cpu = new Map<string, number[]>(runners.map((r) => [r.id, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (const r of runners) {
      await waitForNoAlarms();
      await queue.purge();
      const c0 = process.cpuUsage();
      const result = await r.once();
      const used = process.cpuUsage(c0);
      const s = typeof result === "number" ? result : result.seconds;
      cpu.get(r.id)!.push(typeof result === "number" ? (used.user + used.system) / 1e6 : result.cpuSeconds);
      if (r.waitForAll) await queue.waitForDepth(r.expect, 60_000);
      const depth = await queue.depth();
      if (depth !== r.expect) throw new Error(`${r.id}: ${BENCH_QUEUE} holds ${depth} messages after the run, expected ${r.expect}`);
      seconds.get(r.id)!.push(s);
      log(`throughput ${r.id} rep ${rep + 1}/${reps}: ${round(r.n / s, 0)}/s (${round(s, 3)} s)`);
    }
  }
  await queue.purge();
  await app.close();
  await raw.close();
  await queue.close();

  return {
    variants: runners.map((r) => {
      const runs = seconds.get(r.id)!;
      return {
        id: r.id,
        label: r.label,
        n: r.n,
        runs: runs.map((s) => round(s, 4)),
        perSecond: round(r.n / median(runs), 0),
        cpuMicrosPerTask: round((median(cpu.get(r.id)!) / r.n) * 1e6, 1),
        spread: round(spread(runs), 3),
        confirmed: r.confirmed,
        ...(r.note ? { note: r.note } : {}),
      };
    }),
  };
}

export interface LatencySummary {
  p50: number;
  p99: number;
  mean: number;
}

export interface LatencyResult {
  /** Publishes per client per round. */
  n: number;
  /** Each round: its own percentiles. The p99 of 2 000 is the 20th slowest, so it moves with every fsync stall. */
  rounds: Array<{ sdk: LatencySummary; raw: LatencySummary }>;
  /** Medians over the rounds. */
  sdk: LatencySummary;
  raw: LatencySummary;
  ratioP50: number;
  ratioP99: number;
}

const summary = (ms: number[]): LatencySummary => ({
  p50: round(percentile(ms, 50), 3),
  p99: round(percentile(ms, 99), 3),
  mean: round(ms.reduce((a, b) => a + b, 0) / ms.length, 3),
});

const medianSummary = (xs: LatencySummary[]): LatencySummary => ({
  p50: median(xs.map((x) => x.p50)),
  p99: median(xs.map((x) => x.p99)),
  mean: median(xs.map((x) => x.mean)),
});

/**
 * One awaited `applyAsync` (build + publish + confirm) against raw `publish` + `waitForConfirms`
 * of the same bytes, alternating one SDK and one raw publish so both see the same load; `rounds`
 * rounds of `n` each, after 200 of each to warm up.
 */
export async function measureLatency(options: { n: number; rounds: number }): Promise<LatencyResult> {
  const { n } = options;
  const queue = await BenchQueue.open();
  await queue.purge();
  const app = new Celery({ broker: BROKER_URL });
  const noop = app.task(TASK_NAME);
  const raw = await openRawConfirmChannel();
  const rawMessages = (await buildMessages(app, n + 200)).map(toRaw);
  const rounds: LatencyResult["rounds"] = [];
  for (let round_ = 0; round_ < options.rounds; round_++) {
    const sdkMs: number[] = [];
    const rawMs: number[] = [];
    for (let i = round_ === 0 ? 0 : 200; i < n + 200; i++) {
      const r = rawMessages[i]!;
      let t0 = performance.now();
      await noop.applyAsync({ args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: BENCH_QUEUE });
      const sdk = performance.now() - t0;
      t0 = performance.now();
      raw.channel.publish(r.exchange, r.routingKey, r.content, r.options);
      await raw.channel.waitForConfirms();
      const rawOne = performance.now() - t0;
      if (i >= 200) {
        sdkMs.push(sdk);
        rawMs.push(rawOne);
      }
    }
    rounds.push({ sdk: summary(sdkMs), raw: summary(rawMs) });
    await queue.purge();
  }
  await app.close();
  await raw.close();
  await queue.close();
  const sdk = medianSummary(rounds.map((r) => r.sdk));
  const rawSummary = medianSummary(rounds.map((r) => r.raw));
  return { n, rounds, sdk, raw: rawSummary, ratioP50: round(sdk.p50 / rawSummary.p50, 3), ratioP99: round(sdk.p99 / rawSummary.p99, 3) };
}
