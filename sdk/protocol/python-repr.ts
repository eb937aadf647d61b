/**
 * @module
 * Python's text forms of values: `float.__repr__`, `datetime.isoformat()`, and `pyRepr`, which
 * reproduces what Celery 5.2 puts into the `argsrepr`/`kwargsrepr` headers.
 *
 * Celery does not use `repr()` there but `celery.utils.saferepr.saferepr(args, 1024)`, a streaming
 * repr with its own rules, reproduced here token for token:
 * - str is written as `'` + text + `'` with only `'` escaped (`\'`); newlines, backslashes and
 *   control characters go through raw, unlike `repr()`.
 * - bytes are `b'` + their UTF-8 text (raw, nothing escaped) + `'`, or their hex digits when they
 *   are not valid UTF-8.
 * - Containers nested 3 deep collapse to `[...]`, `{...}`, `(...)`, `(...,)`.
 * - With a limit, each scalar is cut to the characters left (`truncate`: cut, back up to the last
 *   space, add `...`), and once the budget is spent the output ends with `, ...` followed by the
 *   closing brackets still open. Lengths count code points, as Python does.
 */
import { toHex } from "../base64.js";
import { isPythonDate, isPythonInt, isPlainObject } from "../serializers/check.js";
import { isPyTuple } from "../serializers/python-values.js";
import { strictUtf8 } from "../serializers/utf8.js";
import { isoformatUtc } from "./isoformat.js";

/** Python's `repr(float)`: shortest round-trip digits, exponent outside 1e-4 ≤ |x| < 1e16. */
export function formatPyFloat(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const abs = Math.abs(x);
  if (abs === Infinity) return x > 0 ? "inf" : "-inf";
  if (abs >= 1e-4 && abs < 1e16) {
    // Both languages write this range in plain decimal with the same digits; Python adds ".0".
    const plain = String(x);
    return plain.includes(".") ? plain : `${plain}.0`;
  }
  // toExponential() gives the same shortest round-trip digits as Number#toString, and those are
  // Python's (closest to the exact value); Python writes at least two exponent digits.
  const [mantissa, exponent] = x.toExponential().split("e") as [string, string];
  return `${mantissa}e${exponent[0]}${exponent.slice(1).padStart(2, "0")}`;
}

/** The fields of the aware UTC `datetime` a Date stands for (microseconds from milliseconds). */
export interface DatetimeFields {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  microsecond: number;
}

export function datetimeFields(date: Date): DatetimeFields {
  return {
    year: date.getUTCFullYear(),
    month: date.getUTCMonth() + 1,
    day: date.getUTCDate(),
    hour: date.getUTCHours(),
    minute: date.getUTCMinutes(),
    second: date.getUTCSeconds(),
    microsecond: date.getUTCMilliseconds() * 1000,
  };
}

/** `datetime.isoformat(sep)` of the aware UTC datetime: `2030-01-02T03:04:05.678000+00:00`. */
export function pyIsoformat(date: Date, sep = "T"): string {
  return isoformatUtc(date, date.getUTCMilliseconds() * 1000, sep);
}

/** `repr()` of the aware UTC datetime, as Python prints it (trailing zero fields dropped). */
export function pyDatetimeRepr(date: Date): string {
  const fields = Object.values(datetimeFields(date));
  // microsecond, then second, dropped while zero (Python keeps minute even at 0).
  if (fields[6] === 0) {
    fields.pop();
    if (fields[5] === 0) fields.pop();
  }
  return `datetime.datetime(${fields.join(", ")}, tzinfo=datetime.timezone.utc)`;
}

/** Celery's `saferepr` default for `maxlevels`. */
const MAX_LEVELS = 3;

/**
 * What Celery 5.2 writes for `value` in `argsrepr`/`kwargsrepr` (`saferepr(value, maxLength)`).
 * Never throws: values no serializer accepts get a descriptive placeholder, since the encoder
 * reports them properly.
 *
 * Celery walks a token stream (brackets, separators, keys, scalars); this walks the value
 * recursively and visits the same tokens in the same order, which is several times faster than
 * a generator per container. When a token arrives with the budget spent, Celery drops it, writes
 * `, ...` and then only the closing brackets still pending, innermost first.
 */
export function pyRepr(value: unknown, maxLength?: number): string {
  const writer = new SafeRepr(maxLength);
  writer.walk(value, 0);
  return writer.out;
}

// A class rather than closures: per-call closures cost more than the walk for small arguments.
// `#private` members, which a minifier renames: this is in every edge bundle.
class SafeRepr {
  out = "";
  #budget: number;
  #spent = false;
  /** Containers being written, to name a cycle instead of entering it; at most MAX_LEVELS deep. */
  readonly #open: object[] = [];
  readonly #maxLength: number | undefined;

