/**
 * What the worker will see, read from the message itself (functions/shared/task-view.ts), and the
 * checks that keep one record from closing the relay's channel under its batch-mates. Messages are
 * built by the SDK (which builds without connecting) or taken from Celery's own golden vectors.
 */
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { agreeWithSummary, checkForBroker, clip, MAX_EXPIRATION_MS, MAX_HEADER_TABLE_BYTES, readTaskView, type TaskView } from "../../functions/shared/task-view.js";
import { compress } from "../../sdk/compression.js";
import { EnvelopeError } from "../../sdk/errors.js";
import { Celery } from "../../sdk/node.js";
import type { HeaderValue, MessageProperties, TaskMessage, TaskMeta } from "../../sdk/protocol/message.js";
import { fromBase64 } from "../../sdk/base64.js";
import { loadVector } from "../helpers/vectors.js";

const app = new Celery({ broker: "amqp://guest:guest@127.0.0.1:5672//" });
afterAll(() => app.close());

// Within RabbitMQ's per-message TTL limit (~49.7 days): the SDK turns `expires` into `expiration`.
const ETA = new Date(Date.now() + 86_400_000 + 678);
const EXPIRES = new Date(Date.now() + 2 * 86_400_000);
const encoder = new TextEncoder();

/** A protocol 2 task as the SDK publishes it, with an ETA and an expiry. */
function protocol2(): Promise<TaskMessage> {
  return app.buildMessage("tasks.add", { args: [1, 2], eta: ETA, expires: EXPIRES });
}

/** The same message with some properties changed (headers replaced when given). */
function withProperties(m: TaskMessage, over: Partial<MessageProperties>): TaskMessage {
  return { ...m, properties: { ...m.properties, ...over } };
}

/** The error `act` throws or rejects with (fails the test when it succeeds). */
async function failure(act: () => unknown): Promise<EnvelopeError> {
  try {
    await act();
  } catch (err) {
    return err as EnvelopeError;
  }
  throw new Error("expected a refusal, got none");
}

async function expectEnvelopeRefusal(act: () => unknown, says: RegExp): Promise<void> {
  const err = await failure(act);
  expect(err).toBeInstanceOf(EnvelopeError);
  expect(err.code).toBe("ERR_ENVELOPE");
  expect(err.message).toMatch(says);
}

