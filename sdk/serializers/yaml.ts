/**
 * @module
 * kombu 5.2's yaml serializer: `yaml.safe_dump(value)` (PyYAML 6 defaults: block style, keys
 * sorted, `allow_unicode=False`, width 80) on the producer, `yaml.safe_load` on the worker.
 *
 * Encoding is our own emitter, a port of the parts of PyYAML's Emitter and SafeRepresenter this
 * value model reaches, because no `yaml` library option reproduces them and several matter for
 * correctness, not just bytes: PyYAML reads `1e-7` as a *string* (its float pattern needs a dot, so
 * it writes `1.0e-07`); it picks plain/single/double quoting from the same analysis it uses to read
 * them back; it escapes non-ASCII as `\xE9`/`\u2603`/`\U0001F600`; it folds long scalars at column
 * 80; keys of 123+ characters or with line breaks become `? key` entries. The result is the same text
 * `safe_dump` writes, so `safe_load` yields exactly the value sent.
 *
 * Dates go as PyYAML timestamps (`2030-01-02 03:04:05.678000+00:00`, what `safe_dump` writes for an
 * aware datetime), which `safe_load` turns into an aware `datetime` — what a Python producer's task
 * would receive. Bytes go as `!!binary`. Shared references are written out again at each use, not
 * as `&id001` anchors: the worker gets equal values, not one shared object.
 *
 * Decoding (results) is `yaml-read.ts`, on the `yaml` library, imported on first use (`load()`):
 * sending never loads it, and the library's Node build, which `require`s `process`, never runs at
 * load time in an ES module bundle (esbuild `--format=esm` has no `require`).
 */
import { SerializationError } from "../errors.js";
import { formatPyFloat, pyIsoformat } from "../protocol/python-repr.js";
import { checkValue, isPythonInt, type CheckOptions } from "./check.js";
import type { DecodeLimits } from "./limits.js";
import type { Serializer } from "./serializer.js";
import { encodeUtf8 } from "./utf8.js";

export const YAML_RULES: CheckOptions = {
  format: "yaml",
  allowBytes: true,
  allowNonFinite: true,
  allowLoneSurrogates: true,
};

const BEST_WIDTH = 80;
const BEST_INDENT = 2;

export const TAG = "tag:yaml.org,2002:";

/** PyYAML's implicit resolvers (yaml/resolver.py), each tried for values starting with its characters. */
export const RESOLVERS: ReadonlyArray<readonly [tag: string, pattern: RegExp, first: string]> = [
  ["bool", /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)\n?$/, "yYnNtTfFoO"],
  [
    "float",
    /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\n?$/,
    "-+0123456789.",
  ],
  ["int", /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)\n?$/, "-+0123456789"],
  ["merge", /^(?:<<)\n?$/, "<"],
  ["null", /^(?:~|null|Null|NULL|)\n?$/, "~nN"],
  [
    "timestamp",
    /^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)\n?$/,
    "0123456789",
  ],
  ["value", /^(?:=)\n?$/, "="],
  ["yaml", /^(?:!|&|\*)\n?$/, "!&*"],
];

/** The tag a plain scalar with this text would be read as (Python's `$` also matches before a final "\n"). */
function resolvePlain(text: string): string {
  const first = text === "" ? "" : text[0]!;
  for (const [tag, pattern, chars] of RESOLVERS) {
    if ((first === "" ? tag === "null" : chars.includes(first)) && pattern.test(text)) return TAG + tag;
  }
  return TAG + "str";
}

interface ScalarNode {
  readonly kind: "scalar";
  readonly tag: string;
  readonly text: string;
  /** [plain text resolves to `tag`, `tag` is str]: when no explicit tag needs writing. */
  readonly implicit: readonly [boolean, boolean];
  readonly style: "" | "|" | null;
}

function scalar(tag: string, text: string, style: "|" | null = null): ScalarNode {
  const full = TAG + tag;
  return { kind: "scalar", tag: full, text, implicit: [resolvePlain(text) === full, full === TAG + "str"], style };
}

/** SafeRepresenter.represent_float. */
function floatText(x: number): string {
  if (Number.isNaN(x)) return ".nan";
  if (x === Infinity) return ".inf";
  if (x === -Infinity) return "-.inf";
  const text = formatPyFloat(x);
  return !text.includes(".") && text.includes("e") ? text.replace("e", ".0e") : text;
}

