/**
 * @module
 * Publishing to a Redis broker (kombu's Redis transport): celery-edge vs Python Celery's own
 * `apply_async` and celery-node 0.5.9, on the same Redis (database 13), the same task and
 * arguments, to a list nobody consumes. Every Redis client here has its LPUSH answered before the
 * task counts as sent (Redis has no other acknowledgement), except celery-node, whose `sendTask`
 * returns before anything is written: its clock stops when the list holds all N.
 */
import { createClient } from "redis";
import { Celery } from "../sdk/node.js";
import { BENCH_DIR, PYTHON, SMALL_KWARGS, TASK_NAME, lastJson, log, median, round, run, smallArgs, spread, tsxArgs } from "./lib/common.js";
import type { ThroughputVariant } from "./throughput.js";

export const REDIS_BENCH_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379/13";
export const REDIS_BENCH_QUEUE = "bench.redis";

export interface RedisBrokerResult {
  variants: ThroughputVariant[];
}

interface Runner {
  id: string;
  label: string;
  n: number;
  confirmed: boolean;
  note?: string;
  once(): Promise<number | { seconds: number; cpuSeconds: number }>;
  /** Messages the run leaves in the list. */
  expect: number;
}

export async function measureRedisBroker(options: { n: number; reps: number; python: boolean; celeryNodeN: number }): Promise<RedisBrokerResult> {
  const { n, reps } = options;
  const redis = createClient({ url: REDIS_BENCH_URL, socket: { reconnectStrategy: false } });
  await redis.connect();
  const depth = (): Promise<number> => redis.lLen(REDIS_BENCH_QUEUE);
  const purge = async (): Promise<void> => {
    await redis.flushDb();
  };
  await purge();
  const app = new Celery({ broker: REDIS_BENCH_URL });
  const noop = app.task(TASK_NAME);
  const call = (i: number) => ({ task: TASK_NAME, args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: REDIS_BENCH_QUEUE });
  // Connect and warm the JIT off the clock.
  await app.sendMany(Array.from({ length: 500 }, (_, i) => call(i)));
  for (let i = 0; i < 200; i++) await noop.applyAsync({ args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: REDIS_BENCH_QUEUE });
  const prebuilt = await Promise.all(Array.from({ length: n }, (_, i) => app.buildMessage(TASK_NAME, { args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: REDIS_BENCH_QUEUE })));

  const runners: Runner[] = [
    {
      id: "redis.sdk.sendMany",
      label: "celery-edge app.sendMany on redis:// (build + LPUSH, every reply awaited)",
      n,
      confirmed: true,
      expect: n,
      async once() {
        const batch = Array.from({ length: n }, (_, i) => call(i));
        const t0 = performance.now();
        await app.sendMany(batch);
        return (performance.now() - t0) / 1000;
      },
    },
    {
      id: "redis.sdk.publishMany",
      label: "celery-edge transport.publishMany on redis:// (prebuilt messages: transport only)",
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
      id: "redis.sdk.awaited",
      label: "celery-edge await task.applyAsync() one by one on redis://",
      n,
      confirmed: true,
      expect: n,
      async once() {
        const t0 = performance.now();
        for (let i = 0; i < n; i++) await noop.applyAsync({ args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: REDIS_BENCH_QUEUE });
        return (performance.now() - t0) / 1000;
      },
    },
    ...(options.python
      ? [
          {
            id: "redis.python",
            label: "Python Celery apply_async on redis:// (redis-py waits for each LPUSH reply)",
            n,
            confirmed: true,
            expect: n + 1,
            async once() {
              const out = await run(PYTHON, [`${BENCH_DIR}python_apply_async.py`, "noconfirm", String(n), REDIS_BENCH_QUEUE, REDIS_BENCH_URL], { timeoutMs: 240_000 });
              return lastJson<{ seconds: number; cpuSeconds: number }>(out);
            },
          } satisfies Runner,
        ]
      : []),
    ...(options.celeryNodeN > 0
      ? [
          {
            id: "redis.celery-node",
            label: "celery-node 0.5.9 sendTask on redis:// (ioredis), no reply awaited, clock stops when the list holds all",
            n: options.celeryNodeN,
            confirmed: false,
            expect: options.celeryNodeN,
            async once() {
              const out = await run(process.execPath, tsxArgs(`${BENCH_DIR}celery-node-redis-child.ts`, []).concat([String(options.celeryNodeN), REDIS_BENCH_URL, REDIS_BENCH_QUEUE]), { timeoutMs: 300_000 });
              return lastJson<{ seconds: number; cpuSeconds: number }>(out);
            },
          } satisfies Runner,
        ]
      : []),
  ];

  const seconds = new Map<string, number[]>(runners.map((r) => [r.id, []]));
  const cpu = new Map<string, number[]>(runners.map((r) => [r.id, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (const r of runners) {
      await purge();
      const c0 = process.cpuUsage();
      const result = await r.once();
      const used = process.cpuUsage(c0);
      const s = typeof result === "number" ? result : result.seconds;
      cpu.get(r.id)!.push(typeof result === "number" ? (used.user + used.system) / 1e6 : result.cpuSeconds);
      const held = await depth();
      if (held !== r.expect) throw new Error(`${r.id}: ${REDIS_BENCH_QUEUE} holds ${held} messages after the run, expected ${r.expect}`);
      seconds.get(r.id)!.push(s);
      log(`redis broker ${r.id} rep ${rep + 1}/${reps}: ${round(r.n / s, 0)}/s (${round(s, 3)} s)`);
    }
  }
  await purge();
  await app.close();
  await redis.quit();
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
