/**
 * @module
 * 3. Encoding cost per task for each serializer: the serializer alone (`serializer.encode`
 * of the protocol 2 body `(args, kwargs, embed)`), and the whole message (`app.buildMessage`: task
 * id, routing, protocol 2 headers with `argsrepr`/`kwargsrepr`, body). No broker involved.
 */
import { Celery, PyTuple, allSerializers } from "../sdk/node.js";
import { BENCH_QUEUE, SMALL_KWARGS, TASK_NAME, log, median, round } from "./lib/common.js";

export const SERIALIZERS = ["json", "yaml", "msgpack", "pickle"] as const;

/** About 100 KB of ordinary task data as JSON: a list of records (ints, floats, strings, lists, bools). */
export function largeKwargs(targetBytes = 100_000): Record<string, unknown> {
  const records: Array<Record<string, unknown>> = [];
  const kwargs = { records };
  let size = 0;
  for (let i = 0; size < targetBytes; i++) {
    const r = { id: i, sku: `SKU-${String(i).padStart(6, "0")}`, price: round(i * 1.37 + 0.5, 2), qty: i % 17, tags: ["stock", i % 2 ? "red" : "blue"], active: i % 3 !== 0 };
    records.push(r);
    size += JSON.stringify(r).length + 2;
  }
  return kwargs;
}

const embed = { callbacks: null, errbacks: null, chain: null, chord: null };

export interface EncodingRow {
  serializer: string;
  payload: "small" | "100KB";
  /** Body bytes as this serializer writes them. */
  bytes: number;
  /** serializer.encode(body) per second (median of 3 windows). */
  encodeOpsPerSec: number;
  /** app.buildMessage(...) per second: the whole message, headers included. */
  buildOpsPerSec: number;
}

export interface EncodingResult {
  rows: EncodingRow[];
  /** For scale: JavaScript's JSON.stringify of the same small/large body (not Python-compatible bytes). */
  nativeJsonStringify: { small: number; large: number };
}

/** Ops per second of `fn`, median of `windows` windows of `ms` each after a warm-up. */
async function opsPerSec(fn: () => unknown | Promise<unknown>, ms = 200, windows = 3): Promise<number> {
  const isAsync = fn() instanceof Promise;
  const loop = async (budget: number): Promise<number> => {
    let ops = 0;
    const t0 = performance.now();
    let now = t0;
    while (now - t0 < budget) {
      for (let k = 0; k < 8; k++) {
        if (isAsync) await fn();
        else fn();
      }
      ops += 8;
      now = performance.now();
    }
    return (ops / (now - t0)) * 1000;
  };
  await loop(ms / 2);
  const rates: number[] = [];
  for (let w = 0; w < windows; w++) rates.push(await loop(ms));
  return round(median(rates), 0);
}

export async function measureEncoding(options: { windowMs: number }): Promise<EncodingResult> {
  // Never connects: buildMessage does not touch the broker.
  const app = new Celery({ broker: "amqp://guest:guest@127.0.0.1:5672//" });
  const payloads: Record<EncodingRow["payload"], { args: number[]; kwargs: Record<string, unknown> }> = {
    small: { args: [7, 2], kwargs: { ...SMALL_KWARGS } },
    "100KB": { args: [7, 2], kwargs: largeKwargs() },
  };
  const rows: EncodingRow[] = [];
  for (const name of SERIALIZERS) {
    const serializer = allSerializers.find((s) => s.name === name)!;
    for (const payload of ["small", "100KB"] as const) {
      const { args, kwargs } = payloads[payload];
      const body = PyTuple.of<unknown>(args, kwargs, embed);
      const bytes = serializer.encode(body).byteLength;
      const encodeOpsPerSec = await opsPerSec(() => serializer.encode(body), options.windowMs);
      const buildOpsPerSec = await opsPerSec(() => app.buildMessage(TASK_NAME, { args, kwargs, queue: BENCH_QUEUE, serializer: name }), options.windowMs);
      rows.push({ serializer: name, payload, bytes, encodeOpsPerSec, buildOpsPerSec });
      log(`encoding ${name} ${payload}: ${bytes} B, encode ${encodeOpsPerSec}/s, buildMessage ${buildOpsPerSec}/s`);
    }
  }
  const enc = new TextEncoder();
  const nativeJsonStringify = {
    small: await opsPerSec(() => enc.encode(JSON.stringify([payloads.small.args, payloads.small.kwargs, embed])), options.windowMs),
    large: await opsPerSec(() => enc.encode(JSON.stringify([payloads["100KB"].args, payloads["100KB"].kwargs, embed])), options.windowMs),
  };
  await app.close();
  return { rows, nativeJsonStringify };
}
