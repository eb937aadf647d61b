/**
 * Fuzzing the envelope (issue #14): the relay's whole read path for one SQS record body, which is
 * all an intake sender controls. `relayRecord` (functions/relay/relay.ts) runs against a broker and a
 * scheduler queue that only keep what they are given: readEnvelope, then for a revoke
 * isControlEnvelope/readRevoke, for a task controlPlaneReason, checkForBroker, readTaskView (the
 * protocol 1 body through the bounded decoders), agreeWithSummary and checkTask under a wide policy.
 *
 * Inputs: arbitrary text and JSON, and objects built from the envelope's own fields; envelopes the
 * SDK builds (every serializer, both protocols, zlib) and Celery's revoke, mutated at any JSON path
 * (values replaced, fields deleted or added, types swapped, strings up to 300 KB, nesting 20 000
 * deep, the body's own JSON, base64 bodies with flipped bits); protocol 1 bodies with mutated bytes.
 * For every case: the record is relayed, or refused with an error the relay treats as the record's
 * own (`isPoison`: EnvelopeError, PolicyError, PayloadTooLargeError, SerializationError), never a
 * TypeError, RangeError or crash; within 1 s; log fields stay cut; nothing reaches the control plane
 * but a revoke; what is published is the envelope's body byte for byte. Every 1000 cases the heap,
 * after a full collection, may have kept at most 64 MB more than at the start.
 *
 *   ENVELOPE_FUZZ_RUNS=200000 ENVELOPE_FUZZ_SEED=7 npx vitest run test/unit/envelope-fuzz.test.ts
 *
 * (DECODER_FUZZ_RUNS / DECODER_FUZZ_SEED apply here too when the ENVELOPE_ ones are unset.)
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { deflateSync, inflateSync } from "node:zlib";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { LOG_FIELD_MAX, isPoison, relayRecord, type RelayDeps } from "../../functions/relay/relay.js";
import { controlPlaneReason, resolvePolicy } from "../../functions/shared/policy.js";
import { EnvelopeError, PolicyError } from "../../sdk/errors.js";
import { encodeEnvelope, readEnvelope } from "../../sdk/wire/envelope.js";
import { Celery, allSerializers } from "../../sdk/node.js";
import type { PublishReceipt, TaskMessage } from "../../sdk/protocol/message.js";
import { PIDBOX_EXCHANGE, REVOKE_TASK_NAME, revokeMessage } from "../../sdk/revoke.js";
import type { PublishOutcome, Transport } from "../../sdk/transport.js";
import { sqsRecord } from "../helpers/sqs-record.js";

const RUNS = Number(process.env.ENVELOPE_FUZZ_RUNS ?? process.env.DECODER_FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.ENVELOPE_FUZZ_SEED ?? process.env.DECODER_FUZZ_SEED ?? 14);
const MAX_CASE_MS = 1000;
/** A case that has not settled by then is a hang (a promise that never resolves), not a slow case. */
const HANG_MS = 10 * MAX_CASE_MS;
/** What the heap may keep beyond where it started (nothing a record leaves behind should stay). */
const HEAP_HEADROOM = 64 * 2 ** 20;
/** Samples of the heap that follow a full collection measure what the relay keeps, not its garbage. */
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;
const heapAfterCollection = (): number => {
  collectGarbage();
  return process.memoryUsage().heapUsed;
};
/** Fixed, so that whether a task parks does not depend on the day the suite runs. */
const NOW = Date.parse("2026-01-01T00:00:00Z");
const FAR_ETA = "2031-05-06T07:08:09.123456+00:00";
const PAST_ETA = "2020-01-01T00:00:00+00:00";
const EXPIRES = "2032-01-01T00:00:00+00:00";
const FORWARDER = "AROAFORWARDER";
const SENDERS = ["AIDATEST", "AIDATEST", "AIDATEST", "AIDALIMITED", "AIDAADMIN", `${FORWARDER}:scheduler`];

/** Every content type, pickle, an exchange and a per-sender rule: so that more inputs get further. */
const WIDE_POLICY = resolvePolicy({
  queues: [{ name: "celery", declare: true }, { name: "priority.high", declare: { arguments: { "x-max-priority": 10 } } }],
  exchanges: [{ exchange: "tasks", routingKeys: ["#"], declare: { type: "topic" } }],
  tasks: ["*"],
  contentTypes: ["application/json", "application/x-yaml", "application/x-msgpack"],
  dangerouslyAllowPickle: true,
  revokes: true,
  admins: ["AIDAADMIN"],
  senders: [{ principal: "AIDALIMITED", queues: ["celery"], tasks: ["tasks.*"], revokes: false }],
});

// ---------------------------------------------------------------------------------------------
// JSON trees, with nesting too deep for JSON.stringify spliced in as text

type Json = null | boolean | number | string | Deep | Json[] | { [key: string]: Json };