/** Python's base64.encodebytes: 76-character lines, each ending in "\n". */
function encodebytes(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 57) {
    let binary = "";
    for (const b of bytes.subarray(i, i + 57)) binary += String.fromCharCode(b);
    out += `${btoa(binary)}\n`;
  }
  return out;
}

/** Python orders str keys by code point; JavaScript's default sort compares UTF-16 units. */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

interface Analysis {
  readonly empty: boolean;
  readonly multiline: boolean;
  readonly allowBlockPlain: boolean;
  readonly allowSingleQuoted: boolean;
  readonly allowBlock: boolean;
}

const BREAKS = new Set([0x0a, 0x85, 0x2028, 0x2029]);
const WHITESPACE_OR_BREAK = new Set([0x00, 0x20, 0x09, 0x0d, 0x0a, 0x85, 0x2028, 0x2029]);

/** Emitter.analyze_scalar, for block context and `allow_unicode=False`. */
function analyze(cps: readonly number[]): Analysis {
  if (cps.length === 0) return { empty: true, multiline: false, allowBlockPlain: true, allowSingleQuoted: true, allowBlock: false };
  let blockIndicators = false;
  let lineBreaks = false;
  let special = false;
  let leadingSpace = false;
  let leadingBreak = false;
  let trailingSpace = false;
  let trailingBreak = false;
  let breakSpace = false;
  let spaceBreak = false;
  const starts = (s: string): boolean => cps.length >= 3 && s.split("").every((c, i) => cps[i] === c.charCodeAt(0));
  if (starts("---") || starts("...")) blockIndicators = true;
  let precededByWhitespace = true;
  let followedByWhitespace = cps.length === 1 || WHITESPACE_OR_BREAK.has(cps[1]!);
  let previousSpace = false;
  let previousBreak = false;
  for (let index = 0; index < cps.length; index++) {
    const c = cps[index]!;
    const ch = String.fromCodePoint(c);
    if (index === 0) {
      if ("#,[]{}&*!|>'\"%@`".includes(ch)) blockIndicators = true;
      if ((ch === "?" || ch === ":") && followedByWhitespace) blockIndicators = true;
      if (ch === "-" && followedByWhitespace) blockIndicators = true;
    } else {
      if (ch === ":" && followedByWhitespace) blockIndicators = true;
      if (ch === "#" && precededByWhitespace) blockIndicators = true;
    }
    if (BREAKS.has(c)) lineBreaks = true;
    // Without allow_unicode, everything but "\n" and printable ASCII forces double quotes.
    if (c !== 0x0a && (c < 0x20 || c > 0x7e)) special = true;
    if (c === 0x20) {
      if (index === 0) leadingSpace = true;
      if (index === cps.length - 1) trailingSpace = true;
      if (previousBreak) breakSpace = true;
      previousSpace = true;
      previousBreak = false;
    } else if (BREAKS.has(c)) {
      if (index === 0) leadingBreak = true;
      if (index === cps.length - 1) trailingBreak = true;
      if (previousSpace) spaceBreak = true;
      previousSpace = false;
      previousBreak = true;
    } else {
      previousSpace = false;
      previousBreak = false;
    }
    precededByWhitespace = WHITESPACE_OR_BREAK.has(c);
    followedByWhitespace = index + 2 >= cps.length || WHITESPACE_OR_BREAK.has(cps[index + 2]!);
  }
  let allowBlockPlain = true;
  let allowSingleQuoted = true;
  let allowBlock = true;
  if (leadingSpace || leadingBreak || trailingSpace || trailingBreak) allowBlockPlain = false;
  if (trailingSpace) allowBlock = false;
  if (breakSpace) allowBlockPlain = allowSingleQuoted = false;
  if (spaceBreak || special) allowBlockPlain = allowSingleQuoted = allowBlock = false;
  if (lineBreaks) allowBlockPlain = false;
  if (blockIndicators) allowBlockPlain = false;
  return { empty: false, multiline: lineBreaks, allowBlockPlain, allowSingleQuoted, allowBlock };
}

const ESCAPES = new Map<number, string>([
  [0x00, "0"],
  [0x07, "a"],
  [0x08, "b"],
  [0x09, "t"],
  [0x0a, "n"],
  [0x0b, "v"],
  [0x0c, "f"],
  [0x0d, "r"],
  [0x1b, "e"],
  [0x22, '"'],
  [0x5c, "\\"],
  [0x85, "N"],
  [0xa0, "_"],
  [0x2028, "L"],
  [0x2029, "P"],
]);

