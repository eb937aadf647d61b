/**
 * @module
 * kombu 5.2's json serializer: `json.dumps(value, cls=kombu.utils.json.JSONEncoder)` with Python's
 * defaults, reproduced byte for byte — separators `", "` and `": "`, `ensure_ascii` (lowercase
 * `\uXXXX`, surrogate pairs for astral characters), `float.__repr__` for floats.
 *
 * Dates follow kombu's encoder: `isoformat()` with a trailing `+00:00` replaced by `Z`
 * (`2030-01-02T03:04:05.678000Z`); the worker's task receives that string. Bytes are refused:
 * kombu 5.2's encoder raises TypeError for them. NaN and ±Infinity are refused too: Python would
 * write the non-standard tokens `NaN`/`Infinity`, which strict JSON parsers (including our own
 * decoder, `JSON.parse`) reject.
 */
import { SerializationError } from "../errors.js";
import { formatPyFloat, pyIsoformat } from "../protocol/python-repr.js";
import { checkValue, isPythonInt, type CheckOptions } from "./check.js";
import { checkInputSize, limitError, resolveDecodeLimits, type DecodeLimits, type ResolvedDecodeLimits } from "./limits.js";
import type { Serializer } from "./serializer.js";
import { encodeUtf8, strictUtf8 } from "./utf8.js";

export const JSON_RULES: CheckOptions = {
  format: "json",
  allowBytes: false,
  allowNonFinite: false,
  allowLoneSurrogates: true,
};

/** kombu's JSONEncoder.default for an aware UTC datetime. */
export function kombuJsonDate(date: Date): string {
  return pyIsoformat(date).replace(/\+00:00$/, "Z");
}

/** `json.dumps(value)` as kombu 5.2 calls it; `value` must already pass `checkValue`. */
export function dumpsJson(value: unknown): string {
  switch (typeof value) {
    case "string":
      return quote(value);
    case "number":
      return isPythonInt(value) ? String(value) : formatPyFloat(value);
    case "bigint":
      return String(value);
    case "boolean":
      return value ? "true" : "false";
  }
  if (value === null) return "null";
  if (value instanceof Date) return quote(kombuJsonDate(value));
  // String concatenation, not an array join: V8 builds ropes, several times faster here.
  let out: string;
  if (Array.isArray(value)) {
    out = "[";
    for (let i = 0; i < value.length; i++) out += (i > 0 ? ", " : "") + dumpsJson(value[i]);
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  out = "{";
  let first = true;
  for (const key of Object.keys(record)) {
    out += `${first ? "" : ", "}${quote(key)}: ${dumpsJson(record[key])}`;
    first = false;
  }
  return `${out}}`;
}

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
};

// Python's ESCAPE_ASCII: everything outside printable ASCII, plus `"` and `\`. Per UTF-16 unit, so
// astral characters come out as surrogate pairs and unpaired surrogates as themselves, like Python.
const ESCAPE_RE = /["\\\u0000-\u001f\u007f-\uffff]/g;

const PLAIN_RE = /^[^"\\\u0000-\u001f\u007f-\uffff]*$/;

function quote(text: string): string {
  if (PLAIN_RE.test(text)) return `"${text}"`;
  return `"${text.replace(ESCAPE_RE, (ch) => SHORT_ESCAPES[ch] ?? `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`)}"`;
}

/**
 * Refuses JSON nested deeper than `maxDepth` or with more than `maxItems` values before
 * `JSON.parse` builds it: V8 parses any depth, but what reads the value afterwards (our exception
 * repr, the caller's code) recurses. One pass over the text; strings are skipped, so brackets
 * inside them do not count. Malformed text is left for `JSON.parse` to reject.
 */
export function scanJson(text: string, limits: ResolvedDecodeLimits): void {
  let depth = 0;
  let items = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // Skip the string: to the next quote that no backslash escapes.
      while (++i < text.length && text.charCodeAt(i) !== 34) if (text.charCodeAt(i) === 92) i++;
    } else if (c === 91 || c === 123) {
      if (++depth > limits.maxDepth) throw limitError("JSON", `containers nested more than ${limits.maxDepth} levels deep (maxDepth)`);
      items++;
    } else if (c === 93 || c === 125) depth--;
    else if (c === 44 && ++items > limits.maxItems) throw limitError("JSON", `more than ${limits.maxItems} values (maxItems)`);
  }
}

/** `json.loads` for results, bounded by `limits` (see `DecodeLimits`). */
export function decodeJson(bytes: Uint8Array, limits?: DecodeLimits): unknown {
  const resolved = resolveDecodeLimits(limits);
  checkInputSize(bytes.length, resolved, "JSON");
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch (err) {
    throw new SerializationError(`body is not valid UTF-8 JSON: ${(err as Error).message}`, "body", { cause: err });
  }
  scanJson(text, resolved);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SerializationError(`body is not valid UTF-8 JSON: ${(err as Error).message}`, "body", { cause: err });
  }
}

/**
 * The decode side is plain `JSON.parse`, whose parser is iterative: this serializer is in every edge
 * bundle, which never reads results. Results are read with `decodeJson`, which adds the limits.
 */
export const jsonSerializer: Serializer = {
  name: "json",
  contentType: "application/json",
  contentEncoding: "utf-8",
  encode(value: unknown): Uint8Array {
    checkValue(value, JSON_RULES, "body");
    // ensure_ascii makes the text pure ASCII, so UTF-8 encoding cannot meet a lone surrogate.
    return encodeUtf8(dumpsJson(value));
  },
  decode(bytes: Uint8Array): unknown {
    try {
      return JSON.parse(strictUtf8.decode(bytes));
    } catch (err) {
      throw new SerializationError(`body is not valid UTF-8 JSON: ${(err as Error).message}`, "body", { cause: err });
    }
  },
};
