/**
 * Result decoders under hostile input (issue #14): each limit of `DecodeLimits`, per decoder, and
 * `resultAccept`. Payloads that used to loop, abort V8 or exhaust the heap are decoded in a child
 * process with a small heap (test/fixtures/results/decode-child.ts), so a regression fails the test
 * instead of taking the test runner down.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { decodeResultMeta, resolveResultAccept } from "../../sdk/backends/accept.js";
import { decodeStoredMeta, RedisBackend } from "../../sdk/backends/redis.js";
import { ConfigurationError, PayloadTooLargeError, ResultBackendError, ResultDecodeError, SerializationError } from "../../sdk/errors.js";
import { yamlSerializer } from "../../sdk/serializers/yaml.js";
import { decodeJson } from "../../sdk/serializers/json.js";
import { DEFAULT_DECODE_LIMITS, resolveDecodeLimits } from "../../sdk/serializers/limits.js";
import { decodeMsgpack, msgpackSerializer } from "../../sdk/serializers/msgpack.js";
import { decodePickle, encodePickle } from "../../sdk/serializers/pickle.js";
import { decodeYaml, scanYaml } from "../../sdk/serializers/yaml-read.js";
import {
  capturedPayloads,
  jsonNested,
  msgpackHugeHeader,
  msgpackNested,
  pickleCycle,
  pickleDeepList,
  pickleListAmplifier,
  pickleNegativeLong4,
  pickleSharedBomb,
  yamlNestedFlow,
  yamlNestedSequence,
} from "../fixtures/results/hostile.js";

await yamlSerializer.load();

const CHILD = fileURLToPath(new URL("../fixtures/results/decode-child.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface ChildReport {
  bytes: number;
  ms: number;
  heapMB: number;
  outcomes: Array<{ ok: boolean; name?: string; code?: string; taskId?: string; message?: string }>;
}

/** Decodes a payload of hostile.ts in a child process with `heapMB` of heap; fails the test if the child does not report. */
function decodeInChild(job: Record<string, unknown>, heapMB = 256): ChildReport {
  const child = spawnSync(process.execPath, [`--max-old-space-size=${heapMB}`, "--import", "tsx", CHILD, JSON.stringify(job)], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 30_000,
  });
  const line = child.stdout.trim().split("\n").pop() ?? "";
  if (child.status !== 0 || !line.startsWith("{")) {
    throw new Error(`the decoding process did not report (status ${child.status}, signal ${child.signal}): ${child.stderr.slice(-2000)}`);
  }
  return JSON.parse(line) as ChildReport;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected it to throw");
}

/** Nesting and size of a decoded value written out as a tree (iterative; shared values counted at each place). */
function treeShape(value: unknown): { depth: number; items: number } {
  let depth = 0;
  let items = 0;
  const pending: Array<[unknown, number]> = [[value, 0]];
  while (pending.length > 0) {
    const [v, d] = pending.pop()!;
    items++;
    if (typeof v !== "object" || v === null || v instanceof Uint8Array || v instanceof Date) continue;
    depth = Math.max(depth, d + 1);
    for (const child of Array.isArray(v) ? v : Object.values(v)) pending.push([child, d + 1]);
  }
  return { depth, items };
}