/** `depth` levels of arrays or objects: written into the text after the rest is stringified. */
class Deep {
  constructor(
    readonly depth: number,
    readonly kind: "[" | "{",
  ) {}
  text(): string {
    return this.kind === "[" ? `${"[".repeat(this.depth)}${"]".repeat(this.depth)}` : `${'{"a":'.repeat(this.depth)}null${"}".repeat(this.depth)}`;
  }
}

function writeJson(value: Json): string {
  const deep: Deep[] = [];
  const text = JSON.stringify(value, (_key, v: unknown) => (v instanceof Deep ? `\uE000${deep.push(v) - 1}\uE000` : v));
  if (deep.length === 0) return text;
  return text.replace(/"\uE000(\d+)\uE000"/g, (token, i: string) => deep[Number(i)]?.text() ?? token);
}

const isContainer = (v: Json): v is Json[] | { [key: string]: Json } => typeof v === "object" && v !== null && !(v instanceof Deep);

/** A fresh copy: generated values are shared between cases, and a tree must not come to hold itself. */
const copyOf = (v: Json): Json =>
  !isContainer(v) ? v : Array.isArray(v) ? v.map(copyOf) : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copyOf(x)]));

/** Sets an own property even for `__proto__`, as JSON.parse would; always a copy of `value`. */
function put(parent: Json[] | { [key: string]: Json }, key: string | number, value: Json): void {
  if (Array.isArray(parent)) parent[key as number] = copyOf(value);
  else Object.defineProperty(parent, key, { value: copyOf(value), enumerable: true, writable: true, configurable: true });
}

interface Slot {
  parent: Json[] | { [key: string]: Json };
  key: string | number;
}

/** Every place in the tree a value sits (the root excluded), iteratively. */
function slots(root: Json): Slot[] {
  const out: Slot[] = [];
  const pending: Json[] = [root];
  while (pending.length > 0) {
    const v = pending.pop()!;
    if (!isContainer(v)) continue;
    const entries: Array<[string | number, Json]> = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [key, child] of entries) {
      out.push({ parent: v, key });
      pending.push(child);
    }
  }
  return out;
}

const valueAt = (s: Slot): Json => (s.parent as Record<string | number, Json>)[s.key]!;

type JsonMutation = (root: Json) => void;

const SPECIAL_STRINGS = [
  "", " ", "celery", "celery.pidbox", "celeryev", "reply.celery.pidbox", "amq.direct", "amq.rabbitmq.trace", "tasks", "tasks.add", "#", "*",
  "__proto__", "constructor", "toString", "utf-8", "binary", "base64", "release", "broadcast", "application/json", "application/x-yaml",
  "application/x-msgpack", "application/x-python-serialize", "application/x-gzip", "revoke", "shutdown", "SIGKILL", REVOKE_TASK_NAME,
  FAR_ETA, PAST_ETA, "2030-02-30T00:00:00Z", "9999-12-31T23:59:59.999999999+99:99", "0000-01-01T00:00:00Z", "2030-01-01 00:00:00-0130",
  "315360000000", "315360000001", "0", "01", "-1", "\u0000", "\ufffe\uffff", "\ud800", "é", "a\nb", "AIDAADMIN",
];
const specialValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(null, true, false, 0, -1, 1, 2, 3, 255, 256, 1.5, 1e308, -1e-308, 2 ** 53 + 2, [], {}, [null], { "": null }),
  fc.constantFrom(...SPECIAL_STRINGS),
);
/** Long strings, mostly a few KB, sometimes just past a limit (255-byte names, the 64 KiB header table, 256 KiB bodies) or ~300 KB. */
const hugeString = fc
  .record({
    unit: fc.constantFrom("a", "é", "\u{1F600}", "[", "\\", '"', "A/+=", "\u0000", "\ud800"),
    length: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 200, max: 8192 }) }, { weight: 1, arbitrary: fc.constantFrom(256, 65_537, 262_145, 300_000) }),
  })
  .map(({ unit, length }) => unit.repeat(Math.ceil(length / unit.length)));
const deepValue = fc
  .record({ depth: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1000, max: 20_000 })), kind: fc.constantFrom<"[" | "{">("[", "{") })
  .map(({ depth, kind }) => new Deep(depth, kind));
const anyValue: fc.Arbitrary<Json> = fc.oneof(
  { arbitrary: specialValue, weight: 4 },
  { arbitrary: fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>, weight: 4 },
  { arbitrary: fc.string({ maxLength: 40 }), weight: 2 },
  { arbitrary: hugeString, weight: 1 },
  { arbitrary: deepValue, weight: 1 },
);

/** The value as another JSON type. */
function swapped(v: Json): Json {
  if (typeof v === "string") return /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : [v];
  if (typeof v === "number") return String(v);
  if (typeof v === "boolean") return v ? 1 : "false";
  if (v === null) return {};
  if (Array.isArray(v)) return Object.fromEntries(v.map((x, i) => [String(i), x]));
  if (v instanceof Deep) return null;
  return Object.values(v);
}

/** The slot `at` picks among `all`, or undefined when there is none. */
const pick = <T>(all: T[], at: number): T | undefined => (all.length === 0 ? undefined : all[at % all.length]);