  constructor(maxLength: number | undefined) {
    this.#maxLength = maxLength;
    this.#budget = maxLength ?? Infinity;
  }

  /** Whether the next token is written; the first one past the budget ends the stream. */
  #take(): boolean {
    if (this.#spent) return false;
    if (this.#budget > 0) return true;
    this.out += ", ...";
    this.#spent = true;
    return false;
  }

  /** Only text from the caller's values can hold surrogate pairs; brackets and separators are ASCII. */
  #put(text: string, userText = false): void {
    this.out += text;
    if (this.#maxLength !== undefined) this.#budget -= userText && SURROGATE_RE.test(text) ? codePointLength(text) : text.length;
  }

  walk(v: unknown, level: number): void {
    // Past the budget, values not yet reached add nothing, not even their brackets.
    if (this.#spent) return;
    if (typeof v === "string" || v instanceof Uint8Array) {
      if (this.#take()) this.#put(formatQuoted(v, this.#budget), true);
      return;
    }
    const brackets = bracketsOf(v);
    if (!brackets) {
      if (this.#take()) this.#put(truncate(scalarText(v), this.#budget), true);
      return;
    }
    const [start, end, kind] = brackets;
    const container = v as object;
    if (level >= MAX_LEVELS || this.#open.includes(container)) {
      if (this.#take()) this.#put(truncate(level >= MAX_LEVELS ? `${start}...${end}` : `<Recursion on ${kind}>`, this.#budget));
      return;
    }
    this.#open.push(container);
    if (this.#take()) this.#put(start);
    const keys = kind === "dict" ? Object.keys(container) : null;
    const items = (keys ?? container) as readonly unknown[];
    for (let i = 0; i < items.length && !this.#spent; i++) {
      if (i > 0 && this.#take()) this.#put(", ");
      if (keys) {
        if (this.#take()) this.#put(formatQuoted(keys[i]!, this.#budget), true);
        if (this.#take()) this.#put(": ");
        this.walk((container as Record<string, unknown>)[keys[i]!], level + 1);
      } else this.walk(items[i], level + 1);
    }
    this.#open.pop();
    // A closing bracket still pending when the budget ran out is written all the same.
    if (this.#spent) this.out += end;
    else if (this.#take()) this.#put(end);
  }
}

function bracketsOf(v: unknown): readonly [string, string, "tuple" | "list" | "dict"] | null {
  if (typeof v !== "object" || v === null) return null;
  if (isPyTuple(v)) return ["(", v.length === 1 ? ",)" : ")", "tuple"];
  if (Array.isArray(v)) return ["[", "]", "list"];
  if (isPlainObject(v)) return ["{", "}", "dict"];
  return null;
}

function scalarText(v: unknown): string {
  if (v === null) return "None";
  switch (typeof v) {
    case "boolean":
      return v ? "True" : "False";
    case "number":
      return isPythonInt(v) ? String(v) : formatPyFloat(v);
    case "bigint":
      return String(v);
    case "undefined":
      return "<undefined>";
    case "function":
      return `<function ${v.name || "anonymous"}>`;
    case "symbol":
      return `<${String(v)}>`;
  }
  if (v instanceof Date) return isPythonDate(v) ? pyDatetimeRepr(v) : "<invalid Date>";
  const name = (v as { constructor?: { name?: string } }).constructor?.name ?? "object";
  return `<${name} object>`;
}

/** Celery's `truncate`: at `maxlen` code points or more, cut, back up to the last space, add "...". */
function truncate(text: string, maxlen: number): string {
  // A string never has more code points than UTF-16 units: most texts skip the count.
  if (text.length < maxlen || codePointLength(text) < maxlen) return text;
  const head = codePoints(text).slice(0, maxlen).join("");
  const space = head.lastIndexOf(" ");
  return `${space >= 0 ? head.slice(0, space) : head}...`;
}

function formatQuoted(value: string | Uint8Array, maxlen: number): string {
  if (typeof value === "string") {
    const text = truncate(value, maxlen);
    return `'${text.includes("'") ? text.replaceAll("'", "\\'") : text}'`;
  }
  if (maxlen && value.length > maxlen) return `b'${bytesText(value.subarray(0, maxlen))}...'`;
  return `b'${bytesText(value)}'`;
}

/** Celery shows bytes as their UTF-8 text when they decode, else as lowercase hex. */
function bytesText(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return toHex(bytes);
  }
}

function codePoints(text: string): string[] {
  return Array.from(text);
}

const SURROGATE_RE = /[\uD800-\uDFFF]/;

/** `len()` of a Python str: code points, an unpaired surrogate counting as one. */
export function codePointLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}