describe("the pickle reader", () => {
  it("refuses a LONG4 with a negative length instead of reading backwards forever", () => {
    // Act
    const report = decodeInChild({ payload: "pickleNegativeLong4", decoder: "pickle" });

    // Assert
    expect(report.bytes).toBe(8);
    expect(report.outcomes).toEqual([expect.objectContaining({ ok: false, name: "SerializationError", code: "ERR_SERIALIZATION" })]);
    expect(report.outcomes[0]!.message).toMatch(/negative LONG4 length -5/);
    expect(report.ms).toBeLessThan(1000);
  });

  it("refuses a 700 KB pickle that copies one memoized list over and over, within a second and 64 MB of heap", () => {
    // Act
    const report = decodeInChild({ payload: "pickleListAmplifier", decoder: "pickle" }, 256);

    // Assert
    expect(report.bytes).toBeGreaterThan(600_000);
    expect(report.outcomes[0]).toMatchObject({ ok: false, name: "SerializationError" });
    expect(report.outcomes[0]!.message).toMatch(/pickleWorkPerByte/);
    expect(report.ms).toBeLessThan(1000);
    expect(report.heapMB).toBeLessThan(64);
  });

  it("decodes the same copying pickle when pickleWorkPerByte allows it, so the limit is what refused it", () => {
    // Arrange
    const small = pickleListAmplifier(100, 100);

    // Act
    const refused = thrown(() => decodePickle(small, { pickleWorkPerByte: 1 }));
    const decoded = decodePickle(small, { pickleWorkPerByte: 64 }) as unknown[][];

    // Assert
    expect(refused).toBeInstanceOf(SerializationError);
    expect(decoded).toHaveLength(100);
    expect(decoded[99]).toHaveLength(100);
  });

  it("refuses more steps than pickleMaxWork whatever the size allows", () => {
    // Arrange
    const copies = pickleListAmplifier(1000, 1000);

    // Act
    const error = thrown(() => decodePickle(copies, { pickleWorkPerByte: 1000, pickleMaxWork: 100_000 }));

    // Assert
    expect((error as Error).message).toMatch(/100000 in all \(pickleMaxWork\)/);
  });

  it("refuses an oversize length before reading: a 4 GiB string in a 16-byte pickle", () => {
    // Arrange: BINUNICODE8 claiming 2^32 bytes.
    const bytes = new Uint8Array([0x80, 4, 0x8d, 0, 0, 0, 0, 1, 0, 0, 0, 0x61, 0x62, 0x63, 0x64, 0x2e]);

    // Act
    const error = thrown(() => decodePickle(bytes));

    // Assert
    expect(error).toBeInstanceOf(SerializationError);
    expect((error as Error).message).toMatch(/length of 4294967296 bytes runs past the end/);
  });

  it("refuses a LONG4 int of a megabyte (Python's int of 4 300 digits is far smaller)", () => {
    // Arrange
    const size = 1 << 20;
    const bytes = new Uint8Array(8 + size);
    bytes.set([0x80, 2, 0x8b, 0, 0, 0x10, 0]);
    bytes[7 + size] = 0x2e;

    // Act
    const error = thrown(() => decodePickle(bytes));

    // Assert
    expect((error as Error).message).toMatch(/an int of 1048576 bytes is over the 2048-byte limit/);
  });

  it("refuses lists nested deeper than maxDepth", () => {
    // Act
    const deep = thrown(() => decodePickle(pickleDeepList(10_000)));
    const shallow = decodePickle(pickleDeepList(DEFAULT_DECODE_LIMITS.maxDepth));

    // Assert
    expect(deep).toBeInstanceOf(SerializationError);
    expect((deep as Error).message).toMatch(/nested more than 128 levels deep \(maxDepth\)/);
    expect(treeShape(shallow).depth).toBe(DEFAULT_DECODE_LIMITS.maxDepth);
  });

  it("refuses shared references that would expand past maxItems when the value is walked as a tree", () => {
    // Arrange: 60 levels of [x, x]: 2^60 values written out, in 600 bytes.
    const bomb = pickleSharedBomb(60);

    // Act
    const error = thrown(() => decodePickle(bomb));

    // Assert
    expect(bomb.length).toBeLessThan(1000);
    expect((error as Error).message).toMatch(/more than 10000000 values once shared references are expanded \(maxItems\)/);
  });

  it("keeps shared references that stay within maxItems", () => {
    // Arrange
    const shared = pickleSharedBomb(10);

    // Act
    const decoded = decodePickle(shared) as unknown[];

    // Assert
    expect(treeShape(decoded).items).toBe(2 ** 11 - 1);
    expect(decoded[0]).toBe(decoded[1]);
  });

  it("refuses a list that contains itself", () => {
    // Act
    const error = thrown(() => decodePickle(pickleCycle()));

    // Assert
    expect((error as Error).message).toMatch(/contains itself/);
  });

  it("reports protocol-0 text that is no number as a SerializationError, not a bare SyntaxError", () => {
    // Arrange: INT "12x" then STOP.
    const bytes = new TextEncoder().encode("I12x\n.");

    // Act
    const error = thrown(() => decodePickle(bytes));

    // Assert
    expect(error).toBeInstanceOf(SerializationError);
    expect((error as Error).message).toMatch(/not an int/);
  });

  it("reports a SETITEM on an unknown class's record as a SerializationError, not a TypeError", () => {
    // Arrange: cfoo\nBar\n ) R  (Bar()) then SETITEM "k" "v" on it.
    const bytes = new Uint8Array([
      ...new TextEncoder().encode("cfoo\nBar\n"),
      0x29, 0x52, 0x8c, 1, 0x6b, 0x8c, 1, 0x76, 0x73, 0x2e,
    ]);

    // Act
    const error = thrown(() => decodePickle(bytes));

    // Assert
    expect(error).toBeInstanceOf(SerializationError);
  });

  it("refuses input over maxBytes with PayloadTooLargeError before reading it", () => {
    // Act
    const error = thrown(() => decodePickle(encodePickle({ a: "x".repeat(2000) }), { maxBytes: 1000 }));

    // Assert
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect(error).toMatchObject({ limit: 1000, code: "ERR_PAYLOAD_TOO_LARGE" });
  });

  it("still reads every pickle a real worker and Python's pickle.dumps wrote", () => {
    // Arrange
    const pickles = capturedPayloads().filter((p) => p.contentType === "application/x-python-serialize");

    // Act
    const statuses = pickles.map((p) => (decodePickle(p.bytes) as { status: string }).status);

    // Assert
    expect(pickles.length).toBeGreaterThanOrEqual(13);
    expect(new Set(statuses)).toEqual(new Set(["SUCCESS", "FAILURE"]));
  });
});

