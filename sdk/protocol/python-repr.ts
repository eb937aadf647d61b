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
import { isPythonDate, isPythonInt, isPlainObject } from "../serializers/check.js";
import { isPyTuple } from "../serializers/python-values.js";

/** Python's `repr(float)`: shortest round-trip digits, exponent outside 1e-4 ≤ |x| < 1e16. */
export function formatPyFloat(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const abs = Math.abs(x);
  if (abs >= 1e-4 && abs < 1e16) {
    // Both languages write this range in plain decimal with the same digits; Python adds ".0".
    const plain = String(x);
    return plain.includes(".") ? plain : `${plain}.0`;
  }
  const sign = x < 0 ? "-" : "";
  // Number#toString gives the shortest digits that round-trip, with the same tie rule as
  // Python's repr (closest to the exact value); only the layout differs.
  const [mantissa = "", exponent] = String(Math.abs(x)).split("e");
  const dot = mantissa.indexOf(".");
  const intPart = dot < 0 ? mantissa : mantissa.slice(0, dot);
  let digits = intPart + (dot < 0 ? "" : mantissa.slice(dot + 1));
  // Position of the decimal point relative to the start of `digits`.
  let point = intPart.length + (exponent === undefined ? 0 : Number(exponent));
  const leading = /^0*/.exec(digits)?.[0].length ?? 0;
  digits = digits.slice(leading).replace(/0+$/, "");
  point -= leading;
  if (point <= -4 || point > 16) {
    const e = point - 1;
    const head = digits.length === 1 ? digits : `${digits[0]}.${digits.slice(1)}`;
    return `${sign}${head}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  }
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${"0".repeat(point - digits.length)}.0`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
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

const pad = (n: number, width = 2): string => String(n).padStart(width, "0");

/** `datetime.isoformat(sep)` of the aware UTC datetime: `2030-01-02T03:04:05.678000+00:00`. */
export function pyIsoformat(date: Date, sep = "T"): string {
  const f = datetimeFields(date);
  const time = `${pad(f.hour)}:${pad(f.minute)}:${pad(f.second)}${f.microsecond ? `.${pad(f.microsecond, 6)}` : ""}`;
  return `${pad(f.year, 4)}-${pad(f.month)}-${pad(f.day)}${sep}${time}+00:00`;
}

/** `repr()` of the aware UTC datetime, as Python prints it (trailing zero fields dropped). */
export function pyDatetimeRepr(date: Date): string {
  const f = datetimeFields(date);
  const fields = [f.year, f.month, f.day, f.hour, f.minute, f.second, f.microsecond];
  if (f.microsecond === 0) fields.pop();
  if (f.microsecond === 0 && f.second === 0) fields.pop();
  return `datetime.datetime(${fields.join(", ")}, tzinfo=datetime.timezone.utc)`;
}

/** Celery's `saferepr` default for `maxlevels`. */
const MAX_LEVELS = 3;

interface Literal {
  readonly kind: "literal";
  readonly text: string;
  /** False for brackets: they are still written after the length budget runs out. */
  readonly truncatable: boolean;
  readonly direction: -1 | 0 | 1;
}
type Item = Literal | { readonly kind: "key"; readonly key: string } | { readonly kind: "value"; readonly value: unknown };
type Token = Literal | { readonly kind: "key"; readonly key: string } | { readonly kind: "quoted"; readonly value: string | Uint8Array } | { readonly kind: "text"; readonly text: string };

const lit = (text: string, truncatable: boolean, direction: -1 | 0 | 1): Literal => ({ kind: "literal", text, truncatable, direction });
const LIST_SEP = lit(", ", true, 0);
const KV_SEP = lit(": ", true, 0);
const LIST = [lit("[", false, 1), lit("]", false, -1)] as const;
const DICT = [lit("{", false, 1), lit("}", false, -1)] as const;
const TUPLE = [lit("(", false, 1), lit(")", false, -1)] as const;
const TUPLE_SINGLE = [TUPLE[0], lit(",)", false, -1)] as const;

/**
 * What Celery 5.2 writes for `value` in `argsrepr`/`kwargsrepr` (`saferepr(value, maxLength)`).
 * Never throws: values no serializer accepts get a descriptive placeholder, since the encoder
 * reports them properly.
 */
export function pyRepr(value: unknown, maxLength?: number): string {
  let budget = maxLength ?? null;
  const out: string[] = [];
  const frames: Iterator<Item>[] = [[{ kind: "value", value } as Item][Symbol.iterator]()];
  const stream = tokens(frames);
  for (const token of stream) {
    if (budget !== null && budget <= 0) {
      out.push(", ...");
      // The token just taken is dropped, as in Celery; what is left yields its closing brackets.
      for (let i = frames.length - 1; i >= 0; i--) {
        for (let r = frames[i]!.next(); !r.done; r = frames[i]!.next()) {
          if (r.value.kind === "literal" && !r.value.truncatable) out.push(r.value.text);
        }
      }
      break;
    }
    let text: string;
    if (token.kind === "literal") text = token.text;
    else if (token.kind === "key") text = formatQuoted(token.key, budget);
    else if (token.kind === "quoted") text = formatQuoted(token.value, budget);
    else text = truncate(token.text, budget);
    out.push(text);
    if (budget !== null) budget -= codePointLength(text);
  }
  return out.join("");
}

function* tokens(frames: Iterator<Item>[]): Generator<Token> {
  let level = 0;
  const open = new Set<object>();
  while (frames.length > 0) {
    const next = frames[frames.length - 1]!.next();
    if (next.done) {
      frames.pop();
      continue;
    }
    const item = next.value;
    if (item.kind === "literal") {
      level += item.direction;
      yield item;
      continue;
    }
    if (item.kind === "key") {
      yield item;
      continue;
    }
    const v = item.value;
    if (typeof v === "string" || v instanceof Uint8Array) {
      yield { kind: "quoted", value: v };
      continue;
    }
    const container = containerOf(v);
    if (!container) {
      yield { kind: "text", text: scalarText(v) };
      continue;
    }
    const [start, end, children] = container;
    if (level >= MAX_LEVELS) {
      yield { kind: "text", text: `${start.text}...${end.text}` };
      continue;
    }
    const obj = v as object;
    if (open.has(obj)) {
      yield { kind: "text", text: `<Recursion on ${start === DICT[0] ? "dict" : start === LIST[0] ? "list" : "tuple"}>` };
      continue;
    }
    open.add(obj);
    frames.push(
      (function* (): Generator<Item> {
        yield start;
        yield* children;
        open.delete(obj);
        yield end;
      })(),
    );
  }
}

function containerOf(v: unknown): readonly [Literal, Literal, Iterable<Item>] | null {
  if (typeof v !== "object" || v === null) return null;
  if (isPyTuple(v)) {
    const [start, end] = v.length === 1 ? TUPLE_SINGLE : TUPLE;
    return [start, end, listItems(v)];
  }
  if (Array.isArray(v)) return [LIST[0], LIST[1], listItems(v)];
  if (isPlainObject(v)) return [DICT[0], DICT[1], dictItems(v)];
  return null;
}

function* listItems(items: readonly unknown[]): Generator<Item> {
  for (let i = 0; i < items.length; i++) {
    yield { kind: "value", value: items[i] };
    if (i < items.length - 1) yield LIST_SEP;
  }
}

function* dictItems(record: Record<string, unknown>): Generator<Item> {
  const keys = Object.keys(record);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    yield { kind: "key", key };
    yield KV_SEP;
    yield { kind: "value", value: record[key] };
    if (i < keys.length - 1) yield LIST_SEP;
  }
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
function truncate(text: string, maxlen: number | null): string {
  if (!maxlen || codePointLength(text) < maxlen) return text;
  const head = codePoints(text).slice(0, maxlen).join("");
  const space = head.lastIndexOf(" ");
  return `${space >= 0 ? head.slice(0, space) : head}...`;
}

function formatQuoted(value: string | Uint8Array, maxlen: number | null): string {
  if (typeof value === "string") return `'${truncate(value, maxlen).replaceAll("'", "\\'")}'`;
  if (maxlen && value.length > maxlen) return `b'${bytesText(value.subarray(0, maxlen))}...'`;
  return `b'${bytesText(value)}'`;
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Celery shows bytes as their UTF-8 text when they decode, else as lowercase hex. */
function bytesText(bytes: Uint8Array): string {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    let hex = "";
    for (const b of bytes) hex += b.toString(16).padStart(2, "0");
    return hex;
  }
}

function codePoints(text: string): string[] {
  return Array.from(text);
}

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
