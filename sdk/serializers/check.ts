/**
 * @module
 * The one place that decides which JavaScript values can go to a Python worker, and what they
 * become there. Every serializer walks the value with `checkValue` before encoding, so a bad value
 * fails here with a path (`args[1].when`) instead of half-way through an encoder or, worse, as a
 * message the worker cannot decode.
 *
 * The value model, shared by all encoders and by `pyRepr`:
 * - `null` → None; booleans → bool; strings → str.
 * - A number is a Python `int` when `Number.isSafeInteger` holds (so `-0` is `0`), otherwise a
 *   `float`. Integer-valued numbers beyond ±(2^53 − 1), such as `1e20`, are floats: JavaScript has
 *   already rounded them, and claiming an exact int would invent digits.
 * - A `bigint` within ±(2^53 − 1) is the same int as the equal number. Larger ones are refused:
 *   the result would come back to JavaScript as a rounded number, silently changing the value.
 * - Arrays → list; `PyTuple` → tuple; plain objects (prototype `Object.prototype` or `null`) → dict.
 * - `Date` → an aware UTC `datetime` (or the string each format uses for it); millisecond precision.
 * - `Uint8Array` (Node's `Buffer` included) → bytes, where the format can carry bytes.
 */
import { SerializationError } from "../errors.js";
import { isPyTuple } from "./python-values.js";

/** What one format can carry beyond the JSON-like core. */
export interface CheckOptions {
  /** Format name used in error messages ("json", "msgpack", …). */
  readonly format: string;
  /** `Uint8Array` may be sent as Python bytes. */
  readonly allowBytes: boolean;
  /** `NaN`, `Infinity` and `-Infinity` may be sent as Python floats. */
  readonly allowNonFinite: boolean;
  /**
   * Strings may hold unpaired UTF-16 surrogates. Python str can hold them too, but only formats that
   * escape them (json, yaml) or encode them with "surrogatepass" (pickle) can carry them; msgpack's
   * strict UTF-8 decoding on the worker rejects them.
   */
  readonly allowLoneSurrogates: boolean;
}

/** Containers nested deeper than this are refused: far inside Python's default recursion limit (1000). */
export const MAX_DEPTH = 100;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** Python's `datetime` covers years 1–9999; JavaScript dates reach far beyond. */
const FIRST_PYTHON_MS = -62135596800000; // 0001-01-01T00:00:00.000Z
const LAST_PYTHON_MS = 253402300799999; // 9999-12-31T23:59:59.999Z

/** True when `n` is a Python int under the value model above (else a float). */
export function isPythonInt(n: number): boolean {
  return Number.isSafeInteger(n);
}

/** True when `date` is a valid Date inside Python's `datetime` range (years 1–9999). */
export function isPythonDate(date: Date): boolean {
  const ms = date.getTime();
  // An invalid Date's NaN fails both comparisons.
  return ms >= FIRST_PYTHON_MS && ms <= LAST_PYTHON_MS;
}

/** True for objects that encode as a Python dict: no class, no special behaviour. */
export function isPlainObject(value: object): value is Record<string, unknown> {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

const IDENTIFIER_RE = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `parent.key` for identifier-like keys, `parent["odd key"]` otherwise. */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === "number") return `${parent}[${key}]`;
  if (IDENTIFIER_RE.test(key)) return parent ? `${parent}.${key}` : key;
  return `${parent}[${JSON.stringify(key)}]`;
}

/**
 * Throws `SerializationError` for the first value (in document order) that `options.format` cannot
 * carry, naming where it sits relative to `root`. Shared references are fine; cycles are not.
 */
export function checkValue(value: unknown, options: CheckOptions, root = "value"): void {
  walk(value, options, root, [], []);
}

function refuse(options: CheckOptions, root: string, trail: Array<string | number>, what: string, hint = ""): never {
  const path = trail.reduce<string>((parent, key) => childPath(parent, key), root);
  throw new SerializationError(`${options.format} cannot carry ${what} at ${path}${hint ? `: ${hint}` : ""}`, path);
}

/**
 * One value and what it holds. `trail` keeps the keys leading to it (the path string is only built
 * for an error); `ancestors` the containers around it (at most MAX_DEPTH: a short array beats a Set
 * here). State goes in arguments, not in a walker object's fields, so a minifier renames it; per-call
 * closures would cost more than the walk for small arguments.
 */
function walk(value: unknown, options: CheckOptions, root: string, trail: Array<string | number>, ancestors: object[]): void {
  switch (typeof value) {
    case "string":
      if (!options.allowLoneSurrogates && hasLoneSurrogate(value)) refuse(options, root, trail, "a string with an unpaired UTF-16 surrogate", "it is not valid UTF-8");
      return;
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value) && !options.allowNonFinite) {
        refuse(options, root, trail, String(value), "strict parsers reject the bare NaN/Infinity Python would write");
      }
      return;
    case "bigint":
      if (value > MAX_SAFE || value < -MAX_SAFE) refuse(options, root, trail, `the bigint ${value}`, "only integers within ±(2^53 - 1) round-trip through JavaScript");
      return;
    case "undefined":
      return refuse(options, root, trail, "undefined", "use null for Python None");
    case "function":
      return refuse(options, root, trail, "a function");
    case "symbol":
      return refuse(options, root, trail, "a symbol");
  }
  if (value === null) return;
  const obj = value as object;
  if (obj instanceof Date) {
    if (!isPythonDate(obj)) refuse(options, root, trail, "an invalid Date", "Python datetimes cover the years 1 to 9999");
    return;
  }
  if (obj instanceof Uint8Array) {
    if (!options.allowBytes) refuse(options, root, trail, "bytes (Uint8Array)", "encode them, e.g. as base64 text");
    return;
  }
  const isArray = Array.isArray(obj);
  if (isArray ? !isListLike(obj) : !isPlainObject(obj)) {
    const name = (obj as { constructor?: { name?: string } }).constructor?.name ?? "object";
    const hint = ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer ? "pass bytes as a Uint8Array" : "pass plain objects, arrays, PyTuple, Date or Uint8Array";
    refuse(options, root, trail, `a ${name}`, hint);
  }
  if (ancestors.includes(obj)) refuse(options, root, trail, "a circular reference");
  if (trail.length >= MAX_DEPTH) refuse(options, root, trail, `values nested more than ${MAX_DEPTH} levels deep`);
  ancestors.push(obj);
  if (isArray) {
    const items = obj as unknown[];
    for (let i = 0; i < items.length; i++) {
      trail.push(i);
      // A hole reads as undefined; report it as such rather than skipping it like JSON.stringify.
      walk(items[i], options, root, trail, ancestors);
      trail.pop();
    }
  } else {
    if (Object.getOwnPropertySymbols(obj).length > 0) refuse(options, root, trail, "an object with symbol keys");
    const record = obj as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      trail.push(key);
      if (!options.allowLoneSurrogates && hasLoneSurrogate(key)) refuse(options, root, trail, "a key with an unpaired UTF-16 surrogate", "it is not valid UTF-8");
      walk(record[key], options, root, trail, ancestors);
      trail.pop();
    }
  }
  ancestors.pop();
}

function isListLike(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Array.prototype || isPyTuple(value);
}

const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE_RE.test(text);
}
