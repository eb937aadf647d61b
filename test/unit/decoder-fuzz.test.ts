/**
 * Fuzzing the result decoders (issue #14): pickle, YAML, msgpack and JSON, each with random bytes,
 * mutations of real result payloads (test/fixtures/results/payloads.json, captured from a real
 * Celery worker and from Python's pickle.dumps) and inputs built from the format's own pieces.
 * For every case: it returns or throws one of our typed errors (never a TypeError, RangeError or
 * a crash), within 1 s, and what it returns stays within the limits once written out as a tree;
 * reading it as a task meta fails only as `metaFromStored` documents. The heap is sampled as it goes.
 *
 *   DECODER_FUZZ_RUNS=200000 DECODER_FUZZ_SEED=7 npx vitest run test/unit/decoder-fuzz.test.ts
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { metaFromStored } from "../../sdk/backends/exceptions.js";
import { CeleryError } from "../../sdk/errors.js";
import { decodeJson } from "../../sdk/serializers/json.js";
import { resolveDecodeLimits, type DecodeLimits } from "../../sdk/serializers/limits.js";
import { decodeMsgpack } from "../../sdk/serializers/msgpack.js";
import { decodePickle } from "../../sdk/serializers/pickle.js";
import { decodeYaml } from "../../sdk/serializers/yaml-read.js";
import { capturedPayloads } from "../fixtures/results/hostile.js";

const RUNS = Number(process.env.DECODER_FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.DECODER_FUZZ_SEED ?? 14);
/** The defaults, but fewer values, so checking each output as a tree stays cheap. */
const LIMITS = resolveDecodeLimits({ maxItems: 100_000 });
const MAX_CASE_MS = 1000;
const HEAP_HEADROOM = 256 * 2 ** 20;

const payloads = capturedPayloads();
const seedsOf = (contentType: string): Uint8Array[] => payloads.filter((p) => p.contentType === contentType).map((p) => p.bytes);

// ---------------------------------------------------------------------------------------------
// Mutations of real payloads

type Mutation = (bytes: Uint8Array) => Uint8Array;

const at = (bytes: Uint8Array, position: number): number => (bytes.length === 0 ? 0 : position % bytes.length);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ p: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }).map(({ p, v }) => (b: Uint8Array) => {
    const out = b.slice();
    if (out.length > 0) out[at(out, p)] = v;
    return out;
  }),
  fc.record({ p: fc.nat(), v: fc.constantFrom(0x00, 0x7f, 0x80, 0xff, 0xfe, 0x2e, 0x5b, 0x7b, 0x0a, 0x2d, 0x20) }).map(({ p, v }) => (b: Uint8Array) => {
    const out = b.slice();
    if (out.length > 0) out[at(out, p)] = v;
    return out;
  }),
  fc.record({ p: fc.nat(), bytes: fc.uint8Array({ maxLength: 8 }) }).map(({ p, bytes }) => (b: Uint8Array) => {
    const i = b.length === 0 ? 0 : p % (b.length + 1);
    return new Uint8Array([...b.subarray(0, i), ...bytes, ...b.subarray(i)]);
  }),
  fc.record({ p: fc.nat(), n: fc.integer({ min: 1, max: 32 }) }).map(({ p, n }) => (b: Uint8Array) => {
    const i = at(b, p);
    return new Uint8Array([...b.subarray(0, i), ...b.subarray(i + n)]);
  }),
  // A slice repeated: nests structures, multiplies memo references, duplicates keys.
  fc.record({ p: fc.nat(), n: fc.integer({ min: 1, max: 64 }), times: fc.integer({ min: 2, max: 40 }) }).map(({ p, n, times }) => (b: Uint8Array) => {
    const i = at(b, p);
    const slice = b.subarray(i, i + n);
    const parts = [b.subarray(0, i)];
    for (let k = 0; k < times; k++) parts.push(slice);
    parts.push(b.subarray(i));
    return Buffer.concat(parts);
  }),
  fc.nat().map((p) => (b: Uint8Array) => b.subarray(0, at(b, p))),
);

function mutated(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .record({ seed: fc.constantFrom(...seeds), mutations: fc.array(mutation, { minLength: 1, maxLength: 6 }) })
    .map(({ seed, mutations }) => mutations.reduce((bytes, m) => m(bytes), seed));
}

