/**
 * Every serializer against the real thing: random values are encoded here and decoded by kombu
 * 5.2.4 in /usr/bin/python3 (`kombu.serialization.loads`, i.e. kombu's json loads, yaml.safe_load,
 * msgpack.unpackb(raw=False), pickle.loads). Python must get the same value (types included), and
 * re-encoding that value with kombu (`kombu.serialization.dumps`) must give back our exact bytes —
 * which proves the bytes are what a Python producer would send for it. `pyRepr` is checked against
 * Celery's own `saferepr`, the function behind `argsrepr`/`kwargsrepr`.
 *
 * One Python process per serializer answers all cases: one JSON line per case on stdin (the body
 * as base64), one JSON line back on stdout.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serializerMap, serializerNamed } from "../../sdk/serializers/registry.js";
import { yamlSerializer } from "../../sdk/serializers/yaml.js";
import { pyRepr } from "../../sdk/protocol/python-repr.js";
import { decodePickle } from "../../sdk/serializers/pickle.js";
import { PyTuple } from "../../sdk/serializers/python-values.js";
import { SerializationError } from "../../sdk/errors.js";
import { FEATURES, pythonValue, taskBody, typedView, type Format, type Typed } from "../helpers/values.js";
import { allSerializers } from "../../sdk/serializers/all.js";

const serializers = serializerMap(allSerializers);
const getSerializer = (name: string) => serializerNamed(serializers, name);
await yamlSerializer.load();

const PYTHON = "/usr/bin/python3";
const RUNS = 1000;

const ORACLE = String.raw`
import base64, datetime, json, sys
from kombu import serialization
from celery.utils.saferepr import saferepr

fmt = sys.argv[1]
CONTENT = {"json": ("application/json", "utf-8"), "yaml": ("application/x-yaml", "utf-8"),
           "msgpack": ("application/x-msgpack", "binary"), "pickle": ("application/x-python-serialize", "binary")}
ACCEPT = {ct for ct, _ in CONTENT.values()}

def typed(v):
    if v is None: return ["none"]
    if isinstance(v, bool): return ["bool", v]
    if isinstance(v, int): return ["int", str(v)]
    if isinstance(v, float): return ["float", repr(v)]
    if isinstance(v, str): return ["str", v]
    if isinstance(v, bytes): return ["bytes", v.hex()]
    if isinstance(v, datetime.datetime): return ["datetime", v.isoformat(), repr(v.tzinfo)]
    if isinstance(v, tuple): return ["tuple", [typed(x) for x in v]]
    if isinstance(v, list): return ["list", [typed(x) for x in v]]
    if isinstance(v, dict): return ["dict", [[typed(k), typed(x)] for k, x in v.items()]]
    return ["unexpected", type(v).__name__, repr(v)]

def dumps(v):
    _, _, payload = serialization.dumps(v, serializer=fmt)
    return payload.encode("utf-8") if isinstance(payload, str) else payload

for line in sys.stdin:
    req = json.loads(line)
    try:
        body = base64.b64decode(req["body"])
        value = serialization.loads(body, *CONTENT[fmt], accept=ACCEPT)
        again = dumps(value)
        out = {"typed": typed(value), "same": again == body}
        if again != body:
            out["again"] = base64.b64encode(again).decode()
        if "maxlen" in req:
            out["saferepr"] = saferepr(value, req["maxlen"])
    except Exception as exc:
        out = {"error": "%s: %s" % (type(exc).__name__, exc)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
`;

interface Answer {
  typed?: Typed;
  same?: boolean;
  again?: string;
  saferepr?: string;
  error?: string;
}

/** A long-lived `python3` that answers one JSON line per request line, in order. */
class PythonOracle {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly waiting: Array<(line: string) => void> = [];
  private buffer = "";
  private stderr = "";