const replaced = fc.record({ at: fc.nat(), value: anyValue }).map(({ at, value }) => (root: Json) => {
  const s = pick(slots(root), at);
  if (s) put(s.parent, s.key, value);
});

const deleted = fc.nat().map((at) => (root: Json) => {
  const s = pick(slots(root), at);
  if (!s) return;
  if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
  else delete s.parent[s.key as string];
});

const SPECIAL_KEYS = ["__proto__", "constructor", "task", "id", "eta", "compression", "sender", "stage", "x-match"];
const added = fc
  .record({ at: fc.nat(), key: fc.oneof(fc.constantFrom(...SPECIAL_KEYS), fc.string({ maxLength: 8 })), value: anyValue })
  .map(({ at, key, value }) => (root: Json) => {
    const objects = [root, ...slots(root).map(valueAt)].filter((v): v is { [key: string]: Json } => isContainer(v) && !Array.isArray(v));
    const o = pick(objects, at);
    if (o) put(o, key, value);
  });

const retyped = fc.nat().map((at) => (root: Json) => {
  const s = pick(slots(root), at);
  if (s) put(s.parent, s.key, swapped(valueAt(s)));
});

const edited = fc
  .record({
    at: fc.nat(),
    pos: fc.nat(),
    remove: fc.integer({ min: 0, max: 4 }),
    insert: fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom("9", "-", ":", "+", "=", "/", ".", "\u00e9", "\ud800")),
  })
  .map(({ at, pos, remove, insert }) => (root: Json) => {
    const s = pick(slots(root).filter((x) => typeof valueAt(x) === "string"), at);
    if (!s) return;
    const v = valueAt(s) as string;
    const i = pos % (v.length + 1);
    put(s.parent, s.key, v.slice(0, i) + insert + v.slice(i + remove));
  });

const jsonMutation: fc.Arbitrary<JsonMutation> = fc.oneof(
  // A value anywhere replaced.
  { weight: 5, arbitrary: replaced },
  // A field deleted, an element dropped.
  { weight: 3, arbitrary: deleted },
  // A field added, with a name a reader might treat specially.
  { weight: 2, arbitrary: added },
  // A type swapped: "3" for 3, an object for an array.
  { weight: 2, arbitrary: retyped },
  // A string edited in place: dates, names, base64, YAML text.
  { weight: 3, arbitrary: edited },
);

/** `arbitrary` one case in `oneIn`, else null. */
const rarely = <T>(arbitrary: fc.Arbitrary<T>, oneIn: number): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: oneIn - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });

// ---------------------------------------------------------------------------------------------
// Byte mutations (as test/unit/decoder-fuzz.test.ts)

type ByteMutation = (bytes: Uint8Array) => Uint8Array;

const at = (bytes: Uint8Array, position: number): number => (bytes.length === 0 ? 0 : position % bytes.length);

const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ p: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }).map(({ p, bit }) => (b: Uint8Array) => {
    const out = b.slice();
    if (out.length > 0) out[at(out, p)]! ^= 1 << bit;
    return out;
  }),
  fc.record({ p: fc.nat(), v: fc.constantFrom(0x00, 0x7f, 0x80, 0xff, 0x2e, 0x5b, 0x7b, 0x0a, 0x2d, 0x22, 0x94, 0xdd, 0x8a) }).map(({ p, v }) => (b: Uint8Array) => {
    const out = b.slice();
    if (out.length > 0) out[at(out, p)] = v;
    return out;
  }),
  fc.record({ p: fc.nat(), bytes: fc.uint8Array({ maxLength: 8 }) }).map(({ p, bytes }) => (b: Uint8Array) => {
    const i = b.length === 0 ? 0 : p % (b.length + 1);
    return Buffer.concat([b.subarray(0, i), bytes, b.subarray(i)]);
  }),
  fc.record({ p: fc.nat(), n: fc.integer({ min: 1, max: 32 }) }).map(({ p, n }) => (b: Uint8Array) => {
    const i = at(b, p);
    return Buffer.concat([b.subarray(0, i), b.subarray(i + n)]);
  }),
  // A slice repeated: nests structures, multiplies references, crosses the 256 KiB limit.
  fc.record({ p: fc.nat(), n: fc.integer({ min: 1, max: 64 }), times: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 2, max: 40 }) }, { weight: 1, arbitrary: fc.integer({ min: 1000, max: 20_000 }) }) }).map(({ p, n, times }) => (b: Uint8Array) => {
    const i = at(b, p);
    const slice = b.subarray(i, i + n);
    return Buffer.concat([b.subarray(0, i), ...Array<Uint8Array>(times).fill(slice), b.subarray(i)]);
  }),
  fc.nat().map((p) => (b: Uint8Array) => b.subarray(0, at(b, p))),
);
const byteMutations = fc.array(byteMutation, { minLength: 1, maxLength: 6 });
const applyBytes = (bytes: Uint8Array, mutations: ByteMutation[]): Uint8Array => mutations.reduce((b, m) => m(b), bytes);

// ---------------------------------------------------------------------------------------------
// Real envelopes, as the SDK writes them

