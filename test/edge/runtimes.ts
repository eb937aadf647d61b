/**
 * @module
 * Runs a bundle inside the real edge runtimes: Cloudflare's `workerd` (through miniflare, which
 * spawns the workerd binary) and Vercel's `edge-runtime` (its VM with the edge primitives only).
 */
import { createRequire } from "node:module";
import type { Readable } from "node:stream";
import { EdgeRuntime } from "edge-runtime";
import { Miniflare } from "miniflare";

const require = createRequire(import.meta.url);

/** Versions of the runtimes under test, for the test output. */
export const RUNTIME_VERSIONS = {
  workerd: (require("workerd") as { version: string }).version,
  miniflare: (require("miniflare/package.json") as { version: string }).version,
  edgeRuntime: (require("edge-runtime/package.json") as { version: string }).version,
} as const;

export interface RunningWorker {
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** What workerd printed (uncaught errors at startup land here). */
  output(): string;
  dispose(): Promise<void>;
}

export interface WorkerdOptions {
  /** An ES module worker, as wrangler would upload it. */
  script: string;
  compatibilityDate: string;
  /** Plain-text bindings (`[vars]` and secrets). */
  bindings?: Record<string, string>;
}

/**
 * Starts workerd with one module worker. Its global `fetch` goes out through a workerd network
 * service that allows loopback only: the emulated SQS on 127.0.0.1 is reachable (workerd's own
 * default allows public addresses only) and nothing on the internet is.
 */
export async function startWorkerd(options: WorkerdOptions): Promise<RunningWorker> {
  let output = "";
  const mf = new Miniflare({
    modules: true,
    script: options.script,
    compatibilityDate: options.compatibilityDate,
    bindings: options.bindings ?? {},
    outboundService: { network: { allow: ["local"], deny: [] } },
    handleRuntimeStdio(stdout: Readable, stderr: Readable) {
      stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    },
  });
  try {
    await mf.ready;
  } catch (error) {
    await mf.dispose().catch(() => undefined);
    throw new Error(`workerd did not start: ${(error as Error).message}\n${output}`, { cause: error });
  }
  return {
    async fetch(path, init) {
      return (await mf.dispatchFetch(`http://localhost${path}`, init as never)) as unknown as Response;
    },
    output: () => output,
    dispose: () => mf.dispose(),
  };
}

/** Starts workerd expecting it to refuse the script; resolves with what it printed. */
export async function workerdStartupFailure(options: WorkerdOptions): Promise<string> {
  try {
    const worker = await startWorkerd(options);
    await worker.dispose();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("workerd started the script, expected it to fail at load");
}

export interface EdgeRuntimeOptions {
  /** A classic script (IIFE bundle) that registers a `fetch` listener, as Vercel's wrapper does. */
  code: string;
  /** What the function sees as `process.env` (Vercel Edge exposes environment variables there). */
  env?: Record<string, string>;
}

/** Evaluates `code` in a fresh edge-runtime VM: Web APIs only, no `require`, no Node modules. */
export function startEdgeRuntime(options: EdgeRuntimeOptions): RunningWorker {
  const runtime = new EdgeRuntime({
    extend: (context) => Object.assign(context, { process: { env: { ...options.env } } }),
    initialCode: options.code,
  });
  return {
    async fetch(path, init) {
      const response = await runtime.dispatchFetch(`http://localhost${path}`, init);
      await response.waitUntil();
      return response;
    },
    output: () => "",
    dispose: async () => undefined,
  };
}
