/**
 * The serializers and `pyRepr` against what Celery 5.2.6 / kombu 5.2.4 actually produced: the
 * golden vectors (../shared/vectors) byte for byte, and tables of outputs captured from
 * CPython 3.11 (`repr`, `kombu.utils.json.dumps`, `yaml.safe_dump`, `pickle.dumps(protocol=4)`,
 * `celery.utils.saferepr.saferepr`). Random values against a live Python are in
 * python-roundtrip.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ConfigurationError, SerializationError } from "../../sdk/errors.js";
import { formatPyFloat, pyRepr } from "../../sdk/protocol/python-repr.js";
import { checkValue, MAX_DEPTH, type CheckOptions } from "../../sdk/serializers/check.js";
import { serializerForContentType, serializerMap, serializerNamed } from "../../sdk/serializers/registry.js";
import { JSON_RULES } from "../../sdk/serializers/json.js";
import { MSGPACK_RULES } from "../../sdk/serializers/msgpack.js";
import { decodePickle, encodePickle, PICKLE_RULES } from "../../sdk/serializers/pickle.js";
import { PyTuple } from "../../sdk/serializers/python-values.js";
import type { Serializer } from "../../sdk/serializers/serializer.js";
import { YAML_RULES, yamlSerializer } from "../../sdk/serializers/yaml.js";
import { loadVector, vectorNames } from "../helpers/vectors.js";
import { allSerializers } from "../../sdk/serializers/all.js";

const serializers = serializerMap(allSerializers);
const getSerializer = (name: string): Serializer => serializerNamed(serializers, name);
await yamlSerializer.load();

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

/** A captured body as the value our message builder hands to the serializer. */
function bodyOf(name: string): unknown {
  const decoded = loadVector(name).body_decoded;
  // Protocol 2 bodies are the tuple (args, kwargs, embed); args was a list in these calls.
  return Array.isArray(decoded) ? PyTuple.of(decoded[0], decoded[1], decoded[2]) : decoded;
}

const SERIALIZER_OF: Record<string, string> = { json: "json", yaml: "yaml", msgpack: "msgpack", pickle: "pickle" };
const serializerFor = (name: string): Serializer => getSerializer(SERIALIZER_OF[name.split("-")[1]!]!);
const BODY_VECTORS = vectorNames().filter((n) => !n.endsWith("countdown-expires-seconds")).sort();

describe("golden vectors", () => {
  it.each(BODY_VECTORS)("encodes the body of %s byte for byte", (name) => {
    // Prepare
    const vector = loadVector(name);
    // Act
    const body = serializerFor(name).encode(bodyOf(name));
    // Assess
    expect(Buffer.from(body).toString("base64")).toBe(vector.body_base64);
  });

  it.each(vectorNames().sort())("decodes the body of %s to the value Celery sent", (name) => {
    const vector = loadVector(name);
    expect(serializerFor(name).decode(Buffer.from(vector.body_base64, "base64"))).toEqual(vector.body_decoded);
  });

  it("sends the content types and encodings kombu registers", () => {
    const props = (name: string): [string, string] => [getSerializer(name).contentType, getSerializer(name).contentEncoding];
    expect(props("json")).toEqual([loadVector("p2-json-full").properties.content_type, "utf-8"]);
    expect(props("yaml")).toEqual([loadVector("p2-yaml-full").properties.content_type, "utf-8"]);
    expect(props("msgpack")).toEqual([loadVector("p2-msgpack-full").properties.content_type, "binary"]);
    expect(props("pickle")).toEqual([loadVector("p2-pickle-full").properties.content_type, "binary"]);
  });
});