interface SeedEnvelope {
  label: string;
  text: string;
  serializer: "json" | "yaml" | "msgpack" | "pickle";
  protocol: 1 | 2;
  compressed: boolean;
}

const SERIALIZERS = ["json", "yaml", "msgpack", "pickle"] as const;
const CALLS = [
  { label: "minimal", options: {} },
  {
    label: "full",
    options: {
      args: [1, "two", [3.5, null, true], { nested: { deeper: ["x", -7] } }],
      kwargs: { k: "v", n: 2 ** 40, s: "é\u2028" },
      eta: FAR_ETA,
      expires: EXPIRES,
      priority: 7,
      headers: { custom: "value", list: [1, "a", null], table: { a: { b: true } } },
    },
  },
  { label: "past eta, to an exchange", options: { args: ["a"], eta: PAST_ETA, exchange: "tasks", routingKey: "tasks.add.fast" } },
  { label: "to a declared queue", options: { kwargs: { q: 1 }, queue: "priority.high", priority: 9, expires: EXPIRES } },
] as const;

async function buildSeeds(): Promise<SeedEnvelope[]> {
  const app = new Celery({ broker: "amqp://guest:guest@127.0.0.1:5672//" });
  const seeds: SeedEnvelope[] = [];
  for (const serializer of SERIALIZERS) {
    for (const protocol of [1, 2] as const) {
      for (const compression of [undefined, "zlib"] as const) {
        for (const [n, call] of CALLS.entries()) {
          // One id per call: the protocol 1 body of each serializer then holds the same dict as JSON's.
          const m = await app.buildMessage("tasks.add", { ...call.options, taskId: `fuzz-${n}`, serializer, protocol, compression } as never);
          seeds.push({ label: `${serializer} p${protocol}${compression ? " zlib" : ""} ${call.label}`, text: encodeEnvelope(m), serializer, protocol, compressed: compression !== undefined });
        }
      }
    }
  }
  for (const [label, m] of [
    ["revoke one", revokeMessage("fuzz-revoked")],
    ["revoke many", revokeMessage(["fuzz-a", "fuzz-b", "fuzz-c"], {}, 42)],
  ] as const) {
    seeds.push({ label, text: encodeEnvelope(m), serializer: "json", protocol: 2, compressed: false });
  }
  return seeds;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** The envelope's body bytes (base64 or text), as the relay reads them. */
function bodyBytes(envelope: { [key: string]: Json }): Uint8Array {
  const body = typeof envelope.body === "string" ? envelope.body : "";
  return envelope.bodyEncoding === "base64" ? Buffer.from(body, "base64") : encoder.encode(body);
}

/** Writes `bytes` as the envelope's body: as text when the seed carried text and they still are. */
function setBody(envelope: { [key: string]: Json }, bytes: Uint8Array, asText: boolean): void {
  let text: string | null = null;
  if (asText) {
    try {
      text = utf8.decode(bytes);
      if (encoder.encode(text).length !== bytes.length) text = null;
    } catch {
      text = null;
    }
  }
  envelope.bodyEncoding = text === null ? "base64" : "utf-8";
  envelope.body = text ?? Buffer.from(bytes).toString("base64");
}

type EnvelopeMutation = (envelope: { [key: string]: Json }) => void;

const envelopeMutation: fc.Arbitrary<EnvelopeMutation> = fc.oneof(
  { weight: 6, arbitrary: jsonMutation },
  // The body's own JSON (a protocol 2 [args, kwargs, embed], a protocol 1 dict, a revoke) mutated.
  { weight: 3, arbitrary: fc.array(jsonMutation, { minLength: 1, maxLength: 4 }).map((mutations) => (e: { [key: string]: Json }) => {
    if (typeof e.body !== "string" || e.bodyEncoding !== "utf-8") return;
    try {
      const inner = JSON.parse(e.body) as Json;
      for (const m of mutations) m(inner);
      e.body = writeJson(inner);
    } catch {
      // Not JSON, or nested (by an earlier mutation) deeper than this test's own helpers recurse: left as it is.
    }
  }) },
  // Bits flipped, bytes inserted or cut in the body, written back as canonical base64.
  { weight: 2, arbitrary: byteMutations.map((mutations) => (e: { [key: string]: Json }) => setBody(e, applyBytes(bodyBytes(e), mutations), false)) },
);

/** Text mutations of the written envelope: what no JSON tree can express (duplicate keys, bad escapes, cut text). */
const textMutation: fc.Arbitrary<(text: string) => string> = fc.oneof(
  fc.record({ p: fc.nat(), s: fc.constantFrom('"', "\\", "{", "}", ",", '"task":{},', '"celeryEdgeEnvelope":2,', "\\u0000", "\\ud800", "\ud800", "\ufeff") }).map(({ p, s }) => (t: string) => {
    const i = p % (t.length + 1);
    return t.slice(0, i) + s + t.slice(i);
  }),
  fc.nat().map((p) => (t: string) => t.slice(0, p % (t.length + 1))),
  fc.nat().map((p) => (t: string) => `\ufeff${t.slice(p % (t.length + 1))}`),
);

function mutatedEnvelopes(seeds: SeedEnvelope[]): fc.Arbitrary<string> {
  return fc
    .record({
      seed: fc.constantFrom(...seeds),
      mutations: fc.array(envelopeMutation, { minLength: 1, maxLength: 6 }),
      text: rarely(textMutation, 8),
    })
    .map(({ seed, mutations, text }) => {
      const e = JSON.parse(seed.text) as { [key: string]: Json };
      for (const m of mutations) m(e);
      const written = writeJson(e);
      return text === null ? written : text(written);
    });
}

// ---------------------------------------------------------------------------------------------
// Protocol 1 bodies: the only bodies the relay decodes

/** A few KB that inflate past the relay's 1 MiB cap (refused without being built), or to 600 KB of nesting. */
const BOMBS = [deflateSync(Buffer.alloc(2 * 2 ** 20)), deflateSync(Buffer.from("[".repeat(300_000) + "]".repeat(300_000)))];

/** `value` with its `Deep` parts built for real, at most `cap` levels (the encoders recurse). */
function materialized(value: Json, cap = 2000): unknown {
  if (value instanceof Deep) {
    let v: unknown = null;
    for (let i = 0; i < Math.min(value.depth, cap); i++) v = value.kind === "[" ? [v] : { a: v };
    return v;
  }
  if (!isContainer(value)) return value;
  if (Array.isArray(value)) return value.map((x) => materialized(x, cap));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(value)) Object.defineProperty(out, k, { value: materialized(x, cap), enumerable: true, writable: true, configurable: true });
  return out;
}