  constructor(format: Format) {
    this.proc = spawn(PYTHON, ["-c", ORACLE, format]);
    this.proc.stdout.setEncoding("utf8");
    this.proc.stdout.on("data", (chunk: string) => {
      this.buffer += chunk;
      for (let nl = this.buffer.indexOf("\n"); nl >= 0; nl = this.buffer.indexOf("\n")) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        this.waiting.shift()?.(line);
      }
    });
    this.proc.stderr.on("data", (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.proc.on("exit", (code) => {
      for (const resolve of this.waiting.splice(0)) resolve(JSON.stringify({ error: `python exited (${code}): ${this.stderr}` }));
    });
  }

  ask(body: Uint8Array, maxlen?: number | null): Promise<Answer> {
    const request: Record<string, unknown> = { body: Buffer.from(body).toString("base64") };
    if (maxlen !== undefined) request.maxlen = maxlen;
    return new Promise((resolve) => {
      this.waiting.push((line) => resolve(JSON.parse(line) as Answer));
      this.proc.stdin.write(`${JSON.stringify(request)}\n`);
    });
  }

  close(): void {
    this.proc.stdin.end();
  }
}

const FORMATS: Format[] = ["json", "yaml", "msgpack", "pickle"];
const oracles = new Map<Format, PythonOracle>();
const oracle = (format: Format): PythonOracle => oracles.get(format)!;

beforeAll(() => {
  for (const format of FORMATS) oracles.set(format, new PythonOracle(format));
});
afterAll(() => {
  for (const o of oracles.values()) o.close();
});

describe.each(FORMATS)("the %s serializer against kombu in Python", (format) => {
  const serializer = getSerializer(format);

  it(
    "encodes random values that Python decodes to the same value and re-encodes to the same bytes",
    async () => {
      // Prepare
      const values = fc.oneof(pythonValue(FEATURES[format]), taskBody(FEATURES[format]));
      let cases = 0;
      // Act / Assess
      await fc.assert(
        fc.asyncProperty(values, async (value) => {
          cases++;
          const body = serializer.encode(value);
          const answer = await oracle(format).ask(body);
          expect(answer.error).toBeUndefined();
          expect(answer.typed).toEqual(typedView(value, format));
          if (!answer.same) expect(Buffer.from(answer.again!, "base64").toString("latin1")).toBe(Buffer.from(body).toString("latin1"));
          expect(answer.same).toBe(true);
        }),
        { numRuns: RUNS },
      );
      expect(cases).toBeGreaterThanOrEqual(RUNS);
    },
    300_000,
  );
});

describe("pyRepr against Celery's saferepr", () => {
  it(
    "matches saferepr(value, maxlen) for random values, with no limit, Celery's 1024 and small limits",
    async () => {
      // Prepare: pickle carries every kind of value (tuples, bytes, datetimes) to Python intact.
      const serializer = getSerializer("pickle");
      const values = fc.tuple(
        fc.oneof(pythonValue(FEATURES.pickle), taskBody(FEATURES.pickle)),
        fc.oneof(fc.constant(null), fc.constant(1024), fc.integer({ min: 0, max: 80 })),
      );
      // Act / Assess
      await fc.assert(
        fc.asyncProperty(values, async ([value, maxlen]) => {
          const answer = await oracle("pickle").ask(serializer.encode(value), maxlen);
          expect(answer.error).toBeUndefined();
          expect(pyRepr(value, maxlen ?? undefined)).toBe(answer.saferepr);
        }),
        { numRuns: RUNS },
      );
    },
    300_000,
  );
});

describe("pickle framing and batching against CPython", () => {
  const serializer = getSerializer("pickle");
  const distinct = (n: number, width: number): string[] => Array.from({ length: n }, (_, i) => `${i}`.padStart(width, "x"));
  const cases: Array<[string, unknown]> = [
    ["a list of exactly 1000 items", distinct(1000, 3)],
    ["a list of 1001 items (last batch of one)", distinct(1001, 3)],
    ["a dict of exactly 1000 items (empty last batch)", Object.fromEntries(distinct(1000, 4).map((k, i) => [k, i]))],
    ["a dict of 2500 items", Object.fromEntries(distinct(2500, 4).map((k, i) => [k, [i]]))],
    ["several 64 KiB frames of small strings", distinct(20_000, 12)],
    ["a string of 64 KiB written outside frames", ["a", "y".repeat(65_536), "b"]],
    ["bytes of 70 000 bytes between small items", PyTuple.of<unknown>(1, new Uint8Array(70_000).fill(7), 2)],
    ["a frame that fills up right before None", ["a".repeat(65_530), null]],
    ["a frame that fills up inside a datetime", [..."x".repeat(3_270).split("").map((_, i) => `${i}`.padStart(20, "z")), new Date(Date.UTC(2030, 0, 2))]],
    ["a memo past 256 entries (LONG_BINGET)", [...distinct(300, 2), "", "", "a", "a", new Uint8Array([1]), new Uint8Array([1])]],
  ];

  it.each(cases)("writes %s exactly as pickle.dumps(protocol=4)", async (_name, value) => {
    // Act
    const body = serializer.encode(value);
    const answer = await oracle("pickle").ask(body);
    // Assess
    expect(answer.error).toBeUndefined();
    expect(answer.same).toBe(true);
  });

  it("writes a shared list, dict and Date once and refers back to them, as CPython does for shared objects", async () => {
    // Prepare
    const list = [1, 2];
    const dict = { k: "v" };
    const when = new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678));
    // Act
    const body = serializer.encode([list, dict, when, list, dict, when]);
    const answer = await oracle("pickle").ask(body);
    // Assess
    expect(answer.same).toBe(true);
    expect(decodePickle(body)).toEqual([list, dict, when, list, dict, when]);
  });
});