describe("the YAML decoder", () => {
  it("refuses the 20 KB nested sequence of the issue twice in a row, and the process stays up", () => {
    // Act
    const report = decodeInChild({ payload: "yamlNestedSequence", decoder: "yaml", times: 2 });

    // Assert
    expect(report.bytes).toBe(20_002);
    expect(report.outcomes).toHaveLength(2);
    for (const outcome of report.outcomes) {
      expect(outcome).toMatchObject({ ok: false, name: "SerializationError" });
      expect(outcome.message).toMatch(/nested more than 128 levels deep \(maxDepth\)/);
    }
  });

  it("refuses deep flow collections before the yaml library composes them", () => {
    // Act
    const error = thrown(() => decodeYaml(yamlNestedFlow(100_000)));

    // Assert
    expect((error as Error).message).toMatch(/maxDepth/);
  });

  it("reads nesting up to maxDepth", () => {
    // Arrange
    const depth = 20;

    // Act
    const decoded = decodeYaml(yamlNestedSequence(depth), { maxDepth: depth });

    // Assert
    expect(treeShape(decoded).depth).toBe(depth);
  });

  it("catches on the parser's tokens what the parser's error recovery nests past the text scan", () => {
    // Arrange: malformed YAML whose recovery nests one level more than the scan's count (found by fuzzing).
    const text = ": - |\n? - - ";
    const limits = resolveDecodeLimits({ maxDepth: 3 });

    // Act
    scanYaml(text, limits); // passes the scan
    const error = thrown(() => decodeYaml(new TextEncoder().encode(text), limits));

    // Assert
    expect((error as Error).message).toMatch(/maxDepth/);
  });

  it("refuses more nodes than maxItems", () => {
    // Arrange
    const list = new TextEncoder().encode(Array.from({ length: 50 }, (_, i) => `- ${i}\n`).join(""));

    // Act
    const error = thrown(() => decodeYaml(list, { maxItems: 20 }));

    // Assert
    expect((error as Error).message).toMatch(/more than 20 nodes \(maxItems\)/);
  });

  it("counts no brackets or dashes inside quoted scalars, comments or block scalars", () => {
    // Arrange
    const text = `a: '${"[".repeat(500)}'\nb: "${"{".repeat(500)}"\n# ${"- ".repeat(500)}\nc: |\n  ${"- ".repeat(500)}\n`;

    // Act
    const decoded = decodeYaml(new TextEncoder().encode(text)) as Record<string, string>;

    // Assert
    expect(decoded.a).toBe("[".repeat(500));
    expect(decoded.c).toBe(`${"- ".repeat(500)}\n`);
  });
});

