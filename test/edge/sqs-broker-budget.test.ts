/**
 * Bundle budget for `sqsBroker`: a one-task worker bundled for workerd, minified and gzipped, stays
 * within its budget and imports no Node built-in; and a worker on `sqsRelay` alone carries none of
 * the broker's modules (the `celery-edge/sqs` entry exports both, so this is tree-shaking's job).
 */
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { bundle, measure, WORKERD_CONDITIONS } from "./bundle.js";

/** Measured 13,396 B (#18; sqsRelay's worker measured 12,245 B in the same tree). */
const BUDGET_BYTES = 13_400;
const SUBJECT = fileURLToPath(new URL("./fixtures/budget-sqs-broker-worker.ts", import.meta.url));
const RELAY_SUBJECT = fileURLToPath(new URL("./fixtures/budget-worker.ts", import.meta.url));

it(`keeps a one-task worker on sqsBroker within ${BUDGET_BYTES} B minified and gzipped`, async () => {
  // Act
  const size = await measure({ entry: SUBJECT, conditions: WORKERD_CONDITIONS });

  // Assess
  console.log(`bundle budget, sqsBroker (workerd): minified ${size.minified} B, minified+gzip ${size.gzipped} B of ${BUDGET_BYTES} B`);
  expect(size.minifiedBundle.nodeBuiltins).toEqual([]);
  expect(size.minifiedBundle.inputs).toContain("sdk/transports/sqs-broker.ts");
  expect(size.gzipped).toBeLessThanOrEqual(BUDGET_BYTES);
});

/** Inputs that put at least one byte into the output (esbuild lists tree-shaken modules with 0). */
function contributing(b: Awaited<ReturnType<typeof bundle>>): string[] {
  return Object.values(b.metafile.outputs).flatMap((o) => Object.entries(o.inputs).filter(([, i]) => i.bytesInOutput > 0).map(([path]) => path));
}

it("leaves the broker's modules out of a worker that imports only sqsRelay", async () => {
  // Act
  const [relay, broker] = await Promise.all([
    bundle({ entry: RELAY_SUBJECT, conditions: WORKERD_CONDITIONS, minify: true }),
    bundle({ entry: SUBJECT, conditions: WORKERD_CONDITIONS, minify: true }),
  ]);

  // Assess: the control, the broker worker, shows the check sees the broker's modules when used.
  expect(contributing(broker).filter((i) => i.includes("sqs-broker")).length).toBeGreaterThan(0);
  expect(contributing(relay)).toContain("sdk/transports/sqs.ts");
  expect(contributing(relay).filter((i) => i.includes("sqs-broker"))).toEqual([]);
});
