/**
 * @module
 * `yaml.safe_load` for results: the `yaml` library's YAML 1.1 parser with PyYAML's implicit types
 * (its resolver patterns and constructors) in place of the library's, which differ (`y`, `1e5`),
 * bounded by `DecodeLimits`. Imported on first use by `yamlSerializer.load()` (see `yaml.ts`); the
 * relay and the tests import it directly.
 */
import { Composer, CST, Lexer, Parser, type Document, type ScalarTag, type Tags } from "yaml";
import { CeleryError, SerializationError } from "../errors.js";
import { checkInputSize, limitError, resolveDecodeLimits, type DecodeLimits, type ResolvedDecodeLimits } from "./limits.js";
import { RESOLVERS, TAG } from "./yaml.js";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function narrow(n: bigint): number | bigint {
  return n <= MAX_SAFE && n >= -MAX_SAFE ? Number(n) : n;
}

/** SafeConstructor.construct_yaml_int. */
function constructInt(text: string): number | bigint {
  let value = text.replaceAll("_", "");
  const sign = value.startsWith("-") ? -1n : 1n;
  if (value[0] === "-" || value[0] === "+") value = value.slice(1);
  if (value === "0") return 0;
  if (value.startsWith("0b")) return narrow(sign * BigInt(value));
  if (value.startsWith("0x")) return narrow(sign * BigInt(value));
  if (value.startsWith("0")) return narrow(sign * BigInt(`0o${value.slice(1)}`));
  if (value.includes(":")) return narrow(sign * value.split(":").reduce((total, part) => total * 60n + BigInt(part), 0n));
  return narrow(sign * BigInt(value));
}

/** SafeConstructor.construct_yaml_float. */
function constructFloat(text: string): number {
  let value = text.replaceAll("_", "").toLowerCase();
  const sign = value.startsWith("-") ? -1 : 1;
  if (value[0] === "-" || value[0] === "+") value = value.slice(1);
  if (value === ".inf") return sign * Infinity;
  if (value === ".nan") return NaN;
  // Sexagesimal "1:20.5" is base 60, most significant part first.
  if (value.includes(":")) return sign * value.split(":").reduce((total, part) => total * 60 + Number(part), 0);
  return sign * Number(value);
}

const TIMESTAMP_PARTS =
  /^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]*))?(?:[ \t]*(Z|([-+])([0-9]{1,2})(?::([0-9]{2}))?))?)?$/;

/** SafeConstructor.construct_yaml_timestamp; a date alone is midnight UTC, a naive time is UTC. */
function constructTimestamp(text: string, onError: (message: string) => void): Date | string {
  const m = TIMESTAMP_PARTS.exec(text);
  if (!m) {
    onError(`not a timestamp: ${text}`);
    return text;
  }
  const [, y, mo, d, h, mi, sec, fraction, , tzSign, tzHour, tzMinute] = m;
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  if (h !== undefined) {
    const millis = Math.floor(Number((fraction ?? "").slice(0, 6).padEnd(6, "0")) / 1000);
    date.setUTCHours(Number(h), Number(mi), Number(sec), millis);
  }
  const offsetMinutes = tzSign ? (tzSign === "-" ? -1 : 1) * (Number(tzHour) * 60 + Number(tzMinute ?? 0)) : 0;
  return new Date(date.getTime() - offsetMinutes * 60_000);
}

const pattern = (tag: string): RegExp => {
  const source = RESOLVERS.find(([t]) => t === tag)![1].source.replace("\\n?$", "$");
  return new RegExp(source);
};

/**
 * PyYAML's implicit types for reading results: the library's YAML 1.1 schema also reads `y`/`n` as
 * booleans and `1e5` as a float, where PyYAML (and so the worker that wrote the text) means strings.
 */