describe("pyRepr", () => {
  it.each(vectorNames().filter((n) => n.startsWith("p2-")).sort())("reproduces argsrepr and kwargsrepr of %s", (name) => {
    // Prepare: `add.apply_async((2, 3))` passed a tuple; the other calls passed lists.
    const vector = loadVector(name);
    // The yaml body came back with sorted keys; the call's own order is the json vector's.
    const [args, kwargs] = (name === "p2-yaml-full" ? loadVector("p2-json-full") : vector).body_decoded as [unknown[], unknown];
    const sentArgs = vector.apply_async.includes("apply_async((") ? PyTuple.fromArray(args) : args;
    // Act / Assess
    expect(pyRepr(sentArgs, 1024)).toBe(vector.properties.headers.argsrepr);
    expect(pyRepr(kwargs, 1024)).toBe(vector.properties.headers.kwargsrepr);
  });

  // saferepr(value, maxlen) from Celery 5.2.6.
  const when = new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678));
  it.each<[string, unknown, number | undefined, string]>([
    ["a tuple", PyTuple.of(2, 3), undefined, "(2, 3)"],
    ["a one-element tuple", PyTuple.of(1), undefined, "(1,)"],
    ["lists nested four deep", [[[[1]]]], undefined, "[[[[...]]]]"],
    ["dicts collapsed at the third level", [PyTuple.of(1), { a: { b: { c: 1 } } }], undefined, "[(1,), {'a': {'b': {...}}}]"],
    ["a str with a single quote", "it's", undefined, "'it\\'s'"],
    ["a str with double quotes", 'say "hi"', undefined, "'say \"hi\"'"],
    ["a str with a newline and a backslash, unescaped", "a\nb\\c", undefined, "'a\nb\\c'"],
    ["UTF-8 bytes", new Uint8Array([0x61, 0x62, 0x63]), undefined, "b'abc'"],
    ["non-UTF-8 bytes, as hex", new Uint8Array([0xff, 0x00]), undefined, "b'ff00'"],
    ["bytes with a quote, unescaped", new TextEncoder().encode("it's"), undefined, "b'it's'"],
    ["a Date", when, undefined, "datetime.datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)"],
    ["a Date at midnight", new Date(Date.UTC(2030, 0, 3)), undefined, "datetime.datetime(2030, 1, 3, 0, 0, tzinfo=datetime.timezone.utc)"],
    ["None, booleans and numbers", [null, true, false, 4, 4.5, -0, 2 ** 53, 10n], undefined, "[None, True, False, 4, 4.5, 0, 9007199254740992.0, 10]"],
    ["strings cut at the budget", ["x".repeat(30), "y".repeat(30)], 20, "['xxxxxxxxxxxxxxxxxxx...', ...]"],
    ["a list cut mid-way, with Celery's stray separator", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 10, "[1, 2, 3, , ...]"],
    ["a dict cut after the key", { "key one": "value one two three" }, 12, "{'key one': , ...}"],
    ["a str cut back to the last space", "hello world foo", 8, "'hello...'"],
    ["bytes cut at the budget", new Uint8Array([97, 98, 99, 100, 101, 102]), 3, "b'abc...'"],
    ["an int cut at the budget", 12345678901, 5, "12345..."],
    ["nested lists closing their brackets", [[1, 2], [3, 4]], 3, "[[1..., ...]]"],
    ["a zero budget, dropping the opening bracket like Celery", [], 0, ", ...]"],
    ["astral characters counted as one each", "\u{1F600}\u{1F600}\u{1F600}", 2, "'\u{1F600}\u{1F600}...'"],
  ])("writes %s as Celery's saferepr does", (_name, value, maxLength, expected) => {
    expect(pyRepr(value, maxLength)).toBe(expected);
  });

  it("never throws, even for values no serializer accepts", () => {
    const circular: unknown[] = [];
    circular.push(circular);
    expect(pyRepr([undefined, () => 1, new Map(), circular])).toBe("[<undefined>, <function anonymous>, <Map object>, [<Recursion on list>]]");
  });
});

