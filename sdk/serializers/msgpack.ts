/**
 * @module
 * kombu 5.2's msgpack serializer: `msgpack.packb(value, use_bin_type=True)`, read back by the worker
 * with `unpackb(raw=False)`. `@msgpack/msgpack` already picks the same smallest encodings as the
 * Python packer (fixint/uint8…uint64, str8, bin8, float64 `cb`), so the bytes match once the values
 * are in the shape Python would hold them.
 *
 * Dates: Python's packer has no datetime support unless asked (`datetime=True`, which kombu does
 * not pass), and the library's default timestamp extension would reach the task as an opaque
 * `ExtType`. They go as the same ISO string kombu's json encoder writes, so a task sees the same
 * argument whichever of json or msgpack carried it.
 */
import { decode as unpack, encode as pack } from "@msgpack/msgpack";
import { SerializationError } from "../errors.js";
import { checkValue, MAX_DEPTH, type CheckOptions } from "./check.js";
import { kombuJsonDate } from "./json.js";
import type { Serializer } from "./serializer.js";

export const MSGPACK_RULES: CheckOptions = {
  format: "msgpack",
  allowBytes: true,
  allowNonFinite: true,
  allowLoneSurrogates: false,
};

/** Returns `value` with bigints as numbers and Dates as strings, copying only what changes. */
function toPackable(value: unknown): unknown {
  if (typeof value === "bigint") return Number(value);
  if (typeof value !== "object" || value === null || value instanceof Uint8Array) return value;
  if (value instanceof Date) return kombuJsonDate(value);
  if (Array.isArray(value)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const next = toPackable(item);
      if (next !== item) copy ??= [...(value as unknown[])];
      if (copy) copy[i] = next;
    }
    return copy ?? value;
  }
  const record = value as Record<string, unknown>;
  let copy: Record<string, unknown> | null = null;
  for (const key of Object.keys(record)) {
    const item = record[key];
    const next = toPackable(item);
    if (next !== item && !copy) {
      copy = {};
      // Rebuild in the original order; defineProperty keeps a "__proto__" key an ordinary key.
      for (const k of Object.keys(record)) define(copy, k, record[k]);
    }
    if (copy) define(copy, key, next);
  }
  return copy ?? value;
}

function define(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** 64-bit integers are read as bigints so large ones stay exact; those that fit become numbers. */
function fromUnpacked(value: unknown): unknown {
  if (typeof value === "bigint") return value <= MAX_SAFE && value >= -MAX_SAFE ? Number(value) : value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = fromUnpacked(value[i]);
  } else if (typeof value === "object" && value !== null && !(value instanceof Uint8Array) && !(value instanceof Date)) {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = fromUnpacked(record[key]);
  }
  return value;
}

export const msgpackSerializer: Serializer = {
  name: "msgpack",
  contentType: "application/x-msgpack",
  contentEncoding: "binary",
  encode(value: unknown): Uint8Array {
    checkValue(value, MSGPACK_RULES, "body");
    // Depth limit is ours (checkValue); the library counts the top level as 1.
    return pack(toPackable(value), { maxDepth: MAX_DEPTH + 2 });
  },
  decode(bytes: Uint8Array): unknown {
    try {
      return fromUnpacked(unpack(bytes, { useBigInt64: true }));
    } catch (err) {
      throw new SerializationError(`body is not valid msgpack: ${(err as Error).message}`, "body", { cause: err });
    }
  },
};