const hex = (n: number, width: number): string => n.toString(16).toUpperCase().padStart(width, "0");

interface NodeContext {
  root?: boolean;
  mapping?: boolean;
  simpleKey?: boolean;
}

/** The state machine of PyYAML's Emitter for block collections and scalars (flow only when empty). */
class Emitter {
  private readonly out: string[] = [];
  private column = 0;
  private whitespace = true;
  private indention = true;
  private openEnded = false;
  private indent: number | null = null;
  private readonly indents: Array<number | null> = [];
  private rootContext = false;
  private mappingContext = false;
  private simpleKeyContext = false;

  dump(value: unknown): string {
    this.node(value, { root: true });
    this.writeIndent(); // document end
    if (this.openEnded) {
      this.writeIndicator("...", true);
      this.writeIndent();
    }
    return this.out.join("");
  }

  private emit(text: string): void {
    this.out.push(text);
  }

  private increaseIndent(flow: boolean, indentless = false): void {
    this.indents.push(this.indent);
    if (this.indent === null) this.indent = flow ? BEST_INDENT : 0;
    else if (!indentless) this.indent += BEST_INDENT;
  }

  private writeIndicator(indicator: string, needWhitespace: boolean, whitespace = false, indention = false): void {
    const data = this.whitespace || !needWhitespace ? indicator : ` ${indicator}`;
    this.whitespace = whitespace;
    this.indention = this.indention && indention;
    this.column += data.length;
    this.openEnded = false;
    this.emit(data);
  }

  private writeIndent(): void {
    const indent = this.indent ?? 0;
    if (!this.indention || this.column > indent || (this.column === indent && !this.whitespace)) this.writeLineBreak();
    if (this.column < indent) {
      this.whitespace = true;
      this.emit(" ".repeat(indent - this.column));
      this.column = indent;
    }
  }

  private writeLineBreak(data = "\n"): void {
    this.whitespace = true;
    this.indention = true;
    this.column = 0;
    this.emit(data);
  }

  private node(value: unknown, ctx: NodeContext): void {
    this.rootContext = ctx.root ?? false;
    this.mappingContext = ctx.mapping ?? false;
    this.simpleKeyContext = ctx.simpleKey ?? false;
    if (Array.isArray(value)) {
      this.sequence(value);
    } else if (typeof value === "object" && value !== null && !(value instanceof Date) && !(value instanceof Uint8Array)) {
      this.mapping(value as Record<string, unknown>);
    } else {
      this.scalar(represent(value));
    }
  }

  private sequence(items: readonly unknown[]): void {
    if (items.length === 0) {
      this.writeIndicator("[", true, true);
      this.writeIndicator("]", false);
      return;
    }
    this.increaseIndent(false, this.mappingContext && !this.indention);
    for (const item of items) {
      this.writeIndent();
      this.writeIndicator("-", true, false, true);
      this.node(item, {});
    }
    this.indent = this.indents.pop()!;
  }

  private mapping(record: Record<string, unknown>): void {
    const keys = Object.keys(record).sort(compareCodePoints);
    if (keys.length === 0) {
      this.writeIndicator("{", true, true);
      this.writeIndicator("}", false);
      return;
    }
    this.increaseIndent(false);
    for (const key of keys) {
      this.writeIndent();
      const cps = codePointsOf(key);
      const analysis = analyze(cps);
      // check_simple_key: the "!!str" tag counts towards the 128-character limit.
      if (cps.length + "!!str".length < 128 && !analysis.empty && !analysis.multiline) {
        this.node(key, { mapping: true, simpleKey: true });
        this.writeIndicator(":", false);
      } else {
        this.writeIndicator("?", true, false, true);
        this.node(key, { mapping: true });
        this.writeIndent();
        this.writeIndicator(":", true, false, true);
      }
      this.node(record[key], { mapping: true });
    }
    this.indent = this.indents.pop()!;
  }

