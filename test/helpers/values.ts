/**
 * Factories for values a task can carry, and for what Python should make of them.
 *
 * `pythonValue(features)` generates nested lists, PyTuples, dicts and scalars, biased towards what
 * breaks encoders: YAML-significant and quote-y strings, astral and control characters, unpaired
 * surrogates, long strings with spaces (line folding), integers at every encoding boundary, floats
 * of every magnitude, and (where the format carries them) bytes, Dates, NaN and ±Infinity.
 *
 * `typedView(value, format)` is the same value as Python sees it after decoding, in the form the
 * Python oracle reports (`typed()` in python-roundtrip.test.ts): type tags, ints as decimal text,
 * floats as `repr()`, bytes as hex.
 */
import fc from "fast-check";
import { PyTuple, isPyTuple } from "../../sdk/serializers/python-values.js";
import { isPythonInt } from "../../sdk/serializers/check.js";
import { formatPyFloat, pyIsoformat } from "../../sdk/protocol/python-repr.js";
import { kombuJsonDate } from "../../sdk/serializers/json.js";

export type Format = "json" | "yaml" | "msgpack" | "pickle";

export interface Features {
  bytes: boolean;
  dates: boolean;
  nonFinite: boolean;
  loneSurrogates: boolean;
}

export const FEATURES: Record<Format, Features> = {
  json: { bytes: false, dates: true, nonFinite: false, loneSurrogates: true },
  yaml: { bytes: true, dates: true, nonFinite: true, loneSurrogates: true },
  msgpack: { bytes: true, dates: true, nonFinite: true, loneSurrogates: false },
  pickle: { bytes: true, dates: true, nonFinite: true, loneSurrogates: true },
};

/** Strings that mean something else to a YAML resolver, a quoting rule or an escaper. */
const TRICKY = [
  "", " ", "  ", "yes", "No", "ON", "off", "y", "n", "true", "False", "null", "Null", "~", "1", "-1", "+1", "1.5", "1e5",
  "1.0e+16", ".5", ".inf", "-.Inf", ".nan", "0x1F", "0b101", "012", "1_000", "1:20", "1:20.5", "2030-01-02",
  "2030-01-02 03:04:05", "2030-01-02T03:04:05.5Z", "-", "- a", "-a", "? x", "?", ": x", ":", "a:b", "a: b", "a #b", "a#b",
  "#", "---", "...", "--- x", "'", "''", '"', "\\", "\n", "\n\n", "a\nb", "a \nb", "a\n b", " a", "a ", "\t", "\r", "\0",
  "é", "☃", "😀", "\u0085", "\u2028", "\u2029", "\ufeff", "\u00a0", "\u007f", "\u001b", "=", "<<", "!x", "&a", "*a", "|",
  ">", "%", "@", "`", "[]", "{}", ",", "[a]", "{a: 1}", "a,b", "x".repeat(130),
];

const FRAGMENTS = ["word", "w", " ", "  ", "\n", "é", "'", '"', ":", ": ", "#", " #", "-", "😀", "\\", "\t", "x".repeat(37), "\u2028", "\u00ff"];

function stringArb(f: Features, long: boolean): fc.Arbitrary<string> {
  const fragments = f.loneSurrogates ? [...FRAGMENTS, "\ud800", "\udfff", "\udbff", "\udc00"] : FRAGMENTS;
  const options: fc.Arbitrary<string>[] = [
    fc.string({ unit: "grapheme-ascii", maxLength: 12 }),
    fc.string({ unit: "binary", maxLength: 8 }),
    fc.string({ unit: "binary-ascii", maxLength: 8 }),
    fc.constantFrom(...TRICKY),
    fc.array(fc.constantFrom(...fragments), { maxLength: long ? 45 : 6 }).map((parts) => parts.join("")),
  ];
  return fc.oneof(...options);
}