describe("checkForBroker", () => {
  it("passes a protocol 2 task as the SDK builds it", async () => {
    // Arrange
    const m = await protocol2();

    // Act / Assess
    expect(() => checkForBroker(m)).not.toThrow();
  });

  it.each(["0", "60000", "98012669277", String(MAX_EXPIRATION_MS)])("passes expiration %j", async (expiration) => {
    // Arrange
    const m = withProperties(await protocol2(), { expiration });

    // Act / Assess
    expect(() => checkForBroker(m)).not.toThrow();
  });

  it.each(["abc", "-1", "+5", "1.5", "007", "1e3", " 5", "5 ", "315360000001", "999999999999", "18446744073709551615", ""])("refuses expiration %j", async (expiration) => {
    // Arrange
    const m = withProperties(await protocol2(), { expiration });

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(m), /properties\.expiration .* must be a decimal number of milliseconds/);
  });

  it.each(["contentType", "correlationId", "replyTo"] as const)("refuses a %s over 255 bytes", async (key) => {
    // Arrange
    const m = withProperties(await protocol2(), { [key]: "x".repeat(256) });

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(m), new RegExp(`properties\\.${key} must be at most 255 bytes`));
  });

  it("counts a correlation id in UTF-8 bytes, not characters", async () => {
    // Arrange: 128 characters, 256 bytes.
    const m = withProperties(await protocol2(), { correlationId: "é".repeat(128) });

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(m), /properties\.correlationId must be at most 255 bytes/);
  });

  it("passes a correlation id of exactly 255 bytes", async () => {
    // Arrange
    const m = withProperties(await protocol2(), { correlationId: "x".repeat(255) });

    // Act / Assess
    expect(() => checkForBroker(m)).not.toThrow();
  });

  it.each([
    ["exchange", { exchange: "x".repeat(256) }],
    ["routing key", { routingKey: "x".repeat(256) }],
  ])("refuses a %s over 255 bytes", async (_what, over) => {
    // Arrange
    const m = { ...(await protocol2()), ...over };

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(m), /exchange and routing key must be at most 255 bytes/);
  });

  it("passes a header name of exactly 255 bytes", async () => {
    // Arrange
    const m = withProperties(await protocol2(), { headers: { ["h".repeat(255)]: 1 } });

    // Act / Assess
    expect(() => checkForBroker(m)).not.toThrow();
  });

  it.each([
    ["256 bytes long", { ["h".repeat(256)]: 1 }],
    ["256 bytes of 128 characters", { ["é".repeat(128)]: 1 }],
    ["empty", { "": 1 }],
    ["256 bytes long inside a nested table", { outer: { ["h".repeat(256)]: 1 } }],
  ])("refuses a header name %s", async (_what, headers) => {
    // Arrange
    const m = withProperties(await protocol2(), { headers: headers as Record<string, HeaderValue> });

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(m), /header name .* must be 1-255 bytes/);
  });

  it.each([
    ["at the top level", '{"__proto__": "x"}'],
    ["inside a nested table", '{"outer": {"__proto__": {"polluted": true}}}'],
  ])("refuses a header named __proto__ %s", async (_where, json) => {
    // Arrange: as JSON.parse (the envelope reader) makes it, an own key.
    const m = withProperties(await protocol2(), { headers: JSON.parse(json) as Record<string, HeaderValue> });

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(m), /header name __proto__ is not allowed/);
  });

  it(`passes a headers table of exactly ${MAX_HEADER_TABLE_BYTES} bytes`, async () => {
    // Arrange: 4 (table length) + 1 + 1 (name "x") + 5 (type, string length) + the string.
    const m = withProperties(await protocol2(), { headers: { x: "v".repeat(MAX_HEADER_TABLE_BYTES - 11) } });

    // Act / Assess
    expect(() => checkForBroker(m)).not.toThrow();
  });

  it("refuses a headers table one byte over 64 KiB", async () => {
    // Arrange
    const m = withProperties(await protocol2(), { headers: { x: "v".repeat(MAX_HEADER_TABLE_BYTES - 10) } });

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(m), new RegExp(`headers table is ${MAX_HEADER_TABLE_BYTES + 1} bytes encoded, over ${MAX_HEADER_TABLE_BYTES}`));
  });

  it.each([
    ["nested arrays", { argsrepr: Array.from({ length: 20 }, () => Array.from({ length: 20 }, () => "y".repeat(200))) }],
    ["nested tables", { a: { b: { c: { d: "z".repeat(70_000) } } } }],
    ["thousands of small headers", Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`h${i}`, i]))],
    ["multi-byte strings", { kwargsrepr: "€".repeat(22_000) }],
  ])("refuses a headers table over 64 KiB made of %s", async (_what, headers) => {
    // Arrange
    const m = withProperties(await protocol2(), { headers: headers as Record<string, HeaderValue> });

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(m), /headers table is \d+ bytes encoded, over 65536/);
  });

  it.each([
    ["application/json", "utf-8"],
    ["application/x-yaml", "utf-8"],
    ["application/x-msgpack", "binary"],
    ["application/x-python-serialize", "binary"],
  ])("passes content type %s with encoding %s", async (contentType, contentEncoding) => {
    // Arrange
    const m = withProperties(await protocol2(), { contentType, contentEncoding });

    // Act / Assess
    expect(() => checkForBroker(m)).not.toThrow();
  });

  it.each([
    ["application/json", "binary"],
    ["application/json", "latin-1"],
    ["application/x-yaml", "binary"],
    ["application/x-msgpack", "utf-8"],
    ["application/x-python-serialize", "utf-8"],
  ])("refuses content type %s with encoding %s", async (contentType, contentEncoding) => {
    // Arrange
    const m = withProperties(await protocol2(), { contentType, contentEncoding });

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(m), /content encoding .* does not match/);
  });

  it.each(["text/plain", "application/x-bson", "application/data", "", "constructor", "__proto__", "toString"])("refuses the unknown content type %j", async (contentType) => {
    // Arrange
    const m = withProperties(await protocol2(), { contentType, contentEncoding: "utf-8" });

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(m), /content type .* is not a Celery serializer's/);
  });

  it("passes kombu's zlib compression", async () => {
    // Arrange
    const m = await app.buildMessage("tasks.add", { args: [1, 2], compression: "zlib" });

    // Act / Assess
    expect(() => checkForBroker(m)).not.toThrow();
  });

  it.each(["application/x-bz2", "application/x-lzma", "application/x-brotli", "zlib", 1, null])("refuses compression %j", async (compression) => {
    // Arrange
    const m = await protocol2();
    const out = withProperties(m, { headers: { ...m.properties.headers, compression } });

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(out), /compression .* is not one the relay passes/);
  });

  it.each(["5d2c9e.reply.celery.pidbox", "celery.pidbox", "worker1.celery.pidbox", "celeryev.4b1c", "amq.gen-JzTY20BRgKO"])("refuses replyTo %j, a control queue", async (replyTo) => {
    // Arrange
    const m = withProperties(await protocol2(), { replyTo });

    // Act / Assess
    await expectEnvelopeRefusal(() => checkForBroker(m), /properties\.replyTo .* names a control queue/);
  });
});

