/**
 * @module
 * `npm run bench`: every measurement of issue 8 side by side in one run on the same broker, printed
 * as one table and written to bench/results/latest.json (and .md). See BENCHMARKS.md.
 *
 * Environment: BENCH_QUICK=1 for a smoke run (2k tasks, one repetition); BENCH_N, BENCH_REPS to
 * override; BENCH_SKIP=python,celery-node,latency,encoding,relay,cold,memory,redis to leave parts out.
 * Runs other than the full default one are written to bench/results/partial.*.
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import amqp from "amqplib";
import { measureColdStart, type ColdStartResult } from "./cold-start.js";
import { measureEncoding, type EncodingResult } from "./encoding.js";
import { BENCH_DIR, BROKER_URL, PYTHON, REPO_DIR, log, round, run, section, tsxArgs, waitForBroker } from "./lib/common.js";
import { relayEnv } from "./lib/sqs-event.js";
import { measureLatency, measureThroughput, type LatencyResult, type ThroughputResult } from "./throughput.js";
import { measureRedisBroker, type RedisBrokerResult } from "./redis-broker.js";

const quick = process.env.BENCH_QUICK === "1";
const N = Number(process.env.BENCH_N ?? (quick ? 2_000 : 20_000));
const REPS = Number(process.env.BENCH_REPS ?? (quick ? 1 : 3));
const skip = new Set((process.env.BENCH_SKIP ?? "").split(",").filter(Boolean));
const RESULTS_DIR = join(BENCH_DIR, "results");

interface RelayResult {
  n: number;
  batchSize: number;
  envelopeBytes: number;
  relay: { runs: number[]; perSecond: number; cpuMicrosPerTask: number };
  raw: { runs: number[]; perSecond: number; cpuMicrosPerTask: number };
}

interface MemoryResult {
  publishesAtFirstReading: number;
  publishesAtLastReading: number;
  after1k: { heapUsedMB: number; rssMB: number };
  after100k: { heapUsedMB: number; rssMB: number };
  heapGrowthMB: number;
  samples: Array<{ sent: number; heapUsedMB: number }>;
}

interface Target {
  target: string;
  required: string;
  measured: number | null;
  unit: "×" | "ms" | "MB";
  /** null: not measured, or context without a target. */
  holds: boolean | null;
}

async function machine(): Promise<Record<string, unknown>> {
  const model = await amqp.connect(BROKER_URL);
  const server = (model.connection as unknown as { serverProperties?: { version?: string; product?: string } }).serverProperties ?? {};
  await model.close();
  const pkg = (name: string): string | null => {
    try {
      return (JSON.parse(readFileSync(join(REPO_DIR, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
    } catch {
      return null;
    }
  };
  const python = await run(PYTHON, ["-c", "import sys, celery, kombu, amqp; print(sys.version.split()[0], celery.__version__, kombu.__version__, amqp.__version__)"]).catch(() => "? ? ? ?");
  const [py, celery, kombu, pyamqp] = python.trim().split(" ");
  return {
    date: new Date().toISOString(),
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGB: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    rabbitmq: `${server.product ?? "RabbitMQ"} ${server.version ?? "?"}`,
    amqplib: pkg("amqplib"),
    python: py,
    celery,
    kombu,
    pyamqp,
    celeryNode: pkg("celery-node"),
    loadAverageAtStart: loadavg().map((x) => round(x, 2)),
  };
}

/** The relay logs a JSON line per record to stdout, as in Lambda; its child's stdout is discarded. */
async function relayThroughput(n: number, reps: number): Promise<RelayResult> {
  const file = join(RESULTS_DIR, `relay-${process.pid}.tmp`);
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [...tsxArgs(`${BENCH_DIR}relay-child.ts`), String(n), String(reps), file], {
      cwd: REPO_DIR,
      env: relayEnv(BROKER_URL),
      stdio: ["ignore", "ignore", "inherit"],
    });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`relay benchmark exited with ${code}`))));
  });
  const result = JSON.parse(readFileSync(file, "utf8")) as RelayResult;
  rmSync(file, { force: true });
  return result;
}

