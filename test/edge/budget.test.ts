/**
 * Bundle budget: a worker that imports `Celery` and a universal transport (`sqsRelay`, or
 * `redisRest`) and sends one task, bundled for workerd the way wrangler does it, minified and
 * gzipped, stays within its budget.
 */
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { heaviestInputs, measure, WORKERD_CONDITIONS } from "./bundle.js";

const BUDGET_BYTES = 12 * 1024;
const SUBJECT = fileURLToPath(new URL("./fixtures/budget-worker.ts", import.meta.url));
/**
 * `redisRest` carries kombu's Redis layout and routing (redis-wire, redis-route) on top of the core
 * that every worker pays for; measured 14,800 B when added (the core alone about 10.3 KB).
 */
const REDIS_BUDGET_BYTES = 15 * 1024;
const REDIS_SUBJECT = fileURLToPath(new URL("./fixtures/budget-redis-worker.ts", import.meta.url));

it("keeps a one-task worker within 12 KiB minified and gzipped", async () => {
  // Act
  const size = await measure({ entry: SUBJECT, conditions: WORKERD_CONDITIONS });

  // Assess
  const heaviest = heaviestInputs(size.minifiedBundle)
    .map(({ input, bytes }) => `    ${String(bytes).padStart(6)} B  ${input}`)
    .join("\n");
  console.log(
    `bundle budget (workerd, esbuild ${WORKERD_CONDITIONS.join("/")}): raw ${size.raw} B, minified ${size.minified} B, ` +
      `minified+gzip ${size.gzipped} B (${(size.gzipped / 1024).toFixed(1)} KiB) of ${BUDGET_BYTES} B\n` +
      `  heaviest inputs, minified:\n${heaviest}`,
  );
  expect(size.minifiedBundle.nodeBuiltins).toEqual([]);
  expect(size.gzipped, `minified+gzip ${size.gzipped} B is over the ${BUDGET_BYTES} B budget; heaviest inputs:\n${heaviest}`).toBeLessThanOrEqual(
    BUDGET_BYTES,
  );
});

it("keeps a one-task worker on redisRest within 15 KiB minified and gzipped", async () => {
  // Act
  const size = await measure({ entry: REDIS_SUBJECT, conditions: WORKERD_CONDITIONS });

  // Assess
  const heaviest = heaviestInputs(size.minifiedBundle)
    .map(({ input, bytes }) => `    ${String(bytes).padStart(6)} B  ${input}`)
    .join("\n");
  console.log(`bundle budget, redisRest (workerd): minified ${size.minified} B, minified+gzip ${size.gzipped} B of ${REDIS_BUDGET_BYTES} B\n  heaviest inputs, minified:\n${heaviest}`);
  expect(size.minifiedBundle.nodeBuiltins).toEqual([]);
  expect(size.minifiedBundle.inputs).toContain("sdk/transports/redis-rest.ts");
  expect(size.gzipped, `minified+gzip ${size.gzipped} B is over the ${REDIS_BUDGET_BYTES} B budget; heaviest inputs:\n${heaviest}`).toBeLessThanOrEqual(REDIS_BUDGET_BYTES);
});