describe("readTaskView reads protocol 2 from the headers", () => {
  it("reads id, name, eta and expires as the SDK wrote them", async () => {
    // Arrange
    const m = await protocol2();

    // Act
    const view = await readTaskView(m);

    // Assess
    expect(view).toEqual({ protocol: 2, id: m.meta.id, name: "tasks.add", eta: m.meta.eta, expires: m.meta.expires });
    expect([Date.parse(view.eta!), Date.parse(view.expires!)]).toEqual([ETA.getTime(), EXPIRES.getTime()]);
  });

  it("reads a task without ETA or expiry as nulls", async () => {
    // Arrange
    const m = await app.buildMessage("tasks.add", { args: [1, 2] });

    // Act
    const view = await readTaskView(m);

    // Assess
    expect([view.eta, view.expires]).toEqual([null, null]);
  });

  it("reads the headers, not a protocol 1 body that names another task", async () => {
    // Arrange
    const m = await protocol2();
    const decoy = { ...m, body: encoder.encode(JSON.stringify({ task: "os.system", id: "decoy", args: ["rm -rf /"] })) };

    // Act
    const view = await readTaskView(decoy);

    // Assess
    expect([view.protocol, view.name, view.id]).toEqual([2, "tasks.add", m.meta.id]);
  });

  it.each([
    ["an id that is a number", { id: 7 }, /task id must be a string/],
    ["an empty task name", { task: "" }, /task name must be a string/],
    ["a task name over 255 characters", { task: "t".repeat(256) }, /task name must be a string/],
    ["an eta that is a number", { eta: 1_900_000_000 }, /eta must be a string or null/],
    ["an eta that is not a date", { eta: "tomorrow" }, /eta "tomorrow" is not an ISO 8601 date-time/],
    ["an expires that is not a date", { expires: "2030-13-45T00:00:00" }, /expires .* is not an ISO 8601 date-time/],
  ])("refuses headers with %s", async (_what, over, says) => {
    // Arrange
    const m = await protocol2();
    const bad = withProperties(m, { headers: { ...m.properties.headers, ...over } as Record<string, HeaderValue> });

    // Act / Assess
    await expectEnvelopeRefusal(() => readTaskView(bad), says);
  });
});