/** The body written with the seed's serializer (JSON as text, so that any depth fits), or null if it cannot carry it. */
function encodeWith(serializer: SeedEnvelope["serializer"], value: Json): Uint8Array | null {
  try {
    return serializer === "json" ? encoder.encode(writeJson(value)) : allSerializers.find((s) => s.name === serializer)!.encode(materialized(value));
  } catch {
    return null;
  }
}

type Protocol1Mutation = (bytes: Uint8Array, seed: SeedEnvelope, tree: Json) => { bytes: Uint8Array; compress: boolean };

const protocol1Mutation: fc.Arbitrary<Protocol1Mutation> = fc.oneof(
  // The serialized body's bytes mutated (under the compression, when there is one).
  { weight: 5, arbitrary: byteMutations.map((m) => (bytes: Uint8Array, seed: SeedEnvelope) => ({ bytes: applyBytes(bytes, m), compress: seed.compressed })) },
  // The compressed bytes themselves mutated.
  { weight: 1, arbitrary: byteMutations.map((m) => (bytes: Uint8Array, seed: SeedEnvelope) => ({ bytes: applyBytes(seed.compressed ? deflateSync(bytes) : bytes, m), compress: false })) },
  // The body's dict (task, id, eta, expires, args…) mutated, then written with the seed's serializer.
  { weight: 4, arbitrary: fc.array(jsonMutation, { minLength: 1, maxLength: 4 }).map((mutations) => (bytes: Uint8Array, seed: SeedEnvelope, tree: Json) => {
    const copy = JSON.parse(JSON.stringify(tree)) as Json;
    for (const m of mutations) m(copy);
    return { bytes: encodeWith(seed.serializer, copy) ?? bytes, compress: seed.compressed };
  }) },
  // Random bytes.
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((random) => (_b: Uint8Array, seed: SeedEnvelope) => ({ bytes: random, compress: seed.compressed })) },
);

function protocol1Bodies(seeds: SeedEnvelope[]): fc.Arbitrary<string> {
  const p1 = seeds.filter((s) => s.protocol === 1);
  return fc
    .record({
      seed: fc.constantFrom(...p1),
      mutation: protocol1Mutation,
      bomb: rarely(fc.constantFrom(...BOMBS), 30),
      envelope: rarely(jsonMutation, 6),
    })
    .map(({ seed, mutation, bomb, envelope }) => {
      const e = JSON.parse(seed.text) as { [key: string]: Json };
      const stored = bodyBytes(e);
      const plain = seed.compressed ? new Uint8Array(inflateSync(stored)) : stored;
      // The dict every serializer carries, read from the JSON seed's twin: same fields, same values.
      const tree = P1_TREES.get(seed.label.replace(seed.serializer, "json").replace(" zlib", "")) ?? {};
      if (bomb) {
        setBody(e, bomb, false);
        (e.properties as { headers: { [key: string]: Json } }).headers.compression = "application/x-gzip";
      } else {
        const { bytes, compress } = mutation(plain, seed, tree);
        setBody(e, compress ? deflateSync(bytes) : bytes, !compress && e.bodyEncoding === "utf-8");
      }
      envelope?.(e);
      return writeJson(e);
    });
}

/** The protocol 1 body dicts of the uncompressed JSON seeds, by label. */
const P1_TREES = new Map<string, Json>();

// ---------------------------------------------------------------------------------------------
// Arbitrary text, and objects built from the envelope's own fields