describe("Python float repr", () => {
  it.each<[number, string]>([
    [0.25, "0.25"],
    [1e-7, "1e-07"],
    [1e16, "1e+16"],
    [1e15, "1000000000000000.0"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [123456789012345.6, "123456789012345.6"],
    [1.7976931348623157e308, "1.7976931348623157e+308"],
    [5e-324, "5e-324"],
    [2 ** 53, "9007199254740992.0"],
    [1e22, "1e+22"],
    [0.1 + 0.2, "0.30000000000000004"],
    [-1.5, "-1.5"],
    [NaN, "nan"],
    [Infinity, "inf"],
    [-Infinity, "-inf"],
    [1e20, "1e+20"],
  ])("formats %s as repr() does", (value, expected) => {
    expect(formatPyFloat(value)).toBe(expected);
  });
});

describe("json", () => {
  const json = getSerializer("json");

  it("escapes like json.dumps with ensure_ascii, including surrogate pairs and unpaired surrogates", () => {
    // kombu.utils.json.dumps(['"\\\n\r\t\b\f\x01\x7f', "é☃😀", "\ud800", "/<>&'", 1e20, -0.0]), bar -0.0 (a JS -0 is the int 0)
    const body = json.encode(['"\\\n\r\t\b\f\u0001\u007f', "é☃😀", "\ud800", "/<>&'", 1e20, -0]);
    expect(text(body)).toBe(String.raw`["\"\\\n\r\t\b\f\u0001\u007f", "\u00e9\u2603\ud83d\ude00", "\ud800", "/<>&'", 1e+20, 0]`);
  });

  it("writes integer-valued numbers as ints, others as Python floats, and safe bigints as ints", () => {
    expect(text(json.encode([4, 4.0, 4.5, 2 ** 53 - 1, 2 ** 53, 1e-7, 12n, -(2n ** 53n - 1n)]))).toBe(
      "[4, 4, 4.5, 9007199254740991, 9007199254740992.0, 1e-07, 12, -9007199254740991]",
    );
  });

  it("writes a Date the way kombu's JSONEncoder writes an aware UTC datetime", () => {
    const dates = [new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678)), new Date(Date.UTC(2030, 0, 2, 3, 4, 5))];
    expect(text(json.encode(dates))).toBe('["2030-01-02T03:04:05.678000Z", "2030-01-02T03:04:05Z"]');
  });

  it("wraps malformed input in a SerializationError", () => {
    expect(() => json.decode(new TextEncoder().encode("[1, NaN]"))).toThrow(SerializationError);
  });
});

describe("yaml", () => {
  const yaml = getSerializer("yaml");

  it("writes what yaml.safe_dump writes for floats, YAML-significant strings, non-ASCII, long keys and long lines", () => {
    const body = yaml.encode(["1e-07", 1e-7, "yes", "café", { ["k".repeat(123)]: 1 }, "word ".repeat(20)]);
    expect(text(body)).toBe(
      "- 1e-07\n- 1.0e-07\n- 'yes'\n- \"caf\\xE9\"\n- ? " +
        "k".repeat(123) +
        "\n  : 1\n- 'word word word word word word word word word word word word word word word word\n  word word word word '\n",
    );
  });

  it("writes Dates as PyYAML timestamps, so the worker gets aware datetimes", () => {
    const body = yaml.encode([new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678)), new Date(Date.UTC(2030, 0, 2, 3, 4, 5))]);
    expect(text(body)).toBe("- 2030-01-02 03:04:05.678000+00:00\n- 2030-01-02 03:04:05+00:00\n");
  });

  it("marks the end of a document whose root is a plain scalar, as PyYAML does", () => {
    expect(text(yaml.encode("abc"))).toBe("abc\n...\n");
  });

  it("reads y and n as strings and timestamps as Dates, as PyYAML does", () => {
    const decoded = yaml.decode(new TextEncoder().encode("- y\n- n\n- 1e5\n- 2030-01-02 03:04:05.678000+00:00\n- !!binary |\n  YWI=\n"));
    expect(decoded).toEqual(["y", "n", "1e5", new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678)), new Uint8Array([0x61, 0x62])]);
  });
});