describe("readTaskView reads protocol 1 from the body", () => {
  it.each([
    ["json", undefined],
    ["json", "zlib"],
    ["yaml", undefined],
    ["yaml", "zlib"],
    ["msgpack", undefined],
    ["msgpack", "zlib"],
  ] as const)("reads a %s body (compression %s) as the SDK wrote it", async (serializer, compression) => {
    // Arrange
    const m = await app.buildMessage("tasks.add", { args: [1, 2], protocol: 1, serializer, compression, eta: ETA, expires: EXPIRES });

    // Act
    const view = await readTaskView(m);

    // Assess
    expect(view).toEqual({ protocol: 1, id: m.meta.id, name: "tasks.add", eta: m.meta.eta, expires: m.meta.expires });
    expect([Date.parse(view.eta!), Date.parse(view.expires!)]).toEqual([ETA.getTime(), EXPIRES.getTime()]);
  });

  it("reads a protocol 1 message as Celery 5.2.6 itself published it", async () => {
    // Arrange
    const v = loadVector("p1-json-full");
    const m: TaskMessage = {
      exchange: v.exchange,
      routingKey: v.routing_key,
      mandatory: false,
      immediate: false,
      properties: { contentType: "application/json", contentEncoding: "utf-8", deliveryMode: 2, headers: {} },
      body: fromBase64(v.body_base64)!,
      declare: null,
      meta: { id: "", name: "", eta: null },
    };

    // Act
    const view = await readTaskView(m);

    // Assess
    expect(view).toEqual({ protocol: 1, id: "00000000-0000-4000-8000-000000000011", name: "tasks.echo", eta: "2030-01-02T03:04:05.678901+00:00", expires: "2030-01-03T00:00:00+00:00" });
  });

  it("reads a protocol 1 pickle body with the data-only, bounded pickle reader", async () => {
    // Arrange
    const m = await app.buildMessage("tasks.add", { args: [1, 2], protocol: 1, serializer: "pickle", taskId: "p1-pickle" });

    // Act
    const view = await readTaskView(m);

    // Assess
    expect(view).toEqual({ protocol: 1, id: "p1-pickle", name: "tasks.add", eta: null, expires: null });
  });

  it("reads a compressed protocol 1 pickle body as well", async () => {
    // Arrange
    const m = await app.buildMessage("tasks.add", { args: [1, 2], protocol: 1, serializer: "pickle", compression: "zlib", taskId: "p1-pickle-z" });

    // Act
    const view = await readTaskView(m);

    // Assess
    expect(view.id).toBe("p1-pickle-z");
  });

  it("refuses a protocol 1 pickle body that would build more than the relay's limits allow", async () => {
    // Arrange: a list of 120 000 small ints (240 KB, under the size cap) (protocol 2 opcodes, BININT1 + APPENDS), over maxItems.
    const m = await app.buildMessage("tasks.add", { args: [1, 2], protocol: 1, serializer: "pickle" });
    const items = new Uint8Array(120_000 * 2).map((_, i) => (i % 2 === 0 ? 0x4b : 1));
    const bomb = new Uint8Array([0x80, 0x02, 0x5d, 0x28, ...items, 0x65, 0x2e]);

    // Act / Assess
    await expectEnvelopeRefusal(() => readTaskView({ ...m, body: bomb }), /not valid application\/x-python-serialize within the relay's decoding limits/);
  });

  it("refuses a protocol 1 body that is a list", async () => {
    // Arrange
    const m = await app.buildMessage("tasks.add", { args: [1, 2], protocol: 1 });
    const list = { ...m, body: encoder.encode('["tasks.add", "id"]') };

    // Act / Assess
    await expectEnvelopeRefusal(() => readTaskView(list), /protocol 1 body must be a mapping/);
  });

  it("refuses a protocol 1 body that is not valid JSON", async () => {
    // Arrange
    const m = await app.buildMessage("tasks.add", { args: [1, 2], protocol: 1 });
    const broken = { ...m, body: encoder.encode("{'task': 'tasks.add'}") };

    // Act / Assess
    await expectEnvelopeRefusal(() => readTaskView(broken), /protocol 1 body is not valid application\/json/);
  });

  it("refuses a deeply nested protocol 1 YAML body before the yaml library recurses into it", async () => {
    // Arrange: 20 KB of nested flow sequences (this aborted V8 inside the yaml library).
    const m = await app.buildMessage("tasks.add", { args: [1, 2], protocol: 1, serializer: "yaml" });
    const nested = { ...m, body: encoder.encode(`task: tasks.add\nid: x\nargs: ${"[".repeat(10_000)}${"]".repeat(10_000)}\n`) };

    // Act / Assess
    await expectEnvelopeRefusal(() => readTaskView(nested), /not valid application\/x-yaml within the relay's decoding limits/);
    await expectEnvelopeRefusal(() => readTaskView(nested), /not valid application\/x-yaml/);
  });

  it("refuses a compressed protocol 1 body that does not decompress", async () => {
    // Arrange
    const m = await app.buildMessage("tasks.add", { args: [1, 2], protocol: 1, compression: "zlib" });
    const corrupt = { ...m, body: m.body.slice(0, m.body.length - 6) };

    // Act / Assess
    await expectEnvelopeRefusal(() => readTaskView(corrupt), /compressed body does not decompress/);
  });

  it("refuses a protocol 1 body over 256 KiB without decoding it", async () => {
    // Arrange
    const m = await app.buildMessage("tasks.add", { args: ["x".repeat(300_000)], protocol: 1 });

    // Act / Assess
    await expectEnvelopeRefusal(() => readTaskView(m), /protocol 1 body over 262144 bytes cannot be checked/);
  });

  describe("against a zlib bomb", () => {
    afterEach(() => {
      vi.unstubAllGlobals();
    });

    it("stops inflating soon after the limit instead of inflating it all", async () => {
      // Arrange: 64 MiB of zeros compress to ~64 KiB. Count what the inflater hands out.
      const body = await compress(new Uint8Array(64 * 1024 * 1024));
      const Real = globalThis.DecompressionStream;
      let inflated = 0;
      class CountingDecompressionStream {
        readonly writable: WritableStream<BufferSource>;
        readonly readable: ReadableStream<Uint8Array>;
        constructor(format: CompressionFormat) {
          const real = new Real(format);
          this.writable = real.writable;
          this.readable = real.readable.pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, controller) {
                inflated += chunk.length;
                controller.enqueue(chunk);
              },
            }),
          );
        }
      }
      vi.stubGlobal("DecompressionStream", CountingDecompressionStream);
      const m = await app.buildMessage("tasks.add", { args: [1, 2], protocol: 1, compression: "zlib" });
      const bomb = { ...m, body };

      // Act
      const err = await failure(() => readTaskView(bomb));

      // Assess
      expect(err.message).toMatch(/decompresses too large to check/);
      expect(inflated).toBeLessThan(4 * 1024 * 1024);
    });
  });
});