describe("the msgpack decoder", () => {
  it("refuses arrays nested deeper than maxDepth before the library builds them", () => {
    // Act
    const error = thrown(() => decodeMsgpack(msgpackNested(100_000)));

    // Assert
    expect(error).toBeInstanceOf(SerializationError);
    expect((error as Error).message).toMatch(/nested more than 128 levels deep \(maxDepth\)/);
  });

  it("refuses a 5-byte array header that claims four billion entries", () => {
    // Act
    const error = thrown(() => decodeMsgpack(msgpackHugeHeader()));

    // Assert
    expect((error as Error).message).toMatch(/declares 4294967295 entries with 0 bytes left/);
  });

  it("refuses more values than maxItems", () => {
    // Arrange
    const bytes = msgpackSerializer.encode(Array.from({ length: 100 }, (_, i) => i));

    // Act
    const error = thrown(() => decodeMsgpack(bytes, { maxItems: 50 }));

    // Assert
    expect((error as Error).message).toMatch(/maxItems/);
  });

  it("reads nesting up to maxDepth", () => {
    // Act
    const decoded = decodeMsgpack(msgpackNested(DEFAULT_DECODE_LIMITS.maxDepth));

    // Assert
    expect(treeShape(decoded).depth).toBe(DEFAULT_DECODE_LIMITS.maxDepth);
  });
});

describe("the JSON decoder", () => {
  it("refuses arrays nested deeper than maxDepth, which JSON.parse alone would build", () => {
    // Act
    const error = thrown(() => decodeJson(jsonNested(100_000)));

    // Assert
    expect(error).toBeInstanceOf(SerializationError);
    expect((error as Error).message).toMatch(/nested more than 128 levels deep \(maxDepth\)/);
  });

  it("counts no brackets inside strings, escaped quotes included", () => {
    // Arrange
    const text = JSON.stringify({ s: `\\"${"[".repeat(1000)}`, t: "{".repeat(1000) });

    // Act
    const decoded = decodeJson(new TextEncoder().encode(text)) as { s: string };

    // Assert
    expect(decoded.s).toBe(`\\"${"[".repeat(1000)}`);
  });

  it("refuses more values than maxItems", () => {
    // Act
    const error = thrown(() => decodeJson(new TextEncoder().encode(JSON.stringify(Array(100).fill(1))), { maxItems: 50 }));

    // Assert
    expect((error as Error).message).toMatch(/maxItems/);
  });

  it("refuses input over maxBytes with PayloadTooLargeError", () => {
    // Act
    const error = thrown(() => decodeJson(new TextEncoder().encode(JSON.stringify("x".repeat(100))), { maxBytes: 10 }));

    // Assert
    expect(error).toBeInstanceOf(PayloadTooLargeError);
  });
});

describe("DecodeLimits", () => {
  it("refuses a limit that is not a positive integer", () => {
    // Act
    const error = thrown(() => resolveDecodeLimits({ maxDepth: 0 }));

    // Assert
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toBe("decodeLimits.maxDepth must be a positive integer, got 0");
  });
});

