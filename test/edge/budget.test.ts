/**
 * Bundle budget: a worker that imports `Celery` and a universal transport (`sqsRelay`, or
 * `redisRest`) and sends one task, bundled for workerd the way wrangler does it, minified and
 * gzipped, stays within its budget. Each budget sits just above the size last measured, so growth
 * fails here and has to be paid for (or the budget raised, with the reason in BENCHMARKS.md).
 */
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { gzipCostByInput, measure, WORKERD_CONDITIONS } from "./bundle.js";

/** Measured 12,202 B (#20; 12,483 B before, 12,112 B at the last release). The #20 target is 8 KiB. */
const BUDGET_BYTES = 12_250;
const SUBJECT = fileURLToPath(new URL("./fixtures/budget-worker.ts", import.meta.url));
/**
 * `redisRest` carries kombu's Redis layout and routing (redis-wire, redis-route) on top of the core
 * that every worker pays for (about 9.6 KB with a do-nothing transport). Measured 14,041 B (#20;
 * 14,323 B before).
 */
const REDIS_BUDGET_BYTES = 14_100;
const REDIS_SUBJECT = fileURLToPath(new URL("./fixtures/budget-redis-worker.ts", import.meta.url));

/** The inputs whose code costs the most once gzipped, one per line, for the log and a failure. */
async function heaviestOf(entry: string): Promise<string> {
  const costs = await gzipCostByInput({ entry, conditions: WORKERD_CONDITIONS });
  return costs.map(({ input, bytes }) => `    ${String(bytes).padStart(6)} B  ${input}`).join("\n");
}

it(`keeps a one-task worker within ${BUDGET_BYTES} B minified and gzipped`, async () => {
  // Act
  const size = await measure({ entry: SUBJECT, conditions: WORKERD_CONDITIONS });

  // Assess
  const heaviest = await heaviestOf(SUBJECT);
  console.log(
    `bundle budget (workerd, esbuild ${WORKERD_CONDITIONS.join("/")}): raw ${size.raw} B, minified ${size.minified} B, ` +
      `minified+gzip ${size.gzipped} B (${(size.gzipped / 1024).toFixed(1)} KiB) of ${BUDGET_BYTES} B\n` +
      `  heaviest inputs, gzip cost:\n${heaviest}`,
  );
  expect(size.minifiedBundle.nodeBuiltins).toEqual([]);
  expect(size.gzipped, `minified+gzip ${size.gzipped} B is over the ${BUDGET_BYTES} B budget; heaviest inputs:\n${heaviest}`).toBeLessThanOrEqual(
    BUDGET_BYTES,
  );
});

it(`keeps a one-task worker on redisRest within ${REDIS_BUDGET_BYTES} B minified and gzipped`, async () => {
  // Act
  const size = await measure({ entry: REDIS_SUBJECT, conditions: WORKERD_CONDITIONS });

  // Assess
  const heaviest = await heaviestOf(REDIS_SUBJECT);
  console.log(`bundle budget, redisRest (workerd): minified ${size.minified} B, minified+gzip ${size.gzipped} B of ${REDIS_BUDGET_BYTES} B\n  heaviest inputs, gzip cost:\n${heaviest}`);
  expect(size.minifiedBundle.nodeBuiltins).toEqual([]);
  expect(size.minifiedBundle.inputs).toContain("sdk/transports/redis-rest.ts");
  expect(size.gzipped, `minified+gzip ${size.gzipped} B is over the ${REDIS_BUDGET_BYTES} B budget; heaviest inputs:\n${heaviest}`).toBeLessThanOrEqual(REDIS_BUDGET_BYTES);
});
