/**
 * Our messages against Celery 5.2.6's own (../shared/vectors): exchange, routing key, every
 * property, every header with its AMQP type and order, the body bytes, and the whole content-header
 * frame byte for byte once the per-call values (reply_to, origin, countdown-derived times) are
 * set to the captured ones.
 */
import { describe, expect, it } from "vitest";
import { Celery } from "../../sdk/index.js";
import { PyTuple } from "../../sdk/serializers/python-values.js";
import { jsonSerializer } from "../../sdk/serializers/json.js";
import { decodeYaml } from "../../sdk/serializers/yaml-read.js";
import type { ApplyOptions } from "../../sdk/options.js";
import type { TaskMessage } from "../../sdk/protocol/message.js";
import { toFieldValue } from "../../sdk/transports/amqp-properties.js";
import { RecordingTransport } from "../helpers/recording-transport.js";
import { contentHeaderPayload } from "../helpers/amqp-frames.js";
import { loadVector, vectorNames, type Vector } from "../helpers/vectors.js";
import { allSerializers } from "../../sdk/serializers/all.js";

const FULL_ARGS = [1, "two", { three: 3 }, [4.5, null, true, false], "h\u00e9llo \u2603"];
const FULL_KWARGS = { k: "v", n: [1, 2], big: 2 ** 40, neg: -5, f: 0.25, none: null };
const id = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

const full = (n: number, serializer: string): ApplyOptions => ({
  args: FULL_ARGS,
  kwargs: FULL_KWARGS,
  taskId: id(n),
  serializer,
  exchange: "harness.capture",
  routingKey: "video.compress",
  priority: 7,
  eta: "2030-01-02T03:04:05.678901+00:00",
  expires: "2030-01-03T00:00:00+00:00",
});
const countdown = (n: number): ApplyOptions => ({
  args: ["cd"],
  kwargs: { x: 1 },
  taskId: id(n),
  serializer: "json",
  exchange: "harness.capture",
  routingKey: "image.resize.large",
  priority: 3,
  countdown: 60,
  expires: 300,
  timeLimit: 30,
  softTimeLimit: 20,
});

/** The Python call behind each vector, in this SDK's terms. */
const CALLS: Record<string, { task: string; options: ApplyOptions; app?: { defaultQueue?: string; defaultRoutingKey?: string } }> = {
  "p2-json-full": { task: "tasks.echo", options: full(1, "json") },
  "p2-yaml-full": { task: "tasks.echo", options: full(2, "yaml") },
  "p2-msgpack-full": { task: "tasks.echo", options: full(3, "msgpack") },
  "p2-pickle-full": { task: "tasks.echo", options: full(4, "pickle") },
  "p2-json-countdown-expires-seconds": { task: "tasks.echo", options: countdown(5) },
  "p2-json-queue-minimal": { task: "tasks.add", options: { args: PyTuple.of(2, 3), taskId: id(6), queue: "capture" } },
  "p2-json-link": {
    task: "tasks.add",
    options: {
      args: PyTuple.of(2, 3),
      taskId: id(7),
      queue: "capture",
      link: { task: "tasks.add", args: [10] },
      linkError: { task: "tasks.echo", args: ["failed"], immutable: true },
    },
  },
  "p2-json-default-route": {
    task: "tasks.add",
    options: { args: PyTuple.of(2, 3), taskId: id(8) },
    app: { defaultQueue: "capture", defaultRoutingKey: "capture" },
  },
  "p1-json-full": { task: "tasks.echo", options: { ...full(11, "json"), protocol: 1 } },
  "p1-json-countdown-expires-seconds": { task: "tasks.echo", options: { ...countdown(12), protocol: 1 } },
  "p1-json-queue-minimal": { task: "tasks.add", options: { args: PyTuple.of(2, 3), taskId: id(13), queue: "capture", protocol: 1 } },
  "p1-json-default-route": {
    task: "tasks.add",
    options: { args: PyTuple.of(2, 3), taskId: id(14), protocol: 1 },
    app: { defaultQueue: "capture", defaultRoutingKey: "capture" },
  },
};

async function build(v: Vector): Promise<TaskMessage> {
  const call = CALLS[v.name]!;
  const transport = new RecordingTransport();
  const app = new Celery({ broker: transport, origin: "gen12833@vm", serializers: allSerializers, ...call.app });
  await app.sendTask(call.task, call.options);
  return transport.messages[0]!;
}