const sometimes = <T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<T | Json> => fc.oneof({ arbitrary: plausible, weight: 4 }, { arbitrary: anyValue, weight: 1 });
const shortName = fc.oneof(fc.constantFrom("tasks.add", "celery", "fuzz-1", "", REVOKE_TASK_NAME, "priority.high"), fc.string({ maxLength: 12 }));
const instant = fc.oneof(fc.constant(null), fc.constantFrom(FAR_ETA, PAST_ETA, EXPIRES), fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string({ maxLength: 30 }));
const headerTable = fc.dictionary(fc.oneof(fc.constantFrom("task", "id", "eta", "expires", "compression", "clock", "lang", "argsrepr"), fc.string({ maxLength: 8 })), sometimes(fc.oneof(shortName, instant, fc.integer())), { maxKeys: 8 });
const bodyText = fc.oneof(
  fc.string({ maxLength: 100 }),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString("base64")),
  fc.record({ task: shortName, id: shortName, eta: instant, args: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify([[], {}, v])),
);
const envelopeShaped: fc.Arbitrary<string> = fc
  .record(
    {
      celeryEdgeEnvelope: sometimes(fc.constant(1)),
      task: sometimes(fc.record({ id: sometimes(shortName), name: sometimes(shortName), eta: sometimes(instant), expires: sometimes(instant) }, { requiredKeys: [] })),
      exchange: sometimes(fc.constantFrom("", "", "tasks", PIDBOX_EXCHANGE, "amq.topic", "celeryev")),
      routingKey: sometimes(fc.constantFrom("celery", "", "tasks.add", "priority.high", "celery.pidbox")),
      mandatory: sometimes(fc.boolean()),
      immediate: sometimes(fc.boolean()),
      properties: sometimes(
        fc.record(
          {
            contentType: sometimes(fc.constantFrom("application/json", "application/x-yaml", "application/x-msgpack", "application/x-python-serialize", "text/plain")),
            contentEncoding: sometimes(fc.constantFrom("utf-8", "binary", "gzip")),
            deliveryMode: sometimes(fc.constantFrom(1, 2)),
            headers: sometimes(headerTable),
            priority: sometimes(fc.integer({ min: -1, max: 256 })),
            expiration: sometimes(fc.constantFrom("0", "1000", "315360000001", "1e3", "-1")),
            replyTo: sometimes(fc.constantFrom("celery@host.celery.pidbox", "reply.celery.pidbox", "results")),
            correlationId: sometimes(shortName),
          },
          { requiredKeys: ["contentType", "contentEncoding", "deliveryMode", "headers"] },
        ),
      ),
      declare: sometimes(fc.option(fc.record({ exchange: shortName, exchangeType: fc.constantFrom("direct", "topic", "fanout", "headers", "x-delayed"), routingKey: shortName, queue: shortName, durable: fc.boolean() }, { requiredKeys: [] }))),
      bodyEncoding: sometimes(fc.constantFrom("utf-8", "base64")),
      body: sometimes(bodyText),
      sender: sometimes(fc.constantFrom("AIDATEST", "AIDAADMIN", "")),
      stage: sometimes(fc.constantFrom("release", "broadcast")),
    },
    { requiredKeys: ["celeryEdgeEnvelope", "task", "mandatory", "immediate", "properties", "bodyEncoding", "body"] },
  )
  .map((e) => writeJson(e as Json));

const arbitraryText: fc.Arbitrary<string> = fc.oneof(
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
  { weight: 2, arbitrary: fc.json({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.oneof(anyValue, fc.dictionary(fc.string({ maxLength: 20 }), anyValue, { maxKeys: 6 })).map((v) => writeJson(v as Json)) },
  { weight: 6, arbitrary: envelopeShaped },
);

// ---------------------------------------------------------------------------------------------
// The property

/** An SQS record body, printed cut in fast-check's report (some are 300 KB or 20 000 levels deep). */
class RecordBody {
  constructor(readonly text: string) {}
  [fc.toStringMethod](): string {
    const t = this.text;
    return t.length <= 600 ? JSON.stringify(t) : `${JSON.stringify(t.slice(0, 400))} … ${JSON.stringify(t.slice(-150))} (${t.length} characters)`;
  }
}

/** Keeps what it is given until the case is checked; never fails. */
class KeepingTransport implements Transport {
  readonly kind = "keeping";
  messages: TaskMessage[] = [];
  async publish(message: TaskMessage): Promise<PublishReceipt> {
    this.messages.push(message);
    return { id: message.meta.id };
  }
  async publishMany(messages: readonly TaskMessage[]): Promise<PublishOutcome[]> {
    return Promise.all(messages.map(async (m) => ({ ok: true as const, receipt: await this.publish(m) })));
  }
  async close(): Promise<void> {}
}

interface Tally {
  actions: Record<string, number>;
  refusals: number;
  /** Distinct refusal reasons: each message up to its first quote, digit, bracket or parenthesis. */
  reasons: Set<string>;
  slowest: number;
  /** Most the heap held, after a full collection, beyond where the run started. */
  keptHeap: number;
}

/** What `act` resolves with, or the error it rejects with. */
async function outcome(act: () => Promise<string>): Promise<{ action?: string; error?: unknown }> {
  try {
    return { action: await act() };
  } catch (error) {
    return { error };
  }
}

/** A promise that rejects after `ms` (unless cleared): a case still pending then has hung. */
function hang(ms: number): { promise: Promise<never>; clear: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`the case did not settle within ${ms} ms`)), ms);
  });
  return { promise, clear: () => clearTimeout(timer) };
}