async function memory(total: number): Promise<MemoryResult> {
  const file = join(RESULTS_DIR, `memory-${process.pid}.tmp`);
  await run(process.execPath, [...tsxArgs(`${BENCH_DIR}memory-child.ts`, ["--expose-gc"]), String(total), "1000", file], { timeoutMs: 300_000 });
  const result = JSON.parse(readFileSync(file, "utf8")) as MemoryResult;
  rmSync(file, { force: true });
  return result;
}

const ratio = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined || b === 0 ? null : round(a / b, 2));

function targets(t: ThroughputResult | undefined, lat: LatencyResult | undefined, relay: RelayResult | undefined, cold: ColdStartResult | undefined, mem: MemoryResult | undefined, redis?: RedisBrokerResult): Target[] {
  const rate = (id: string): number | undefined => t?.variants.find((v) => v.id === id)?.perSecond;
  const out: Target[] = [];
  const add = (target: string, required: string, measured: number | null, ok: ((x: number) => boolean) | null, unit: Target["unit"] = "×"): void => {
    out.push({ target, required, measured, unit, holds: measured === null || ok === null ? null : ok(measured) });
  };
  add("SDK sendMany vs raw amqplib (pipelined, confirms)", "≥ 0.9×", ratio(rate("sdk.sendMany"), rate("raw.pipelined")), (x) => x >= 0.9);
  add("SDK sendMany vs Python apply_async with confirm_publish", "≥ 5×", ratio(rate("sdk.sendMany"), rate("python.confirm")), (x) => x >= 5);
  add("SDK sendMany (every task confirmed) vs Python apply_async without confirms", "≥ 1.2×", ratio(rate("sdk.sendMany"), rate("python.noconfirm")), (x) => x >= 1.2);
  add("SDK sendMany vs celery-node as shipped (unconfirmed)", "> 1×", ratio(rate("sdk.sendMany"), rate("celery-node.default")), (x) => x > 1);
  add("SDK sendMany vs celery-node with noDelay (unconfirmed)", "> 1×", ratio(rate("sdk.sendMany"), rate("celery-node.nodelay")), (x) => x > 1);
  add("One awaited applyAsync vs raw publish + waitForConfirms, p50", "≤ 1.2×", lat ? lat.ratioP50 : null, (x) => x <= 1.2);
  add("One awaited applyAsync vs raw publish + waitForConfirms, p99", "≤ 1.2×", lat ? lat.ratioP99 : null, (x) => x <= 1.2);
  add("Relay vs raw amqplib (batches of 10)", "≥ 0.8×", relay ? ratio(relay.relay.perSecond, relay.raw.perSecond) : null, (x) => x >= 0.8);
  add("Relay cold start: import + first batch, connect excluded", "≤ 150 ms", cold ? cold.relay.importPlusFirstExclConnectMs : null, (x) => x <= 150, "ms");
  add("Heap growth from 1k to 100k publishes (after gc)", "within noise (< 1 MB)", mem ? mem.heapGrowthMB : null, (x) => x < 1, "MB");
  // The SDK pauses on amqplib's 'drain' as a careful amqplib user would; this is that user's figure.
  add("context: SDK sendMany vs raw amqplib pausing on 'drain' as the SDK does", "-", ratio(rate("sdk.sendMany"), rate("raw.drain")), null);
  // Context for the per-task form: one awaited publish is a broker round trip for every client.
  add("context: SDK awaited one by one vs raw amqplib awaited one by one", "-", ratio(rate("sdk.awaited"), rate("raw.awaited")), null);
  add("context: SDK awaited one by one vs Python confirm_publish (raw amqplib: see next)", "-", ratio(rate("sdk.awaited"), rate("python.confirm")), null);
  add("context: raw amqplib awaited one by one vs Python confirm_publish", "-", ratio(rate("raw.awaited"), rate("python.confirm")), null);
  add("context: SDK awaited one by one (confirmed) vs Python without confirms", "-", ratio(rate("sdk.awaited"), rate("python.noconfirm")), null);
  const redisRate = (id: string): number | undefined => redis?.variants.find((v) => v.id === id)?.perSecond;
  add("Redis broker: SDK sendMany vs Python apply_async on the same Redis", "≥ 5×", ratio(redisRate("redis.sdk.sendMany"), redisRate("redis.python")), (x) => x >= 5);
  add("Redis broker: SDK sendMany (every LPUSH answered) vs celery-node (unanswered)", "> 1×", ratio(redisRate("redis.sdk.sendMany"), redisRate("redis.celery-node")), (x) => x > 1);
  add("context: Redis broker, SDK awaited one by one vs Python apply_async", "-", ratio(redisRate("redis.sdk.awaited"), redisRate("redis.python")), null);
  return out;
}