describe("resultAccept", () => {
  it("keeps a pickle away from the pickle reader of an app that expects JSON: a typed error naming the task, at once", () => {
    // Act: before #14 the redis backend sniffed the bytes as pickle and looped in the reader.
    const report = decodeInChild({ payload: "pickleNegativeLong4", decoder: "stored", resultSerializer: "json" });

    // Assert
    expect(report.outcomes).toEqual([
      expect.objectContaining({ ok: false, name: "ResultDecodeError", code: "ERR_RESULT_DECODE", taskId: "t-hostile" }),
    ]);
    expect(report.outcomes[0]!.message).toMatch(/task t-hostile as json/);
    expect(report.ms).toBeLessThan(1000);
  });

  it("reads a stored meta in the configured format only, never in the format its bytes look like", () => {
    // Arrange
    const meta = { status: "SUCCESS", result: 1, traceback: null, children: [], date_done: null, task_id: "t-1" };
    const bytes = msgpackSerializer.encode(meta);

    // Act
    const error = thrown(() => decodeStoredMeta(bytes, "t-1", { resultSerializer: "json" }));

    // Assert
    expect(error).toBeInstanceOf(ResultDecodeError);
    expect(error).toBeInstanceOf(ResultBackendError);
    expect(error).toMatchObject({ code: "ERR_RESULT_DECODE", taskId: "t-1" });
  });

  it("refuses a format outside resultAccept without decoding it", () => {
    // Arrange
    const accept = resolveResultAccept(["json"]);

    // Act
    const error = thrown(() => decodeResultMeta(pickleNegativeLong4(), "application/x-python-serialize", "t-2", accept, DEFAULT_DECODE_LIMITS));

    // Assert
    expect(error).toMatchObject({ code: "ERR_RESULT_DECODE", taskId: "t-2" });
    expect((error as Error).message).toBe(
      "the result of task t-2 is application/x-python-serialize, which resultAccept (json) does not allow; add it to resultAccept only if the workers are trusted to send it",
    );
  });

  it("accepts serializer names and content types alike, ignoring parameters and case", () => {
    // Act
    const accept = resolveResultAccept(["json", "Application/X-YAML; charset=utf-8", "msgpack"]);

    // Assert
    expect([...accept.contentTypes]).toEqual(["application/json", "application/x-yaml", "application/x-msgpack"]);
  });

  it("refuses an empty list and unknown serializer names with ConfigurationError", () => {
    // Act
    const empty = thrown(() => resolveResultAccept([]));
    const unknown = thrown(() => resolveResultAccept(["bson"]));

    // Assert
    expect(empty).toMatchObject({ code: "ERR_INVALID_OPTION" });
    expect(unknown).toMatchObject({ code: "ERR_INVALID_OPTION" });
    expect((unknown as Error).message).toMatch(/resultAccept: serializer must be one of/);
  });

  it("refuses a redis backend whose resultSerializer its resultAccept would refuse", () => {
    // Act
    const error = thrown(() => new RedisBackend({ url: "redis://127.0.0.1:6379/0", resultSerializer: "pickle", resultAccept: ["json"] }));

    // Assert
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toBe("resultSerializer pickle is not in resultAccept (json): every stored result would be refused");
  });

  it("reads what the workers store when resultSerializer names their format, as the default resultAccept follows it", async () => {
    // Arrange
    const stored = capturedPayloads().filter((p) => p.name.startsWith("worker-"));

    // Act
    const statuses = (await Promise.all(stored.map((p) => decodeStoredMeta(p.bytes, "t", { resultSerializer: p.name.split("-")[1]! })))).map((m) => m.status);

    // Assert
    expect(statuses).toHaveLength(12);
    expect(new Set(statuses)).toEqual(new Set(["SUCCESS", "FAILURE"]));
  });
});