const randomBytes = fc.uint8Array({ maxLength: 512 });

// ---------------------------------------------------------------------------------------------
// Inputs from each format's own pieces

const ascii = (text: string): number[] => [...text].map((c) => c.charCodeAt(0));
const u32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];

const pickleOpcode: fc.Arbitrary<number[]> = fc.oneof(
  fc.constantFrom(
    [0x5d], [0x7d], [0x29], [0x8f], [0x28], [0x61], [0x65], [0x73], [0x75], [0x90], [0x91], [0x6c], [0x64], [0x74],
    [0x85], [0x86], [0x87], [0x52], [0x94], [0x32], [0x30], [0x31], [0x4e], [0x88], [0x89], [0x2e],
    [0x8c, 2, 0x61, 0x62], [0x8c, 0], [0x43, 1, 0x7a],
    ascii("cbuiltins\nlist\n"), ascii("cbuiltins\nset\n"), ascii("c__builtin__\nfrozenset\n"), ascii("cdatetime\ndatetime\n"),
    ascii("cdatetime\ntimedelta\n"), ascii("cdatetime\ntimezone\n"), ascii("c_codecs\nencode\n"), ascii("cos\nsystem\n"),
    ascii("I42\n"), ascii("L99L\n"), ascii("F1.5\n"), ascii("Vab\\u00e9\n"), ascii("p0\n"), ascii("g0\n"),
  ),
  fc.integer({ min: 0, max: 255 }).map((n) => [0x4b, n]),
  fc.integer({ min: 0, max: 8 }).map((n) => [0x68, n]),
  fc.integer({ min: 0, max: 8 }).map((n) => [0x71, n]),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((n) => [0x8b, ...u32(n)]),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((n) => [0x58, ...u32(n)]),
  fc.integer({ min: 0, max: 12 }).map((n) => [0x8a, n, ...Array<number>(n).fill(0xff)]),
);

const pickleSoup = fc
  .record({ proto: fc.integer({ min: 0, max: 5 }), ops: fc.array(pickleOpcode, { maxLength: 120 }) })
  .map(({ proto, ops }) => new Uint8Array([0x80, proto, ...ops.flat(), 0x2e]));

const YAML_PIECES = [
  "- ", "? ", ": ", "a", "b: ", "\n", "  ", " ", "[", "]", "{", "}", ", ", "'q'", '"d"', "|\n", ">-\n", "&x ", "*x", "!!str ",
  "!!binary ", "!!python/object ", "# c\n", "---\n", "...\n", "-", ":", "\t", "'a\n b'", '"x\\\n"', ",", "\r\n", "%YAML 1.1\n",
  "<<: *x\n", "1e5", "0x1F", "2030-01-02 03:04:05", "~", "y", ".inf",
];
const yamlSoup = fc.array(fc.constantFrom(...YAML_PIECES), { maxLength: 200 }).map((pieces) => new TextEncoder().encode(pieces.join("")));