describe("agreeWithSummary", () => {
  const view: TaskView = { protocol: 2, id: "t-1", name: "tasks.add", eta: "2030-01-02T03:04:05+00:00", expires: "2030-01-03T00:00:00+00:00" };
  const summary: TaskMeta = { id: "t-1", name: "tasks.add", eta: "2030-01-02T03:04:05+00:00", expires: "2030-01-03T00:00:00+00:00" };

  it("returns the message's task when the summary agrees", () => {
    // Act
    const meta = agreeWithSummary(view, summary);

    // Assess
    expect(meta).toStrictEqual({ id: "t-1", name: "tasks.add", eta: "2030-01-02T03:04:05+00:00", expires: "2030-01-03T00:00:00+00:00" });
  });

  it.each([
    ["id", { id: "t-2" }],
    ["name", { name: "tasks.harmless" }],
    ["eta", { eta: null }],
    ["eta", { eta: "2030-01-02T03:04:06+00:00" }],
    ["expires", { expires: null }],
    ["expires", { expires: "2031-01-01T00:00:00+00:00" }],
  ])("refuses a summary whose %s disagrees with the message", async (field, over) => {
    // Act / Assess
    await expectEnvelopeRefusal(() => agreeWithSummary(view, { ...summary, ...over }), new RegExp(`task\\.${field} .* disagrees with the message's`));
  });

  it("refuses a summary with an ETA for a message without one", async () => {
    // Act / Assess
    await expectEnvelopeRefusal(() => agreeWithSummary({ ...view, eta: null }, summary), /task\.eta/);
  });

  it("accepts a summary without expires (an older writer) and takes the message's", () => {
    // Arrange
    const { expires: _omitted, ...older } = summary;

    // Act
    const meta = agreeWithSummary(view, older);

    // Assess
    expect(meta.expires).toBe("2030-01-03T00:00:00+00:00");
  });

  it("keeps the summary's sender and stage, which only the envelope carries", () => {
    // Act
    const meta = agreeWithSummary(view, { ...summary, sender: "AROAEDGE:s1", stage: "release" });

    // Assess
    expect([meta.sender, meta.stage]).toEqual(["AROAEDGE:s1", "release"]);
  });

  it("cuts long claimed values in the refusal", async () => {
    // Act
    const err = await failure(() => agreeWithSummary(view, { ...summary, name: "n".repeat(1_000_000) }));

    // Assess
    expect(err.message.length).toBeLessThan(400);
  });
});

describe("clip", () => {
  it("quotes a short string whole", () => {
    // Act
    const out = clip("tasks.add");

    // Assess
    expect(out).toBe('"tasks.add"');
  });

  it("keeps a string of exactly the limit whole", () => {
    // Act
    const out = clip("x".repeat(64));

    // Assess
    expect(out).toBe(JSON.stringify("x".repeat(64)));
  });

  it("cuts a 1 MiB string to the limit and says how long it was", () => {
    // Act
    const out = clip("x".repeat(1_048_576));

    // Assess
    expect(out).toBe(`${JSON.stringify("x".repeat(64))}… (1048576 chars)`);
  });

  it("keeps the output bounded for a 1 MiB string of characters JSON escapes", () => {
    // Act
    const out = clip("\u0000".repeat(1_048_576));

    // Assess
    expect(out.length).toBeLessThan(64 * 6 + 40);
  });

  it("shows a value that is not a string as its JSON, cut as well", () => {
    // Act
    const out = clip({ method: "x".repeat(1_048_576) });

    // Assess: {"method":" (11) + the string + "} (2).
    expect(out).toBe(`{"method":"${"x".repeat(53)}… (1048589 chars)`);
  });

  it("shows a short value that is not a string as its JSON", () => {
    // Act
    const out = [clip(7), clip(null), clip(["a"])];

    // Assess
    expect(out).toEqual(["7", "null", '["a"]']);
  });

  it("honours a smaller limit", () => {
    // Act
    const out = clip("abcdefgh", 3);

    // Assess
    expect(out).toBe('"abc"… (8 chars)');
  });
});