/** amqplib's type tags for our typed header values, in py-amqp's letters. */
function typedHeaders(m: TaskMessage): Array<[string, { type: string; value: unknown }]> {
  const tag = (v: unknown): { type: string; value: unknown } => {
    if (v === null) return { type: "V", value: null };
    if (typeof v === "string") return { type: "S", value: v };
    if (typeof v === "boolean") return { type: "t", value: v };
    if (Array.isArray(v)) return { type: "A", value: v.map(tag) };
    const typed = v as { "!": string; value: unknown };
    return { type: { int: "I", long: "L", double: "d" }[typed["!"]] ?? typed["!"], value: typed.value };
  };
  return Object.entries(m.properties.headers).map(([k, v]) => [k, tag(toFieldValue(v))]);
}

/** Where Python's per-call values differ by nature, take the captured ones. */
function withCapturedPerCallValues(m: TaskMessage, v: Vector): TaskMessage {
  const headers = { ...m.properties.headers };
  if (v.task_protocol === 2 && v.name.includes("countdown")) {
    headers.eta = v.properties.headers.eta as string;
    headers.expires = v.properties.headers.expires as string;
  }
  return {
    ...m,
    properties: { ...m.properties, headers, replyTo: v.properties.reply_to, ...(v.properties.expiration ? { expiration: v.properties.expiration } : {}) },
  };
}

describe("messages match Celery 5.2.6 field for field", () => {
  it("covers every captured vector", () => {
    expect(Object.keys(CALLS).sort()).toEqual(vectorNames().sort());
  });

  for (const name of Object.keys(CALLS)) {
    describe(name, () => {
      const v = loadVector(name);

      it("goes to the same exchange and routing key", async () => {
        const m = await build(v);
        expect([m.exchange, m.routingKey]).toEqual([v.exchange, v.routing_key]);
      });

      it("sets the same properties", async () => {
        const m = await build(v);
        const p = m.properties;
        expect(p.contentType).toBe(v.properties.content_type);
        expect(p.contentEncoding).toBe(v.properties.content_encoding);
        expect(p.deliveryMode).toBe(v.properties.delivery_mode);
        expect(p.priority ?? null).toBe(v.properties.priority);
        expect(p.correlationId).toBe(v.properties.correlation_id);
        expect(p.replyTo).toMatch(/^[0-9a-f-]{36}$/);
        if (v.properties.expiration === null) expect(p.expiration).toBeUndefined();
        else if (name.includes("countdown")) expect(p.expiration).toBe(v.properties.expiration);
        else expect(Math.abs(Number(p.expiration) - Number(v.properties.expiration) - (v.published_at_unix * 1000 - Date.now()))).toBeLessThan(5_000);
      });

      it("writes the same headers, in order, with the same AMQP types", async () => {
        const m = withCapturedPerCallValues(await build(v), v);
        expect(typedHeaders(m)).toEqual(v.headers_typed);
      });

      if (name.includes("countdown") && v.task_protocol === 2) {
        it("derives eta and expires from one clock reading, as Celery does", async () => {
          const before = Date.now();
          const h = (await build(v)).properties.headers;
          const eta = Date.parse(h.eta as string);
          expect(Date.parse(h.expires as string) - eta).toBe(240_000);
          expect(eta - before).toBeGreaterThanOrEqual(60_000 - 1);
          expect(eta - before).toBeLessThan(61_000);
          expect(h.eta).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$/);
        });
      }

      if (name.includes("yaml")) {
        it("writes a body PyYAML decodes to the same value", async () => {
          const m = await build(v);
          expect(decodeYaml(m.body)).toEqual(v.body_decoded);
        });
      } else {
        it("writes the same body bytes", async () => {
          let m = await build(v);
          if (v.task_protocol === 1 && name.includes("countdown")) {
            // eta/expires come from the clock: compare the rest byte for byte via the captured times.
            const decoded = jsonSerializer.decode(m.body) as Record<string, unknown>;
            const captured = v.body_decoded as Record<string, unknown>;
            expect(Date.parse(decoded.expires as string) - Date.parse(decoded.eta as string)).toBe(240_000);
            m = { ...m, body: jsonSerializer.encode({ ...decoded, eta: captured.eta, expires: captured.expires }) };
          }
          expect(Buffer.from(m.body).toString("base64")).toBe(v.body_base64);
        });
      }

      it("produces the same AMQP content-header frame, byte for byte", async () => {
        const m = withCapturedPerCallValues(await build(v), v);
        expect(contentHeaderPayload(m).toString("base64")).toBe(v.content_header_frame_payload_base64);
      });
    });
  }
});