function table(m: Record<string, unknown>, t: ThroughputResult | undefined, lat: LatencyResult | undefined, enc: EncodingResult | undefined, relay: RelayResult | undefined, cold: ColdStartResult | undefined, mem: MemoryResult | undefined, tg: Target[], redis?: RedisBrokerResult): string {
  const lines: string[] = [];
  lines.push(
    `Machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGB} GB RAM, Node ${m.node}, ${m.rabbitmq}, amqplib ${m.amqplib}, Python ${m.python} / Celery ${m.celery} (kombu ${m.kombu}, py-amqp ${m.pyamqp}), celery-node ${m.celeryNode ?? "not installed"}; ${m.date}; load average at start ${String(m.loadAverageAtStart)}, at end ${String(m.loadAverageAtEnd)}; took ${m.durationSeconds} s`,
  );
  lines.push("");
  if (t) {
    const raw = t.variants.find((v) => v.id === "raw.pipelined")?.perSecond;
    lines.push("| 1. Throughput to `bench.q` (durable, persistent, nobody consuming) | tasks | confirmed | tasks/s (median) | runs (s) | spread | client CPU µs/task | vs raw pipelined |");
    lines.push("|---|---:|:-:|---:|---|---:|---:|---:|");
    for (const v of t.variants) {
      lines.push(
        `| ${v.label}${v.note ? ` — ${v.note}` : ""} | ${v.n} | ${v.confirmed ? "yes" : "no"} | ${v.perSecond} | ${v.runs.join(", ")} | ${Math.round(v.spread * 100)}% | ${v.cpuMicrosPerTask ?? "-"} | ${ratio(v.perSecond, raw) ?? "-"}× |`,
      );
    }
    lines.push("");
  }
  if (lat) {
    const each = (pick: (r: LatencyResult["rounds"][number]) => number): string => lat.rounds.map(pick).join(" / ");
    lines.push(`| 2. Latency of one awaited publish: ${lat.rounds.length} rounds of ${lat.n} each, alternating; median of rounds (each round) | p50 ms | p99 ms | mean ms |`);
    lines.push("|---|---:|---:|---:|");
    lines.push(`| celery-edge \`await task.applyAsync()\` (build + publish + confirm) | ${lat.sdk.p50} (${each((r) => r.sdk.p50)}) | ${lat.sdk.p99} (${each((r) => r.sdk.p99)}) | ${lat.sdk.mean} |`);
    lines.push(`| raw amqplib \`publish\` + \`waitForConfirms\` (prebuilt bytes) | ${lat.raw.p50} (${each((r) => r.raw.p50)}) | ${lat.raw.p99} (${each((r) => r.raw.p99)}) | ${lat.raw.mean} |`);
    lines.push(`| ratio | ${lat.ratioP50}× (${each((r) => round(r.sdk.p50 / r.raw.p50, 2))}) | ${lat.ratioP99}× (${each((r) => round(r.sdk.p99 / r.raw.p99, 2))}) | |`);
    lines.push("");
  }
  if (enc) {
    lines.push("| 3. Encoding, ops/s (median of 3 windows) | payload | body bytes | `serializer.encode(body)` | `app.buildMessage` (whole message) |");
    lines.push("|---|---|---:|---:|---:|");
    for (const r of enc.rows) lines.push(`| ${r.serializer} | ${r.payload} | ${r.bytes} | ${r.encodeOpsPerSec} | ${r.buildOpsPerSec} |`);
    lines.push(`| for scale: JSON.stringify + TextEncoder (not Python's bytes) | small / 100KB | | ${enc.nativeJsonStringify.small} / ${enc.nativeJsonStringify.large} | |`);
    lines.push("");
  }
  if (relay) {
    lines.push(`| 4. Relay: ${relay.n} envelopes (${relay.envelopeBytes} B each), SQS events of ${relay.batchSize}, one at a time | tasks/s (median) | runs (s) | CPU µs/task in Node |`);
    lines.push("|---|---:|---|---:|");
    lines.push(`| real relay handler (Powertools batch, envelope checks, allowlist, AmqpTransport, a log line per record) | ${relay.relay.perSecond} | ${relay.relay.runs.join(", ")} | ${relay.relay.cpuMicrosPerTask} |`);
    lines.push(`| raw amqplib, same messages, 10 per waitForConfirms | ${relay.raw.perSecond} | ${relay.raw.runs.join(", ")} | ${relay.raw.cpuMicrosPerTask} |`);
    lines.push(`| ratio | ${ratio(relay.relay.perSecond, relay.raw.perSecond)}× | | |`);
    lines.push("");
  }
  if (cold) {
    lines.push("| 5. Cold start (fresh `node` per run, median) | bundle KB (gzip) | Node boot ms | import ms | first invocation ms | of which connect ms | import + first, connect excluded ms |");
    lines.push("|---|---:|---:|---:|---:|---:|---:|");
    for (const [name, s] of [
      ["relay handler, first batch of 10", cold.relay],
      ["Lambda-style producer, one applyAsync", cold.producer],
    ] as const) {
      lines.push(
        `| ${name} | ${round(s.bundleBytes / 1024, 0)} (${round(s.bundleGzipBytes / 1024, 0)}) | ${s.median.bootMs} | ${s.median.importMs} | ${s.median.firstInvokeMs} | ${s.median.connectMs} | ${s.importPlusFirstExclConnectMs} |`,
      );
    }
    lines.push("");
  }
  if (mem) {
    lines.push("| 6. Memory, one app and connection (after gc) | publishes | heapUsed MB | rss MB |");
    lines.push("|---|---:|---:|---:|");
    lines.push(`| after the first | ${mem.publishesAtFirstReading} | ${mem.after1k.heapUsedMB} | ${mem.after1k.rssMB} |`);
    lines.push(`| after | ${mem.publishesAtLastReading} | ${mem.after100k.heapUsedMB} | ${mem.after100k.rssMB} |`);
    lines.push(`| growth (samples every 20k: ${mem.samples.map((s) => s.heapUsedMB).join(", ")} MB) | | ${mem.heapGrowthMB} | |`);
    lines.push("");
  }
  if (redis) {
    lines.push("| 7. Redis broker: throughput to the list `bench.redis` on redis://…/13 (nobody consuming) | tasks | every reply awaited | tasks/s (median) | runs (s) | spread | client CPU µs/task |");
    lines.push("|---|---:|:-:|---:|---|---:|---:|");
    for (const v of redis.variants) lines.push(`| ${v.label} | ${v.n} | ${v.confirmed ? "yes" : "no"} | ${v.perSecond} | ${v.runs.join(", ")} | ${Math.round(v.spread * 100)}% | ${v.cpuMicrosPerTask} |`);
    lines.push("");
  }
  lines.push("| Target | required | measured | holds |");
  lines.push("|---|---|---:|:-:|");
  for (const x of tg) {
    const measured = x.measured === null ? "-" : x.unit === "×" ? `${x.measured}×` : `${x.measured} ${x.unit}`;
    lines.push(`| ${x.target} | ${x.required} | ${measured} | ${x.holds === null ? "-" : x.holds ? "yes" : "**no**"} |`);
  }
  return lines.join("\n");
}