describe("decoding what Python sends", () => {
  const PRODUCER = String.raw`
import base64, datetime, json, pickle, sys
from kombu import serialization
tz = datetime.timezone(datetime.timedelta(hours=2))
value = {
    "status": "SUCCESS",
    "result": [1, 2.5, "h\u00e9llo \U0001F600", None, True, (1, "x"), b"\x00\xff", 2**64, -2**70, {"nested": {"k": []}}],
    "date_done": datetime.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc),
    "naive": datetime.datetime(2030, 1, 2, 3, 4, 5),
    "offset": datetime.datetime(2030, 1, 2, 5, 4, 5, tzinfo=tz),
    "day": datetime.date(2030, 1, 2),
    "strings": ["yes", "n", "1e5", "1:20", "0o17", "~", "", "a\nb", "\ud800"],
}
out = {}
for fmt in ("json", "yaml", "msgpack", "pickle"):
    v = dict(value)
    if fmt in ("json", "msgpack"):
        v = {k: x for k, x in v.items() if k in ("status", "strings")}
        v["result"] = [1, 2.5, "h\u00e9llo \U0001F600", None, True, (1, "x"), 2**64 - 1 if fmt == "msgpack" else 2**70]
        if fmt == "msgpack":
            v["strings"] = v["strings"][:-1]
    _, _, payload = serialization.dumps(v, serializer=fmt)
    out[fmt] = base64.b64encode(payload.encode() if isinstance(payload, str) else payload).decode()
for proto in (2, 3, 5):
    out["pickle%d" % proto] = base64.b64encode(pickle.dumps(value, protocol=proto)).decode()
out["pickle0"] = base64.b64encode(pickle.dumps({"a": [1, 2.5, "h\u00e9\\u", None, True, 2**70]}, protocol=0)).decode()
print(json.dumps(out))
`;
  let produced: Record<string, Uint8Array>;

  beforeAll(async () => {
    const proc = spawn(PYTHON, ["-c", PRODUCER]);
    let text = "";
    proc.stdout.on("data", (chunk: Buffer) => (text += chunk.toString()));
    await new Promise((resolve) => proc.on("close", resolve));
    produced = Object.fromEntries(Object.entries(JSON.parse(text) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, "base64")]));
  });

  const when = new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678));
  const fullResult = [1, 2.5, "h\u00e9llo \u{1F600}", null, true, PyTuple.of<unknown>(1, "x"), new Uint8Array([0, 255]), 2n ** 64n, -(2n ** 70n), { nested: { k: [] } }];
  const strings = ["yes", "n", "1e5", "1:20", "0o17", "~", "", "a\nb", "\ud800"];
  const full = {
    status: "SUCCESS",
    result: fullResult,
    date_done: when,
    naive: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)),
    offset: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)),
    day: new Date(Date.UTC(2030, 0, 2)),
    strings,
  };

  it("reads kombu's json, with tuples as lists", () => {
    expect(getSerializer("json").decode(produced.json!)).toEqual({
      status: "SUCCESS",
      strings,
      result: [1, 2.5, "h\u00e9llo \u{1F600}", null, true, [1, "x"], 2 ** 70],
    });
  });

  it("reads kombu's msgpack, keeping a 64-bit integer exact", () => {
    expect(getSerializer("msgpack").decode(produced.msgpack!)).toEqual({
      status: "SUCCESS",
      strings: strings.slice(0, -1),
      result: [1, 2.5, "h\u00e9llo \u{1F600}", null, true, [1, "x"], 2n ** 64n - 1n],
    });
  });

  it("reads kombu's yaml with PyYAML's types: timestamps, binary, big ints, and strings PyYAML means as strings", () => {
    const decoded = getSerializer("yaml").decode(produced.yaml!) as Record<string, unknown>;
    expect(decoded).toEqual({ ...full, result: [...fullResult.slice(0, 5), [1, "x"], ...fullResult.slice(6)] });
  });

  it.each(["pickle", "pickle2", "pickle3", "pickle5"])("reads %s: tuples, bytes, big ints and datetimes in any offset", (key) => {
    expect(decodePickle(produced[key]!)).toEqual(full);
  });

  it("reads protocol 0 pickles", () => {
    expect(decodePickle(produced.pickle0!)).toEqual({ a: [1, 2.5, "h\u00e9\\u", null, true, 2n ** 70n] });
  });

  it("turns a pickle that calls anything but the known constructors into an inert record, never calling it", () => {
    // Prepare: os.system("true") as protocol 4 (STACK_GLOBAL, TUPLE1, REDUCE).
    const evil = new Uint8Array([0x80, 4, 0x8c, 2, ...Buffer.from("os"), 0x8c, 6, ...Buffer.from("system"), 0x93, 0x8c, 4, ...Buffer.from("true"), 0x85, 0x52, 0x2e]);
    // Act / Assess
    const decoded = decodePickle(evil) as { module: string; name: string; args: unknown[] };
    expect({ module: decoded.module, name: decoded.name, args: [...decoded.args] }).toEqual({ module: "os", name: "system", args: ["true"] });
    expect(Object.isFrozen(decoded)).toBe(true);
  });

  it("refuses a pickle whose value is a class rather than data", () => {
    const bare = new Uint8Array([0x80, 4, 0x8c, 2, ...Buffer.from("os"), 0x8c, 6, ...Buffer.from("system"), 0x93, 0x2e]);
    expect(() => decodePickle(bare)).toThrow(SerializationError);
  });
});