describe("msgpack", () => {
  it("writes a Date as the same string the json serializer sends", () => {
    // msgpack.packb(["2030-01-02T03:04:05.678000Z"], use_bin_type=True)
    expect(hex(getSerializer("msgpack").encode([new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678))]))).toBe(
      "91bb323033302d30312d30325430333a30343a30352e3637383030305a",
    );
  });

  it("writes bytes as bin and safe bigints as the smallest int", () => {
    expect(hex(getSerializer("msgpack").encode([new Uint8Array([1, 2]), 5n, 2n ** 40n]))).toBe("93c4020102" + "05" + "cf0000010000000000");
  });
});

describe("pickle", () => {
  it("writes a Date as an aware datetime with timezone.utc, byte for byte", () => {
    // pickle.dumps(datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc), protocol=4)
    expect(hex(encodePickle(new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678))))).toBe(
      "80049557000000000000008c086461746574696d65948c086461746574696d65949394430a07ee01020304050a58709468008c0874696d657a6f6e6594939468008c0974696d6564656c74619493944b004b004b008794529485945294869452942e",
    );
  });

  it("reads back what it writes", () => {
    const value = PyTuple.of<unknown>([1, -5, 2 ** 40, 0.25, "héllo", new Uint8Array([0, 255]), null, true], { k: PyTuple.of() }, new Date(Date.UTC(2030, 0, 2)));
    expect(decodePickle(encodePickle(value))).toEqual(value);
  });

  it("keeps a __proto__ key as an ordinary key when reading", () => {
    const value = JSON.parse('{"__proto__": 1}') as Record<string, unknown>;
    const decoded = decodePickle(encodePickle(value)) as Record<string, unknown>;
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(Object.keys(decoded)).toEqual(["__proto__"]);
  });

  it("reports an unsupported opcode with its position", () => {
    expect(() => decodePickle(new Uint8Array([0x80, 4, 0x53, 0x2e]))).toThrow(/at byte 2: opcode 0x53/);
  });
});

describe("checkValue", () => {
  class Point {
    x = 1;
  }
  const circularList: unknown[] = [];
  circularList.push(circularList);
  const circularDict: Record<string, unknown> = {};
  circularDict.self = { again: circularDict };
  let deep: unknown = 1;
  for (let i = 0; i <= MAX_DEPTH; i++) deep = [deep];

  it.each<[string, string, unknown, string, RegExp]>([
    ["undefined", "json", [1, { when: undefined }], "args[1].when", /undefined/],
    ["a function", "json", { f: () => 1 }, "args.f", /function/],
    ["a symbol", "yaml", [Symbol("s")], "args[0]", /symbol/],
    ["NaN in json", "json", { x: [NaN] }, "args.x[0]", /NaN/],
    ["Infinity in json", "json", [Infinity], "args[0]", /Infinity/],
    ["a bigint beyond 2^53 - 1", "pickle", [2n ** 53n], "args[0]", /bigint/],
    ["an invalid Date", "json", [new Date(NaN)], "args[0]", /invalid Date/],
    ["a Date after year 9999", "pickle", [new Date("+010000-01-01T00:00:00Z")], "args[0]", /invalid Date/],
    ["a Map", "json", { m: new Map() }, "args.m", /Map/],
    ["a Set", "msgpack", [new Set()], "args[0]", /Set/],
    ["a class instance", "pickle", [new Point()], "args[0]", /Point/],
    ["an Int16Array", "msgpack", [new Int16Array(2)], "args[0]", /Uint8Array/],
    ["bytes in json", "json", { data: new Uint8Array(1) }, "args.data", /bytes/],
    ["an unpaired surrogate in msgpack", "msgpack", ["ok", "\ud800"], "args[1]", /surrogate/],
    ["an unpaired surrogate in a msgpack key", "msgpack", [{ "\udc00": 1 }], 'args[0]["\\udc00"]', /surrogate/],
    ["a circular list", "json", circularList, "args[0]", /circular/],
    ["a circular dict", "yaml", circularDict, "args.self.again", /circular/],
    ["symbol keys", "json", [{ [Symbol("k")]: 1 }], "args[0]", /symbol keys/],
    ["a hole in an array", "json", [1, , 3], "args[1]", /undefined/],
    ["a key that is no identifier", "json", { "a b": undefined }, 'args["a b"]', /undefined/],
    ["nesting deeper than the limit", "pickle", deep, `args${"[0]".repeat(MAX_DEPTH)}`, /nested/],
  ])("refuses %s with the path where it sits", (_what, format, value, path, message) => {
    // Act
    const act = (): void => checkValue(value, rulesOf(format), "args");
    // Assess
    expect(act).toThrow(SerializationError);
    expect(act).toThrow(message);
    try {
      act();
    } catch (err) {
      expect((err as SerializationError).path).toBe(path);
      expect((err as SerializationError).code).toBe("ERR_SERIALIZATION");
    }
  });

  it.each<[string, string, unknown]>([
    ["NaN and infinities in yaml", "yaml", [NaN, Infinity, -Infinity]],
    ["NaN and infinities in msgpack", "msgpack", [NaN, Infinity]],
    ["NaN and infinities in pickle", "pickle", [NaN, -Infinity]],
    ["bigints up to 2^53 - 1", "json", [2n ** 53n - 1n, -(2n ** 53n - 1n)]],
    ["the same object twice (not a cycle)", "json", ((shared) => [shared, { again: shared }])({ k: 1 })],
    ["objects without a prototype", "json", [Object.create(null) as object]],
    ["unpaired surrogates in json", "json", ["\ud800"]],
    ["bytes in pickle", "pickle", [new Uint8Array(3)]],
  ])("accepts %s", (_what, format, value) => {
    expect(() => checkValue(value, rulesOf(format), "args")).not.toThrow();
    expect(() => getSerializer(format).encode(value)).not.toThrow();
  });

  it("names the path from the body when the serializer itself refuses a value", () => {
    const body = PyTuple.of([1, { when: undefined }], {}, {});
    expect(() => getSerializer("json").encode(body)).toThrow(expect.objectContaining({ path: "body[0][1].when" }));
  });
});