  private scalar(node: ScalarNode): void {
    const cps = codePointsOf(node.text);
    const analysis = analyze(cps);
    const style = this.chooseStyle(node, analysis);
    // process_tag: a tag is written only when the chosen style would not resolve to it.
    if (!((style === "" && node.implicit[0]) || (style !== "" && node.implicit[1]))) {
      this.writeIndicator(`!!${node.tag.slice(TAG.length)}`, true);
    }
    this.increaseIndent(true);
    const split = !this.simpleKeyContext;
    if (style === '"') this.writeDoubleQuoted(cps, split);
    else if (style === "'") this.writeSingleQuoted(cps, split);
    else if (style === "|") this.writeLiteral(cps);
    else this.writePlain(cps, split);
    this.indent = this.indents.pop()!;
  }

  private chooseStyle(node: ScalarNode, a: Analysis): "" | "'" | '"' | "|" {
    if (!node.style && node.implicit[0]) {
      if (!(this.simpleKeyContext && (a.empty || a.multiline)) && a.allowBlockPlain) return "";
    }
    if (node.style === "|" && !this.simpleKeyContext && a.allowBlock) return "|";
    if (!node.style && a.allowSingleQuoted && !(this.simpleKeyContext && a.multiline)) return "'";
    return '"';
  }

  private writePlain(text: readonly number[], split: boolean): void {
    if (this.rootContext) this.openEnded = true;
    if (text.length === 0) return;
    if (!this.whitespace) {
      this.column += 1;
      this.emit(" ");
    }
    this.whitespace = false;
    this.indention = false;
    let spaces = false;
    let breaks = false;
    let start = 0;
    for (let end = 0; end <= text.length; end++) {
      const ch = end < text.length ? text[end]! : null;
      if (spaces) {
        if (ch !== 0x20) {
          if (start + 1 === end && this.column > BEST_WIDTH && split) {
            this.writeIndent();
            this.whitespace = false;
            this.indention = false;
          } else {
            this.writeRun(text, start, end);
          }
          start = end;
        }
      } else if (breaks) {
        if (ch === null || !BREAKS.has(ch)) {
          if (text[start] === 0x0a) this.writeLineBreak();
          for (let i = start; i < end; i++) this.writeLineBreak(String.fromCodePoint(text[i]!));
          this.writeIndent();
          this.whitespace = false;
          this.indention = false;
          start = end;
        }
      } else if (ch === null || ch === 0x20 || BREAKS.has(ch)) {
        this.writeRun(text, start, end);
        start = end;
      }
      if (ch !== null) {
        spaces = ch === 0x20;
        breaks = BREAKS.has(ch);
      }
    }
  }

  private writeSingleQuoted(text: readonly number[], split: boolean): void {
    this.writeIndicator("'", true);
    let spaces = false;
    let breaks = false;
    let start = 0;
    for (let end = 0; end <= text.length; end++) {
      const ch = end < text.length ? text[end]! : null;
      if (spaces) {
        if (ch === null || ch !== 0x20) {
          if (start + 1 === end && this.column > BEST_WIDTH && split && start !== 0 && end !== text.length) this.writeIndent();
          else this.writeRun(text, start, end);
          start = end;
        }
      } else if (breaks) {
        if (ch === null || !BREAKS.has(ch)) {
          if (text[start] === 0x0a) this.writeLineBreak();
          for (let i = start; i < end; i++) this.writeLineBreak(String.fromCodePoint(text[i]!));
          this.writeIndent();
          start = end;
        }
      } else if (ch === null || ch === 0x20 || BREAKS.has(ch) || ch === 0x27) {
        if (start < end) {
          this.writeRun(text, start, end);
          start = end;
        }
      }
      if (ch === 0x27) {
        this.column += 2;
        this.emit("''");
        start = end + 1;
      }
      if (ch !== null) {
        spaces = ch === 0x20;
        breaks = BREAKS.has(ch);
      }
    }
    this.writeIndicator("'", false);
  }

  private writeDoubleQuoted(text: readonly number[], split: boolean): void {
    this.writeIndicator('"', true);
    let start = 0;
    for (let end = 0; end <= text.length; end++) {
      const ch = end < text.length ? text[end]! : null;
      if (ch === null || ch === 0x22 || ch === 0x5c || ch < 0x20 || ch > 0x7e) {
        if (start < end) {
          this.writeRun(text, start, end);
          start = end;
        }
        if (ch !== null) {
          const short = ESCAPES.get(ch);
          const data = short !== undefined ? `\\${short}` : ch <= 0xff ? `\\x${hex(ch, 2)}` : ch <= 0xffff ? `\\u${hex(ch, 4)}` : `\\U${hex(ch, 8)}`;
          this.column += data.length;
          this.emit(data);
          start = end + 1;
        }
      }
      if (end > 0 && end < text.length - 1 && (ch === 0x20 || start >= end) && this.column + (end - start) > BEST_WIDTH && split) {
        const data = `${stringOf(text, start, end)}\\`;
        if (start < end) start = end;
        this.column += data.length;
        this.emit(data);
        this.writeIndent();
        this.whitespace = false;
        this.indention = false;
        if (text[start] === 0x20) {
          this.column += 1;
          this.emit("\\");
        }
      }
    }
    this.writeIndicator('"', false);
  }

