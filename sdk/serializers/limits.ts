/**
 * @module
 * How much a result decoder may read, build and nest. Results come from whoever can write to the
 * result store (a worker, anyone with PUBLISH rights on the result Redis), so each decoder checks
 * these before or while it builds anything: a hostile result fails with a typed error instead of
 * looping, exhausting the heap or overflowing the stack. Runtime-neutral.
 */
import { ConfigurationError, PayloadTooLargeError, SerializationError } from "../errors.js";

export interface DecodeLimits {
  /** Largest encoded result read, in bytes (after decompression). @default 67 108 864 (64 MiB) */
  maxBytes?: number;
  /** Deepest nesting of lists, tuples, sets and dicts; the task meta itself is level 1. @default 128 */
  maxDepth?: number;
  /** Most values in a decoded result, a shared (pickle, YAML alias) value counted at each place it appears. @default 10 000 000 */
  maxItems?: number;
  /**
   * Pickle only: decoding steps allowed per input byte. A step stands for about 8 bytes of heap: one
   * per opcode, 4 more for each object it makes, one per element or byte moved or copied. Real
   * pickles need 1 to 5. @default 8
   */
  pickleWorkPerByte?: number;
  /** Pickle only: decoding steps allowed in all, whatever the size (about 256 MB of heap). @default 32 000 000 */
  pickleMaxWork?: number;
}

export type ResolvedDecodeLimits = Readonly<Required<DecodeLimits>>;

export const DEFAULT_DECODE_LIMITS: ResolvedDecodeLimits = Object.freeze({
  maxBytes: 64 * 1024 * 1024,
  // Far below the nesting where the yaml library's recursion reaches V8's stack limit (~1 000).
  maxDepth: 128,
  maxItems: 10_000_000,
  pickleWorkPerByte: 8,
  pickleMaxWork: 32_000_000,
});

/** The defaults with `limits` applied; each limit must be a positive safe integer. (Small: the JSON decoder is in every edge bundle.) */
export function resolveDecodeLimits(limits?: DecodeLimits): ResolvedDecodeLimits {
  if (!limits) return DEFAULT_DECODE_LIMITS;
  const out: Record<string, number> = { ...DEFAULT_DECODE_LIMITS };
  for (const [key, value] of Object.entries(limits)) {
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 1) throw new ConfigurationError(`decodeLimits.${key} must be a positive integer, got ${value}`, { code: "ERR_INVALID_OPTION" });
    out[key] = value;
  }
  return out as ResolvedDecodeLimits;
}

/** Refuses input over `maxBytes` before any decoding work. */
export function checkInputSize(size: number, limits: ResolvedDecodeLimits, format: string): void {
  if (size > limits.maxBytes) throw new PayloadTooLargeError(`the ${format} result`, size, limits.maxBytes);
}

/** The error every decoder raises when the input breaks a limit. */
export function limitError(format: string, message: string): SerializationError {
  return new SerializationError(`cannot decode ${format}: ${message}`, "body");
}