async function fuzz(inputs: fc.Arbitrary<string>): Promise<Tally> {
  const broker = new KeepingTransport();
  const parked = new KeepingTransport();
  let longestLogField = 0;
  const watch = (_message: string, extra: Record<string, unknown>): void => {
    for (const v of Object.values(extra)) if (typeof v === "string") longestLogField = Math.max(longestLogField, v.length);
  };
  const deps: RelayDeps = {
    broker,
    policy: WIDE_POLICY,
    trustedForwarders: [FORWARDER],
    park: { transport: parked, thresholdSeconds: 900 },
    forceMandatory: false,
    logger: { info: watch, warn: watch, error: watch },
    now: () => NOW,
  };
  const baseline = heapAfterCollection();
  const tally: Tally = { actions: {}, refusals: 0, reasons: new Set(), slowest: 0, keptHeap: 0 };
  let cases = 0;
  await fc.assert(
    fc.asyncProperty(inputs.map((text) => new RecordBody(text)), fc.constantFrom(...SENDERS), async ({ text: body }, senderId) => {
      // Arrange
      const record = sqsRecord(body, `fuzz-${cases}`);
      record.attributes.SenderId = senderId;
      broker.messages = [];
      parked.messages = [];
      longestLogField = 0;

      // Act
      const started = performance.now();
      const deadline = hang(HANG_MS);
      const { action, error } = await outcome(() => Promise.race([relayRecord(record, deps), deadline.promise])).finally(deadline.clear);
      const ms = performance.now() - started;

      // Assert: only a refusal of the record itself may come out, never a TypeError or RangeError.
      if (error !== undefined) {
        if (!isPoison(error) && process.env.KNOWN_TMP && error instanceof RangeError && /at (readEnvelope|clip) /.test(error.stack ?? "")) { (globalThis as any).known = ((globalThis as any).known ?? 0) + 1; return; }
        if (!isPoison(error)) throw error;
        tally.refusals++;
        tally.reasons.add((error as Error).message.split(/["\d{[(]/)[0]!.slice(0, 80));
      } else {
        tally.actions[action!] = (tally.actions[action!] ?? 0) + 1;
      }
      tally.slowest = Math.max(tally.slowest, ms);
      if (ms > MAX_CASE_MS) throw new Error(`relaying a ${body.length}-character record took ${ms.toFixed(0)} ms`);
      if (longestLogField > LOG_FIELD_MAX + 1) throw new Error(`a log field carried ${longestLogField} characters (cut at ${LOG_FIELD_MAX})`);
      for (const m of broker.messages) {
        const revoke = m.exchange === PIDBOX_EXCHANGE && m.routingKey === "" && m.meta.name === REVOKE_TASK_NAME;
        if (!revoke && controlPlaneReason(m.exchange, m.routingKey)) throw new Error(`published to the control plane: ${m.exchange}/${m.routingKey}`);
        if (!Buffer.from(m.body).equals(Buffer.from(readEnvelope(body).message.body))) throw new Error("the published body is not the envelope's, byte for byte");
      }
      if (++cases % 1000 === 0) {
        const heap = heapAfterCollection();
        tally.keptHeap = Math.max(tally.keptHeap, heap - baseline);
        if (heap - baseline > HEAP_HEADROOM) throw new Error(`the heap kept ${((heap - baseline) / 2 ** 20).toFixed(0)} MB more after ${cases} cases`);
      }
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  return tally;
}

function report(name: string, tally: Tally): void {
  const actions = Object.entries(tally.actions).map(([a, n]) => `${n} ${a}`).join(", ") || "none relayed";
  console.info(
    `[fuzz] envelope, ${name}: ${RUNS} cases (seed ${SEED}): ${actions}; ${tally.refusals} refused with a typed error ` +
      `(${tally.reasons.size} distinct reasons), slowest ${tally.slowest.toFixed(1)} ms, heap kept +${(tally.keptHeap / 2 ** 20).toFixed(1)} MB at most`,
  );
}

const relayed = (tally: Tally): number => Object.values(tally.actions).reduce((a, b) => a + b, 0);

const SILENT = { info() {}, warn() {}, error() {} };

let seeds: SeedEnvelope[] = [];
beforeAll(async () => {
  seeds = await buildSeeds();
  for (const s of seeds) {
    if (s.protocol === 1 && s.serializer === "json" && !s.compressed) P1_TREES.set(s.label, JSON.parse((JSON.parse(s.text) as { body: string }).body) as Json);
  }
});

/** The seed envelope called `label`, parsed. */
function seedNamed(label: string): { [key: string]: Json } {
  const seed = seeds.find((s) => s.label === label);
  if (!seed) throw new Error(`no seed envelope called ${label}`);
  return JSON.parse(seed.text) as { [key: string]: Json };
}

/** One record through the relay under `policy` (default: the relay's default policy): the outcome and its time. */
async function relayOnce(body: string, policy = resolvePolicy({})): Promise<{ action?: string; error?: unknown; ms: number }> {
  const deps: RelayDeps = { broker: new KeepingTransport(), policy, trustedForwarders: [], forceMandatory: false, logger: SILENT, now: () => NOW };
  const started = performance.now();
  const result = await outcome(() => relayRecord(sqsRecord(body, "regression"), deps));
  return { ...result, ms: performance.now() - started };
}

describe("the relay's read path under fuzzing", () => {
  it("relays every seed envelope unmutated (so that the mutations start from envelopes that pass)", async () => {
    // Arrange
    const deps: RelayDeps = { broker: new KeepingTransport(), policy: WIDE_POLICY, trustedForwarders: [], park: { transport: new KeepingTransport(), thresholdSeconds: 900 }, forceMandatory: false, logger: SILENT, now: () => NOW };

    // Act
    const actions = await Promise.all(seeds.map((s) => relayRecord(sqsRecord(s.text, s.label), deps).catch((e: unknown) => `${s.label}: ${String(e)}`)));

    // Assert
    expect(seeds).toHaveLength(SERIALIZERS.length * 2 * 2 * CALLS.length + 2);
    expect(new Set(actions)).toEqual(new Set(["published", "parked"]));
  });

  it("refuses arbitrary text and envelope-shaped values with a typed error, each within a second", async () => {
    // Act
    const tally = await fuzz(arbitraryText);
    report("arbitrary text and envelope-shaped values", tally);

    // Assert: the generator gets past the JSON and the version, into the envelope's fields.
    expect(tally.refusals).toBeGreaterThan(RUNS / 2);
    expect(tally.reasons.size).toBeGreaterThan(20);
  });

  it("relays or refuses mutated real envelopes with a typed error, each within a second", async () => {
    // Act
    const tally = await fuzz(mutatedEnvelopes(seeds));
    report("mutated SDK envelopes and revokes", tally);

    // Assert: both outcomes were reached, so the mutations exercise more than the error paths.
    expect(relayed(tally)).toBeGreaterThan(RUNS / 100);
    expect(tally.refusals).toBeGreaterThan(RUNS / 100);
  });

  it("relays or refuses protocol 1 bodies with mutated bytes with a typed error, each within a second", async () => {
    // Act
    const tally = await fuzz(protocol1Bodies(seeds));
    report("protocol 1 bodies with mutated bytes", tally);

    // Assert
    expect(relayed(tally)).toBeGreaterThan(RUNS / 100);
    expect(tally.refusals).toBeGreaterThan(RUNS / 100);
  });
});

// Cases this fuzzing found, minimised: each fails on the code it was found on.
describe("regressions found by fuzzing the envelope", () => {
  it("refuses an envelope whose version is a list nested 20 000 deep with EnvelopeError, not a RangeError", async () => {
    // Arrange: 40 KB. readEnvelope wrote the version into its message with JSON.stringify, which ran off the stack.
    const body = `{"celeryEdgeEnvelope":${new Deep(20_000, "[").text()}}`;

    // Act
    const { error } = await relayOnce(body);

    // Assert
    expect(error).toBeInstanceOf(EnvelopeError);
  });

  it("refuses a revoke whose method is a list nested 20 000 deep with PolicyError, not a RangeError", async () => {
    // Arrange: Celery's revoke with its body's method swapped; readRevoke named the method through clip(), which ran off the stack.
    const envelope = seedNamed("revoke one");
    envelope.body = `{"method":${new Deep(20_000, "[").text()},"arguments":{"task_id":"fuzz-revoked"}}`;

    // Act
    const { error } = await relayOnce(JSON.stringify(envelope));

    // Assert
    expect(error).toBeInstanceOf(PolicyError);
  });

  it("refuses a protocol 1 YAML body of 1 MiB of blank lines (a 2 KB record, zlib) within a second, under the default JSON-only policy", async () => {
    // Arrange: Celery's protocol 1 YAML message with its compressed body swapped. The relay inflates it
    // (within its 1 MiB cap) and decodes it before the policy looks at the content type; the yaml
    // library takes about a second per 500 KB of blank lines.
    const envelope = seedNamed("yaml p1 zlib minimal");
    envelope.body = deflateSync(Buffer.alloc(2 ** 20, "\n")).toString("base64");
    const body = JSON.stringify(envelope);

    // Act
    const { error, ms } = await relayOnce(body);

    // Assert
    expect(body.length).toBeLessThan(3000);
    expect(isPoison(error)).toBe(true);
    expect(ms).toBeLessThan(MAX_CASE_MS);
  });
});