  private writeLiteral(text: readonly number[]): void {
    let hints = "";
    if (text.length > 0) {
      if (text[0] === 0x20 || BREAKS.has(text[0]!)) hints += String(BEST_INDENT);
      if (!BREAKS.has(text[text.length - 1]!)) hints += "-";
      else if (text.length === 1 || BREAKS.has(text[text.length - 2]!)) hints += "+";
    }
    this.writeIndicator(`|${hints}`, true);
    if (hints.endsWith("+")) this.openEnded = true;
    this.writeLineBreak();
    let breaks = true;
    let start = 0;
    for (let end = 0; end <= text.length; end++) {
      const ch = end < text.length ? text[end]! : null;
      if (breaks) {
        if (ch === null || !BREAKS.has(ch)) {
          for (let i = start; i < end; i++) this.writeLineBreak(String.fromCodePoint(text[i]!));
          if (ch !== null) this.writeIndent();
          start = end;
        }
      } else if (ch === null || BREAKS.has(ch)) {
        // PyYAML does not advance the column here; the line break that follows resets it.
        this.emit(stringOf(text, start, end));
        if (ch === null) this.writeLineBreak();
        start = end;
      }
      if (ch !== null) breaks = BREAKS.has(ch);
    }
  }

  private writeRun(text: readonly number[], start: number, end: number): void {
    this.column += end - start;
    this.emit(stringOf(text, start, end));
  }
}

function codePointsOf(text: string): number[] {
  const out: number[] = [];
  for (const ch of text) out.push(ch.codePointAt(0)!);
  return out;
}

function stringOf(cps: readonly number[], start: number, end: number): string {
  let s = "";
  for (let i = start; i < end; i++) s += String.fromCodePoint(cps[i]!);
  return s;
}

/** SafeRepresenter for the scalar kinds of the value model. */
function represent(value: unknown): ScalarNode {
  switch (typeof value) {
    case "string":
      return scalar("str", value);
    case "boolean":
      return scalar("bool", value ? "true" : "false");
    case "number":
      return isPythonInt(value) ? scalar("int", String(value)) : scalar("float", floatText(value));
    case "bigint":
      return scalar("int", String(value));
  }
  if (value instanceof Date) return scalar("timestamp", pyIsoformat(value, " "));
  if (value instanceof Uint8Array) return scalar("binary", encodebytes(value), "|");
  return scalar("null", "null");
}

/** `yaml.safe_dump(value)` for a value that passes `checkValue(value, YAML_RULES)`. */
export function safeDumpYaml(value: unknown): string {
  return new Emitter().dump(value);
}


/** The reader, once `load()` imported it. */
let reader: typeof import("./yaml-read.js") | undefined;
let loading: Promise<void> | undefined;

/**
 * kombu's yaml serializer. `encode` is always ready; `decode` needs `load()` to have resolved once
 * (result backends await it before they decode).
 */
export const yamlSerializer: Serializer & { decode(bytes: Uint8Array, limits?: DecodeLimits): unknown; load(): Promise<void> | undefined } = {
  name: "yaml",
  contentType: "application/x-yaml",
  contentEncoding: "utf-8",
  encode(value: unknown): Uint8Array {
    checkValue(value, YAML_RULES, "body");
    // allow_unicode=False keeps the text ASCII.
    return encodeUtf8(safeDumpYaml(value));
  },
  decode(bytes: Uint8Array, limits?: DecodeLimits): unknown {
    if (!reader) throw new SerializationError("the YAML reader is loaded on first use: await yamlSerializer.load() before decode()", "body");
    return reader.decodeYaml(bytes, limits);
  },
  load(): Promise<void> | undefined {
    if (reader) return undefined;
    return (loading ??= import("./yaml-read.js").then((m) => {
      reader = m;
    }));
  },
};