const PYYAML_SCALARS: ScalarTag[] = [
  { tag: TAG + "bool", default: true, test: pattern("bool"), resolve: (s) => /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/.test(s) },
  { tag: TAG + "float", default: true, test: pattern("float"), resolve: constructFloat },
  { tag: TAG + "int", default: true, test: pattern("int"), resolve: constructInt },
  { tag: TAG + "null", default: true, test: pattern("null"), resolve: () => null },
  { tag: TAG + "timestamp", default: true, test: pattern("timestamp"), resolve: constructTimestamp },
  // The library would return a Node Buffer where there is one; results are plain Uint8Arrays everywhere.
  { tag: TAG + "binary", resolve: (text) => Uint8Array.from(atob(text.replace(/\s+/g, "")), (ch) => ch.charCodeAt(0)) },
];
const REPLACED = new Set(PYYAML_SCALARS.map((t) => t.tag));

const pyyamlTags = (tags: Tags): Tags => [
  ...PYYAML_SCALARS,
  ...tags.filter((t) => typeof t === "string" || !REPLACED.has(t.tag)),
];

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The lexer's markers that are not slices of the text (document start, flow error, scalar follows). */
const MARKERS = new Set([CST.DOCUMENT, CST.FLOW_END, CST.SCALAR]);

/**
 * Refuses YAML that nests deeper than `maxDepth` or holds more than `maxItems` nodes, before the
 * yaml library composes it: the composer recurses once per level, and near V8's stack limit
 * (~1 000 levels) a regular expression compiled there aborts the whole process
 * ("RegExpCompiler Allocation failed"), which no try/catch can stop.
 *
 * One pass over the library's lexer, which is a flat state machine (no recursion, linear in the
 * text), so quotes, comments and block scalars count exactly as the parser will see them. The depth
 * is an upper bound: block collections are tracked by the column of the indicator or key that opens
 * them (a map and its indentless sequence may share one), flow brackets count twice (a `[a: b]`
 * entry is a one-pair map inside the sequence) plus one for the map that a flow collection used as
 * a key opens around it. The scan stops at the first level too many.
 */
export function scanYaml(text: string, limits: ResolvedDecodeLimits): void {
  const block: Array<{ column: number; map: boolean }> = [];
  let flow = 0;
  /**
   * Per open flow collection, the indicators met inside it since its first `-`. A `-` is invalid in
   * flow context, but the parser's recovery nests block collections there, so from the first `-`
   * on, every `-`, `?` and `:` of that collection counts as a level (valid YAML never pays this).
   */
  const flowBroken: number[] = [];
  let broken = 0;
  let items = 0;
  let offset = 0;
  let lineStart = 0;
  /** Column where the node being read began: an implicit key's column when a `:` follows. */
  let nodeColumn = -1;
  const open = (column: number, map: boolean): void => {
    while (block.length > 0 && block[block.length - 1]!.column > column) block.pop();
    const top = block[block.length - 1];
    if (top && top.column === column) {
      if (top.map === map) return;
      const below = block[block.length - 2];
      if (below && below.column === column && below.map === map) {
        block.pop();
        return;
      }
    }
    block.push({ column, map });
    items++;
  };
  let scalarNext = false;
  for (const token of new Lexer().lex(text)) {
    if (MARKERS.has(token)) {
      scalarNext = token === CST.SCALAR;
      continue;
    }
    const column = offset - lineStart;
    // After the scalar marker comes a plain scalar, whatever it reads like ("---", "-", "[").
    const type = scalarNext ? "scalar" : CST.tokenType(token);
    scalarNext = false;
    switch (type) {
      case "doc-start":
      case "doc-end":
        block.length = 0;
        flow = 0;
        flowBroken.length = 0;
        broken = 0;
        nodeColumn = -1;
        break;
      case "flow-map-start":
      case "flow-seq-start":
        if (flow === 0 && nodeColumn < 0) nodeColumn = column;
        flow++;
        flowBroken.push(0);
        items++;
        break;
      case "flow-map-end":
      case "flow-seq-end":
        if (flow > 0) {
          flow--;
          broken -= flowBroken.pop()!;
        }
        break;
      case "seq-item-ind":
        if (flow === 0) {
          open(column, false);
          nodeColumn = -1;
        } else {
          flowBroken[flowBroken.length - 1]!++;
          broken++;
        }
        break;
      case "explicit-key-ind":
        if (flow === 0) {
          open(column, true);
          nodeColumn = -1;
        } else if (flowBroken[flowBroken.length - 1]! > 0) {
          flowBroken[flowBroken.length - 1]!++;
          broken++;
        }
        break;
      case "map-value-ind":
        if (flow === 0) {
          open(nodeColumn >= 0 ? nodeColumn : column, true);
          nodeColumn = -1;
        } else if (flowBroken[flowBroken.length - 1]! > 0) {
          flowBroken[flowBroken.length - 1]!++;
          broken++;
        }
        break;
      case "newline":
        if (flow === 0) nodeColumn = -1;
        break;
      case "space":
      case "comment":
      case "comma":
      case "byte-order-mark":
      case "directive-line":
        break;
      default:
        // A scalar, alias, anchor, tag or block scalar: where an implicit key would start.
        if (flow === 0 && nodeColumn < 0) nodeColumn = column;
        items++;
    }
    // A flow collection may turn out to be an implicit key: the map it opens wraps it (+1).
    if (block.length + (flow > 0 ? 1 + 2 * flow + broken : 0) > limits.maxDepth) {
      throw limitError("YAML", `collections nested more than ${limits.maxDepth} levels deep (maxDepth)`);
    }
    if (items > limits.maxItems) throw limitError("YAML", `more than ${limits.maxItems} nodes (maxItems)`);
    offset += token.length;
    const newline = token.lastIndexOf("\n");
    if (newline >= 0) lineStart = offset - token.length + newline + 1;
  }
}

