/**
 * The universal entries bundle for edge runtimes without a single Node built-in, and
 * `celery-edge/amqp` on an edge runtime fails with `UnsupportedRuntimeError` pointing at the SQS
 * transport: in the bundler (no error about `net`), in real workerd and in edge-runtime.
 */
import { describe, expect, it } from "vitest";
import { bundle, NODE_CONDITIONS, VERCEL_EDGE_CONDITIONS, WORKERD_CONDITIONS } from "./bundle.js";
import { startEdgeRuntime, startWorkerd, workerdStartupFailure } from "./runtimes.js";

const EDGE_ENTRIES = ["celery-edge", "celery-edge/sqs", "celery-edge/redis", "celery-edge/serializers"] as const;
const TARGETS = [
  { runtime: "workerd", conditions: WORKERD_CONDITIONS },
  { runtime: "Vercel Edge", conditions: VERCEL_EDGE_CONDITIONS },
] as const;
/** Node-only packages that must never reach an edge bundle. */
const NODE_ONLY_PACKAGES = /node_modules\/(amqplib|redis|@redis|@aws-sdk|@smithy|@aws-lambda-powertools)\//;
const COMPATIBILITY_DATE = "2025-09-01";

describe("edge entries bundle without Node built-ins", () => {
  for (const { runtime, conditions } of TARGETS) {
    for (const entry of EDGE_ENTRIES) {
      it(`bundles ${entry} for ${runtime} with no node: import, no Node-only package and no warning`, async () => {
        // Prepare: re-export everything, so tree shaking cannot hide an import.
        const contents = `export * from "${entry}";`;

        // Act
        const b = await bundle({ contents, conditions });

        // Assess
        expect(b.nodeBuiltins).toEqual([]);
        expect(b.inputs.filter((i) => NODE_ONLY_PACKAGES.test(i))).toEqual([]);
        expect(b.warnings).toEqual([]);
        expect(b.inputs.some((i) => i.startsWith("sdk/"))).toBe(true);
      });
    }
  }

  it("does see the built-ins of the Node entry, so a clean result above means something", async () => {
    const b = await bundle({ contents: `export * from "celery-edge"; export * from "celery-edge/amqp";`, conditions: NODE_CONDITIONS });

    const paths = new Set(b.nodeBuiltins.map((i) => i.path));
    expect(paths).toContain("node:net");
    expect(b.nodeBuiltins.some((i) => i.importer.includes("node_modules/amqplib/"))).toBe(true);
    expect(b.inputs).toContain("sdk/node.ts");
  });
});

describe("celery-edge/amqp on an edge runtime", () => {
  const importNamed = `import { amqpTransport } from "celery-edge/amqp";`;

  for (const { runtime, conditions } of TARGETS) {
    it(`bundles for ${runtime} as the edge stub: no net, no amqplib, no bundler warning`, async () => {
      const b = await bundle({ contents: `${importNamed}\nexport const make = amqpTransport;`, conditions, loader: "js" });

      expect(b.inputs).toContain("sdk/amqp.edge.ts");
      expect(b.inputs.filter((i) => NODE_ONLY_PACKAGES.test(i) || i === "sdk/amqp.ts")).toEqual([]);
      expect(b.nodeBuiltins).toEqual([]);
      expect(b.warnings).toEqual([]);
    });
  }

  it("stops workerd at load with UnsupportedRuntimeError naming the SQS relay", async () => {
    // Prepare: the import as a user writes it, at the top of the worker.
    const b = await bundle({
      contents: `${importNamed}\nexport default { fetch: () => new Response(String(amqpTransport)) };`,
      conditions: WORKERD_CONDITIONS,
    });

    // Act
    const failure = await workerdStartupFailure({ script: b.code, compatibilityDate: COMPATIBILITY_DATE });

    // Assess
    expect(failure).toContain("UnsupportedRuntimeError: celery-edge/amqp needs Node.js");
    expect(failure).toContain('import { sqsRelay } from "celery-edge/sqs"');
    expect(failure).not.toMatch(/\bnet\b|No such module/);
  });

  /** A worker that imports the subpath lazily and reports what it caught. */
  const CATCHING_HANDLER = `
    import { UnsupportedRuntimeError } from "celery-edge";
    async function probe() {
      try {
        await import("celery-edge/amqp");
        return Response.json({ imported: true });
      } catch (e) {
        return Response.json({ name: e.name, code: e.code, message: e.message, isUnsupported: e instanceof UnsupportedRuntimeError });
      }
    }`;
  const expected = {
    name: "UnsupportedRuntimeError",
    code: "ERR_UNSUPPORTED_RUNTIME",
    isUnsupported: true,
    message: expect.stringContaining('on edge runtimes publish through the SQS relay: import { sqsRelay } from "celery-edge/sqs"'),
  };

  it("throws an UnsupportedRuntimeError that workerd code can catch", async () => {
    const b = await bundle({ contents: `${CATCHING_HANDLER}\nexport default { fetch: probe };`, conditions: WORKERD_CONDITIONS, loader: "js" });
    const worker = await startWorkerd({ script: b.code, compatibilityDate: COMPATIBILITY_DATE });
    try {
      const response = await worker.fetch("/");
      expect(await response.json()).toEqual(expected);
    } finally {
      await worker.dispose();
    }
  });

  it("throws an UnsupportedRuntimeError that edge-runtime code can catch", async () => {
    const b = await bundle({
      contents: `${CATCHING_HANDLER}\naddEventListener("fetch", (event) => event.respondWith(probe()));`,
      conditions: VERCEL_EDGE_CONDITIONS,
      format: "iife",
      loader: "js",
    });
    const runtime = startEdgeRuntime({ code: b.code });

    const response = await runtime.fetch("/");

    expect(await response.json()).toEqual(expected);
  });
});