const msgpackPiece: fc.Arbitrary<number[]> = fc.oneof(
  fc.integer({ min: 0x80, max: 0x9f }).map((b) => [b]),
  fc.constantFrom<number[]>([0xc0], [0xc2], [0xc3], [0xa1, 0x61], [0x01], [0xff], [0xcb, 0, 0, 0, 0, 0, 0, 0, 0], [0xc4, 2, 1, 2], [0xd6, 0xff, 0, 0, 0, 1]),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((n) => [0xdd, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((n) => [0xdb, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]),
  fc.integer({ min: 0, max: 0xffff }).map((n) => [0xde, n >>> 8, n & 0xff]),
);
const msgpackSoup = fc.array(msgpackPiece, { maxLength: 200 }).map((pieces) => new Uint8Array(pieces.flat()));

const JSON_PIECES = ["[", "]", "{", "}", '"a"', '"\\""', '"\\\\"', ":", ",", "1", "-0.5e3", "null", "true", " ", '"[["', "\\", '"\\u00e9"'];
const jsonSoup = fc.array(fc.constantFrom(...JSON_PIECES), { maxLength: 300 }).map((pieces) => new TextEncoder().encode(pieces.join("")));

// ---------------------------------------------------------------------------------------------
// The property

/** Nesting and size written out as a tree, iterative; stops counting past `cap`. */
function treeShape(value: unknown, cap: number): { depth: number; items: number } {
  let depth = 0;
  let items = 0;
  const pending: Array<[unknown, number]> = [[value, 0]];
  while (pending.length > 0 && items <= cap) {
    const [v, d] = pending.pop()!;
    items++;
    if (typeof v !== "object" || v === null || v instanceof Uint8Array || v instanceof Date) continue;
    depth = Math.max(depth, d + 1);
    for (const child of Array.isArray(v) ? v : Object.values(v)) pending.push([child, d + 1]);
  }
  return { depth, items };
}

interface Tally {
  values: number;
  refusals: number;
  slowest: number;
  peakHeap: number;
}

function fuzz(decode: (bytes: Uint8Array, limits: DecodeLimits) => unknown, inputs: fc.Arbitrary<Uint8Array>): Tally {
  const baseline = process.memoryUsage().heapUsed;
  const tally: Tally = { values: 0, refusals: 0, slowest: 0, peakHeap: 0 };
  let cases = 0;
  fc.assert(
    fc.property(inputs, (bytes) => {
      const started = performance.now();
      let value: unknown;
      let ok = false;
      try {
        value = decode(bytes, LIMITS);
        ok = true;
      } catch (err) {
        // Only our typed errors may come out: never a TypeError, RangeError or SyntaxError.
        if (!(err instanceof CeleryError)) throw err;
        tally.refusals++;
      }
      const ms = performance.now() - started;
      tally.slowest = Math.max(tally.slowest, ms);
      if (ms > MAX_CASE_MS) throw new Error(`decoding ${bytes.length} bytes took ${ms.toFixed(0)} ms`);
      if (ok) {
        tally.values++;
        const shape = treeShape(value, LIMITS.maxItems);
        if (shape.items > LIMITS.maxItems || shape.depth > LIMITS.maxDepth) throw new Error(`decoded value is ${JSON.stringify(shape)}, over the limits`);
        // Reading it as a meta fails, if at all, only with the documented TypeError ("not a Celery task meta").
        try {
          metaFromStored(value, "t-fuzz");
        } catch (err) {
          if (!(err instanceof TypeError) || !/is not a Celery task meta/.test(err.message)) throw err;
        }
      }
      if (++cases % 500 === 0) {
        const heap = process.memoryUsage().heapUsed;
        tally.peakHeap = Math.max(tally.peakHeap, heap - baseline);
        if (heap - baseline > HEAP_HEADROOM) throw new Error(`heap grew by ${((heap - baseline) / 2 ** 20).toFixed(0)} MB`);
      }
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  return tally;
}

function report(name: string, tally: Tally): void {
  console.info(
    `[fuzz] ${name}: ${RUNS} cases (seed ${SEED}): ${tally.values} decoded, ${tally.refusals} refused with a typed error, ` +
      `slowest ${tally.slowest.toFixed(1)} ms, heap +${(tally.peakHeap / 2 ** 20).toFixed(0)} MB at most`,
  );
}

describe.each([
  { name: "pickle", decode: decodePickle, contentType: "application/x-python-serialize", soup: pickleSoup },
  { name: "YAML", decode: decodeYaml, contentType: "application/x-yaml", soup: yamlSoup },
  { name: "msgpack", decode: decodeMsgpack, contentType: "application/x-msgpack", soup: msgpackSoup },
  { name: "JSON", decode: decodeJson, contentType: "application/json", soup: jsonSoup },
])("the $name decoder under fuzzing", ({ name, decode, contentType, soup }) => {
  it("returns or refuses with a typed error, each case within a second and within the limits", () => {
    // Arrange
    const seeds = seedsOf(contentType);
    const inputs = fc.oneof({ arbitrary: mutated(seeds), weight: 5 }, { arbitrary: soup, weight: 4 }, { arbitrary: randomBytes, weight: 1 });

    // Act
    const tally = fuzz(decode, inputs);
    report(name, tally);

    // Assert: both outcomes were reached, so the generators exercise more than the error paths.
    expect(seeds.length).toBeGreaterThan(0);
    expect(tally.values).toBeGreaterThan(RUNS / 100);
    expect(tally.refusals).toBeGreaterThan(RUNS / 100);
  });
});
