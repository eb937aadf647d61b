/**
 * Bundle budget: a worker that imports `Celery` and `sqsRelay` and sends one task, bundled for
 * workerd the way wrangler does it, minified and gzipped, stays within 12 KiB.
 */
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { heaviestInputs, measure, WORKERD_CONDITIONS } from "./bundle.js";

const BUDGET_BYTES = 12 * 1024;
const SUBJECT = fileURLToPath(new URL("./fixtures/budget-worker.ts", import.meta.url));

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
