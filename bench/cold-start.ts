/**
 * @module
 * 5. Cold start. Bundles the real relay handler and a Lambda-style producer with esbuild the way the
 * CDK construct does (ESM, minified, node platform, the createRequire banner) but with every
 * dependency inside, AWS SDK included, so nothing resolves from node_modules at run time. Then, in
 * a fresh `node` process per run (bench/cold/driver.mjs), times the import and the first invocation,
 * with the broker connection measured apart.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { Celery } from "../sdk/node.js";
import { encodeEnvelope } from "../sdk/wire/envelope.js";
import { BENCH_DIR, BROKER_URL, BenchQueue, REPO_DIR, log, median, round, run } from "./lib/common.js";
import { relayEnv, sqsEvents } from "./lib/sqs-event.js";
import { buildMessages } from "./throughput.js";

export interface ColdRun {
  bootMs: number;
  importMs: number;
  firstInvokeMs: number;
  connectMs: number;
  firstInvokeExclConnectMs: number;
  sinceProcessStartMs: number;
}

export interface ColdStartSubject {
  bundleBytes: number;
  bundleGzipBytes: number;
  runs: ColdRun[];
  /** Medians over the runs. */
  median: ColdRun;
  /** import + first invocation with the connection excluded (the target's measure), median. */
  importPlusFirstExclConnectMs: number;
}

export interface ColdStartResult {
  relay: ColdStartSubject;
  producer: ColdStartSubject;
}

const BANNER = "import { createRequire as __celeryEdgeCreateRequire } from 'node:module'; const require = __celeryEdgeCreateRequire(import.meta.url);";

async function bundle(entry: string, outfile: string): Promise<{ bytes: number; gzip: number }> {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    mainFields: ["module", "main"],
    minify: true,
    banner: { js: BANNER },
    logLevel: "error",
  });
  const code = readFileSync(outfile);
  return { bytes: code.byteLength, gzip: gzipSync(code).byteLength };
}

const medianRun = (runs: ColdRun[]): ColdRun => {
  const keys = Object.keys(runs[0]!) as Array<keyof ColdRun>;
  return Object.fromEntries(keys.map((k) => [k, round(median(runs.map((r) => r[k])), 1)])) as unknown as ColdRun;
};

async function coldRuns(bundlePath: string, eventPath: string, env: NodeJS.ProcessEnv, reps: number, queue: BenchQueue): Promise<ColdRun[]> {
  const runs: ColdRun[] = [];
  for (let i = 0; i < reps; i++) {
    await queue.purge();
    const out = await run(process.execPath, [`${BENCH_DIR}cold/driver.mjs`, bundlePath, eventPath], { env, timeoutMs: 60_000 });
    const line = out.split("\n").find((l) => l.startsWith("COLD_START_RESULT "));
    if (!line) throw new Error(`cold-start driver printed no result:\n${out.slice(-2000)}`);
    const r = JSON.parse(line.slice("COLD_START_RESULT ".length)) as ColdRun;
    runs.push(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v, 2)])) as unknown as ColdRun);
  }
  return runs;
}

export async function measureColdStart(options: { reps: number }): Promise<ColdStartResult> {
  const dir = mkdtempSync(join(tmpdir(), "celery-edge-cold-"));
  try {
    const relayBundle = join(dir, "relay", "index.mjs");
    const producerBundle = join(dir, "producer", "index.mjs");
    const relaySize = await bundle(`${REPO_DIR}functions/relay/handler.ts`, relayBundle);
    const producerSize = await bundle(`${BENCH_DIR}cold/producer-handler.ts`, producerBundle);
    log(`cold start: relay bundle ${relaySize.bytes} B (${relaySize.gzip} B gzip), producer bundle ${producerSize.bytes} B (${producerSize.gzip} B gzip)`);

    const app = new Celery({ broker: BROKER_URL }); // only builds messages
    const batch = sqsEvents((await buildMessages(app, 10)).map(encodeEnvelope))[0]!;
    await app.close();
    const relayEvent = join(dir, "relay-event.json");
    const producerEvent = join(dir, "producer-event.json");
    writeFileSync(relayEvent, JSON.stringify(batch));
    writeFileSync(producerEvent, JSON.stringify({ i: 1 }));

    const queue = await BenchQueue.open();
    // Stdout of the relay carries its logs; the driver's result line is picked out of it.
    const relayRuns = await coldRuns(relayBundle, relayEvent, relayEnv(BROKER_URL), options.reps, queue);
    const producerRuns = await coldRuns(producerBundle, producerEvent, { PATH: process.env.PATH, BROKER_URL }, options.reps, queue);
    await queue.purge();
    await queue.close();

    const subject = (size: { bytes: number; gzip: number }, runs: ColdRun[]): ColdStartSubject => ({
      bundleBytes: size.bytes,
      bundleGzipBytes: size.gzip,
      runs,
      median: medianRun(runs),
      importPlusFirstExclConnectMs: round(median(runs.map((r) => r.importMs + r.firstInvokeExclConnectMs)), 1),
    });
    return { relay: subject(relaySize, relayRuns), producer: subject(producerSize, producerRuns) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