function rulesOf(format: string): CheckOptions {
  return { json: JSON_RULES, yaml: YAML_RULES, msgpack: MSGPACK_RULES, pickle: PICKLE_RULES }[format]!;
}

describe("the serializer registry", () => {
  it("refuses an unknown name with ERR_INVALID_OPTION, naming the value and the known names", () => {
    const act = (): Serializer => getSerializer("xml");
    expect(act).toThrow(ConfigurationError);
    expect(act).toThrow(expect.objectContaining({ code: "ERR_INVALID_OPTION" }));
    expect(act).toThrow(/"xml"/);
    expect(act).toThrow(/json, yaml, msgpack, pickle/);
  });

  it("finds the decoder for a content type, ignoring case and parameters", () => {
    expect(serializerForContentType(serializers, "application/json; charset=utf-8")?.name).toBe("json");
    expect(serializerForContentType(serializers, "APPLICATION/X-YAML")?.name).toBe("yaml");
    expect(serializerForContentType(serializers, "application/x-python-serialize")?.name).toBe("pickle");
    expect(serializerForContentType(serializers, "application/x-msgpack")?.name).toBe("msgpack");
    expect(serializerForContentType(serializers, "text/csv")).toBeUndefined();
  });

  it("adds a custom serializer under its name and content type, to that app's serializers only", () => {
    // Prepare
    const reversed: Serializer = {
      name: "test-reversed",
      contentType: "application/x-test-reversed",
      contentEncoding: "binary",
      encode: (value) => new Uint8Array(value as number[]).reverse(),
      decode: (bytes) => Array.from(bytes).reverse(),
    };
    // Act
    const mine = serializerMap([reversed]);
    // Assess
    expect(serializerNamed(mine, "test-reversed")).toBe(reversed);
    expect(serializerForContentType(mine, "application/x-test-reversed")).toBe(reversed);
    expect(Array.from(serializerNamed(mine, "test-reversed").encode([1, 2, 3]))).toEqual([3, 2, 1]);
    expect(serializerForContentType(serializers, "application/x-test-reversed")).toBeUndefined();
  });
});