const INT_EDGES = [
  0, -0, 1, -1, 127, 128, 255, 256, -32, -33, -128, -129, 65535, 65536, -32768, -32769, 2 ** 31 - 1, 2 ** 31, -(2 ** 31),
  -(2 ** 31) - 1, 2 ** 32 - 1, 2 ** 32, 2 ** 40, 2 ** 53 - 1, -(2 ** 53 - 1),
];
const FLOAT_EDGES = [0.5, 0.25, 4.5, 0.1, 1e-7, 1e-5, 1e-4, 1e16, 1e15, 1e22, 2 ** 53, 2 ** 64, 1e300, 5e-324, Number.MAX_VALUE, -1.5, 123456.789];

function scalarArb(f: Features): fc.Arbitrary<unknown> {
  const MAX = 2n ** 53n - 1n;
  const options: fc.Arbitrary<unknown>[] = [
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.constantFrom(...INT_EDGES),
    fc.double({ noNaN: !f.nonFinite, noDefaultInfinity: !f.nonFinite }),
    fc.constantFrom(...FLOAT_EDGES),
    fc.bigInt({ min: -MAX, max: MAX }),
    stringArb(f, true),
  ];
  if (f.nonFinite) options.push(fc.constantFrom(NaN, Infinity, -Infinity));
  if (f.bytes) {
    options.push(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 250, maxLength: 300 }), fc.constantFrom(new Uint8Array(), new Uint8Array([0x61])));
  }
  if (f.dates) {
    options.push(fc.date({ min: new Date("0001-01-01T00:00:00.000Z"), max: new Date("9999-12-31T23:59:59.999Z"), noInvalidDate: true }));
  }
  return fc.oneof(...options);
}

/** Values a task could carry in `format`, nested up to 4 containers deep. */
export function pythonValue(f: Features): fc.Arbitrary<unknown> {
  const { value } = fc.letrec<{ value: unknown; list: unknown[]; tuple: unknown[]; dict: Record<string, unknown> }>((tie) => ({
    value: fc.oneof({ depthSize: "small", maxDepth: 4 }, scalarArb(f), tie("list"), tie("tuple"), tie("dict")),
    list: fc.array(tie("value"), { maxLength: 6 }),
    tuple: fc.array(tie("value"), { maxLength: 4 }).map((items) => PyTuple.fromArray(items)),
    dict: fc.dictionary(stringArb(f, false), tie("value"), { maxKeys: 6 }),
  }));
  return value;
}

/** A protocol 2 body `(args, kwargs, embed)` around generated values. */
export function taskBody(f: Features): fc.Arbitrary<unknown> {
  return fc
    .tuple(fc.array(pythonValue(f), { maxLength: 4 }), fc.dictionary(stringArb(f, false), pythonValue(f), { maxKeys: 4 }))
    .map(([args, kwargs]) => PyTuple.of<unknown>(args, kwargs, { callbacks: null, errbacks: null, chain: null, chord: null }));
}

export type Typed =
  | ["none"]
  | ["bool", boolean]
  | ["int" | "float" | "str" | "bytes", string]
  | ["datetime", string, string]
  | ["list" | "tuple", Typed[]]
  | ["dict", Array<[Typed, Typed]>];

function codePointOrder(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0)!);
  const y = Array.from(b, (c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** What Python holds after decoding `value` sent as `format`. */
export function typedView(value: unknown, format: Format): Typed {
  if (value === null) return ["none"];
  switch (typeof value) {
    case "boolean":
      return ["bool", value];
    case "number":
      return isPythonInt(value) ? ["int", String(value)] : ["float", formatPyFloat(value)];
    case "bigint":
      return ["int", String(value)];
    case "string":
      return ["str", value];
  }
  if (value instanceof Uint8Array) return ["bytes", Array.from(value, (b) => b.toString(16).padStart(2, "0")).join("")];
  if (value instanceof Date) {
    return format === "json" || format === "msgpack" ? ["str", kombuJsonDate(value)] : ["datetime", pyIsoformat(value), "datetime.timezone.utc"];
  }
  if (Array.isArray(value)) {
    const kind = isPyTuple(value) && format === "pickle" ? "tuple" : "list";
    return [kind, value.map((item) => typedView(item, format))];
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (format === "yaml") keys.sort(codePointOrder);
  return ["dict", keys.map((k): [Typed, Typed] => [["str", k], typedView(record[k], format)])];
}
