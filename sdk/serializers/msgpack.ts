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
import { CeleryError, SerializationError } from "../errors.js";
import { checkValue, MAX_DEPTH, type CheckOptions } from "./check.js";
import { kombuJsonDate } from "./json.js";
import { checkInputSize, limitError, resolveDecodeLimits, type DecodeLimits, type ResolvedDecodeLimits } from "./limits.js";
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

/**
 * Walks the msgpack structure without building it (flat, one step per value) and refuses it before
 * the library allocates anything: nesting beyond `maxDepth` (our own post-processing recurses),
 * more than `maxItems` values, and containers or strings that declare more than the bytes left (an
 * array header can claim four billion entries in five bytes).
 */
export function scanMsgpack(bytes: Uint8Array, limits: ResolvedDecodeLimits): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  /** Entries still expected per open container (a map entry is a key and a value). */
  const open: number[] = [];
  let pos = 0;
  let items = 0;
  const fail = (message: string): never => {
    throw limitError("msgpack", `${message} (at byte ${pos})`);
  };
  const need = (n: number): void => {
    if (n > bytes.length - pos) fail(`a length of ${n} bytes runs past the end of the data`);
  };
  const skip = (n: number): void => {
    need(n);
    pos += n;
  };
  const uint = (size: 1 | 2 | 4): number => {
    need(size);
    const n = size === 1 ? view.getUint8(pos) : size === 2 ? view.getUint16(pos) : view.getUint32(pos);
    pos += size;
    return n;
  };
  do {
    need(1);
    const b = bytes[pos++]!;
    if (++items > limits.maxItems) fail(`more than ${limits.maxItems} values (maxItems)`);
    let entries = -1;
    if (b <= 0x7f || b >= 0xe0) {
      // fixint
    } else if (b <= 0x8f) entries = (b & 0x0f) * 2;
    else if (b <= 0x9f) entries = b & 0x0f;
    else if (b <= 0xbf) skip(b & 0x1f);
    else {
      switch (b) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          break;
        case 0xc4:
        case 0xd9:
          skip(uint(1));
          break;
        case 0xc5:
        case 0xda:
          skip(uint(2));
          break;
        case 0xc6:
        case 0xdb:
          skip(uint(4));
          break;
        case 0xc7:
          skip(uint(1) + 1);
          break;
        case 0xc8:
          skip(uint(2) + 1);
          break;
        case 0xc9:
          skip(uint(4) + 1);
          break;
        case 0xcc:
        case 0xd0:
          skip(1);
          break;
        case 0xcd:
        case 0xd1:
          skip(2);
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          skip(4);
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          skip(8);
          break;
        case 0xd4:
          skip(2);
          break;
        case 0xd5:
          skip(3);
          break;
        case 0xd6:
          skip(5);
          break;
        case 0xd7:
          skip(9);
          break;
        case 0xd8:
          skip(17);
          break;
        case 0xdc:
          entries = uint(2);
          break;
        case 0xdd:
          entries = uint(4);
          break;
        case 0xde:
          entries = uint(2) * 2;
          break;
        case 0xdf:
          entries = uint(4) * 2;
          break;
        default:
          pos--;
          fail(`type byte 0x${b.toString(16)} is never used`);
      }
    }
    if (entries >= 0) {
      if (open.length + 1 > limits.maxDepth) fail(`containers nested more than ${limits.maxDepth} levels deep (maxDepth)`);
      // Every entry takes at least one byte.
      if (entries > bytes.length - pos) fail(`a container declares ${entries} entries with ${bytes.length - pos} bytes left`);
      if (entries > 0) {
        open.push(entries);
        continue;
      }
    }
    // A value is complete: it fills one entry of its container, which may complete that one too.
    while (open.length > 0) {
      const last = open.length - 1;
      if (--open[last]! > 0) break;
      open.pop();
    }
  } while (open.length > 0);
}

/** `msgpack.unpackb(raw=False)` for results, bounded by `limits` (see `DecodeLimits`). */
export function decodeMsgpack(bytes: Uint8Array, limits?: DecodeLimits): unknown {
  const resolved = resolveDecodeLimits(limits);
  checkInputSize(bytes.length, resolved, "msgpack");
  try {
    scanMsgpack(bytes, resolved);
    return fromUnpacked(unpack(bytes, { useBigInt64: true }));
  } catch (err) {
    if (err instanceof CeleryError) throw err;
    throw new SerializationError(`body is not valid msgpack: ${err instanceof Error ? err.message : String(err)}`, "body", { cause: err });
  }
}

export const msgpackSerializer: Serializer & { decode(bytes: Uint8Array, limits?: DecodeLimits): unknown } = {
  name: "msgpack",
  contentType: "application/x-msgpack",
  contentEncoding: "binary",
  encode(value: unknown): Uint8Array {
    checkValue(value, MSGPACK_RULES, "body");
    // Depth limit is ours (checkValue); the library counts the top level as 1.
    return pack(toPackable(value), { maxDepth: MAX_DEPTH + 2 });
  },
  decode: decodeMsgpack,
};