/** What the composer will nest, counted on the parser's tokens without recursion. */
function checkTokenDepth(documents: readonly CST.Token[], limits: ResolvedDecodeLimits): void {
  const pending: Array<{ token: CST.Token | null | undefined; depth: number }> = documents.map((token) => ({ token, depth: 0 }));
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { token, depth } = next;
    if (!token) continue;
    if (token.type === "document") {
      pending.push({ token: token.value, depth });
      continue;
    }
    if (token.type !== "block-map" && token.type !== "block-seq" && token.type !== "flow-collection") continue;
    // A flow entry `a: b` is a one-pair map of its own: flow children count two levels.
    const inner = depth + (token.type === "flow-collection" ? 2 : 1);
    if (inner > limits.maxDepth) throw limitError("YAML", `collections nested more than ${limits.maxDepth} levels deep (maxDepth)`);
    for (const item of token.items) {
      const entry = item as { key?: CST.Token | null; value?: CST.Token };
      pending.push({ token: entry.key, depth: inner }, { token: entry.value, depth: inner });
    }
  }
}

/**
 * `yaml.safe_load` for results, bounded by `limits` (see `DecodeLimits`): the size; nesting and
 * node count from `scanYaml`; then, on the parser's tokens (the parser is iterative too), the exact
 * nesting the composer will recurse through, which also covers what the parser's error recovery
 * builds from malformed input. Only then the composer, whose alias limit stops alias bombs.
 */
export function decodeYaml(bytes: Uint8Array, limits?: DecodeLimits): unknown {
  const resolved = resolveDecodeLimits(limits);
  checkInputSize(bytes.length, resolved, "YAML");
  try {
    const text = decoder.decode(bytes);
    scanYaml(text, resolved);
    const tokens = [...new Parser().parse(text)];
    checkTokenDepth(tokens, resolved);
    // parse() without its console warnings (a result can carry any number of them).
    const composer = new Composer({ version: "1.1", customTags: pyyamlTags, logLevel: "error" });
    let doc: Document.Parsed | undefined;
    for (const next of composer.compose(tokens, true, text.length)) {
      if (doc) throw limitError("YAML", "the text holds more than one document");
      doc = next;
    }
    const error = doc?.errors[0];
    if (error) throw error;
    return doc ? doc.toJS({ maxAliasCount: 100 }) : null;
  } catch (err) {
    if (err instanceof CeleryError) throw err;
    throw new SerializationError(`body is not valid YAML: ${err instanceof Error ? err.message : String(err)}`, "body", { cause: err });
  }
}

