/**
 * @module
 * 6. Memory: heap after 1k publishes vs after 100k on one app and one connection, garbage collected
 * before each reading. Run with --expose-gc:
 *
 *   node --expose-gc --import tsx bench/memory-child.ts TOTAL BATCH RESULT_FILE
 *
 * Publishes go through `sendMany` in batches (the awaited one-by-one path would take minutes for
 * 100k) plus 1 000 awaited `applyAsync` after each reading's batches, so both code paths run.
 */
import { writeFileSync } from "node:fs";
import { Celery } from "../sdk/node.js";
import { BENCH_QUEUE, BROKER_URL, BenchQueue, SMALL_KWARGS, TASK_NAME, round, smallArgs } from "./lib/common.js";

const total = Number(process.argv[2] ?? 100_000);
const batch = Number(process.argv[3] ?? 1_000);
const resultFile = process.argv[4]!;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");

const queue = await BenchQueue.open();
await queue.purge();
const app = new Celery({ broker: BROKER_URL });
const noop = app.task(TASK_NAME);

const heap = (): { heapUsed: number; rss: number; external: number; arrayBuffers: number } => {
  for (let i = 0; i < 4; i++) gc();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers };
};

let sent = 0;
const sendBatch = async (): Promise<void> => {
  const calls = Array.from({ length: batch }, (_, i) => ({ task: TASK_NAME, args: smallArgs(sent + i), kwargs: { ...SMALL_KWARGS }, queue: BENCH_QUEUE }));
  await app.sendMany(calls);
  sent += batch;
  // Keep the broker small: nobody consumes bench.q.
  if (sent % 20_000 === 0) await queue.purge();
};

const baseline = heap();
// The first 1k: connection, declarations, JIT and lazily built caches all exist after this.
await sendBatch();
for (let i = 0; i < 200; i++) await noop.applyAsync({ args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: BENCH_QUEUE });
const after1k = heap();
const sentAt1k = sent + 200;
const samples: Array<{ sent: number; heapUsed: number }> = [{ sent: sentAt1k, heapUsed: after1k.heapUsed }];
while (sent < total) {
  await sendBatch();
  if (sent % 20_000 === 0) samples.push({ sent: sent + 200, heapUsed: heap().heapUsed });
}
for (let i = 0; i < 200; i++) await noop.applyAsync({ args: smallArgs(i), kwargs: { ...SMALL_KWARGS }, queue: BENCH_QUEUE });
const after100k = heap();
await queue.purge();
await app.close();
await queue.close();

const mb = (b: number): number => round(b / 1024 / 1024, 2);
writeFileSync(
  resultFile,
  JSON.stringify({
    publishesAtFirstReading: sentAt1k,
    publishesAtLastReading: sent + 400,
    baseline: { heapUsedMB: mb(baseline.heapUsed) },
    after1k: { heapUsedMB: mb(after1k.heapUsed), rssMB: mb(after1k.rss), externalMB: mb(after1k.external) },
    after100k: { heapUsedMB: mb(after100k.heapUsed), rssMB: mb(after100k.rss), externalMB: mb(after100k.external) },
    heapGrowthMB: mb(after100k.heapUsed - after1k.heapUsed),
    samples: samples.map((s) => ({ sent: s.sent, heapUsedMB: mb(s.heapUsed) })),
  }),
);