const started = performance.now();
mkdirSync(RESULTS_DIR, { recursive: true });
log(`n=${N} reps=${REPS}${skip.size ? ` skip=${[...skip].join(",")}` : ""}`);
await waitForBroker();
const m = await machine();

let latency: LatencyResult | undefined;
let encoding: EncodingResult | undefined;
let relay: RelayResult | undefined;
let cold: ColdStartResult | undefined;
let mem: MemoryResult | undefined;

const celeryNodeInstalled = m.celeryNode !== null && !skip.has("celery-node");
const throughput: ThroughputResult = await section("throughput", () =>
  measureThroughput({
    n: N,
    reps: REPS,
    python: !skip.has("python"),
    celeryNodeN: celeryNodeInstalled ? (quick ? 200 : 500) : 0,
    celeryNodeNoDelayN: celeryNodeInstalled ? (quick ? 1_000 : 5_000) : 0,
  }),
);
if (!skip.has("latency")) {
  latency = await section("latency", () => measureLatency({ n: quick ? 500 : 2_000, rounds: quick ? 1 : 3 }));
  log(`latency p50 sdk ${latency.sdk.p50} ms raw ${latency.raw.p50} ms; p99 sdk ${latency.sdk.p99} ms raw ${latency.raw.p99} ms`);
}
if (!skip.has("encoding")) encoding = await measureEncoding({ windowMs: quick ? 100 : 200 });
if (!skip.has("relay")) relay = await section("relay", () => relayThroughput(N, REPS));
if (!skip.has("cold")) {
  cold = await section("cold start", () => measureColdStart({ reps: quick ? 3 : 7 }));
  log(`cold start relay ${cold.relay.importPlusFirstExclConnectMs} ms (+ connect ${cold.relay.median.connectMs} ms), producer ${cold.producer.importPlusFirstExclConnectMs} ms`);
}
if (!skip.has("memory")) {
  mem = await section("memory", () => memory(quick ? 20_000 : 100_000));
  log(`memory heapUsed ${mem.after1k.heapUsedMB} MB → ${mem.after100k.heapUsedMB} MB`);
}
let redisBroker: RedisBrokerResult | undefined;
if (!skip.has("redis")) {
  redisBroker = await section("redis broker", () =>
    measureRedisBroker({ n: N, reps: REPS, python: !skip.has("python"), celeryNodeN: celeryNodeInstalled ? (quick ? 2_000 : N) : 0 }),
  );
}
m.loadAverageAtEnd = loadavg().map((x) => round(x, 2));
m.durationSeconds = round((performance.now() - started) / 1000, 1);

const tg = targets(throughput, latency, relay, cold, mem, redisBroker);
const text = table(m, throughput, latency, encoding, relay, cold, mem, tg, redisBroker);
const json = { machine: m, config: { n: N, reps: REPS, quick, skipped: [...skip] }, throughput, latency, encoding, relay, coldStart: cold, memory: mem, redisBroker, targets: tg };
const name = quick || process.env.BENCH_N || process.env.BENCH_REPS || skip.size ? "partial" : "latest";
writeFileSync(join(RESULTS_DIR, `${name}.json`), JSON.stringify(json, null, 2) + "\n");
writeFileSync(join(RESULTS_DIR, `${name}.md`), text + "\n");
console.log(text);
log(`done in ${m.durationSeconds} s; wrote bench/results/${name}.json and .md`);
