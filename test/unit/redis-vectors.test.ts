/**
 * Our Redis-broker writes against kombu 5.2.4's own (test/fixtures/redis-vectors, captured by
 * capture.py from Python's `send_task` with no worker running): the list key each message lands
 * on (priority steps, `sep`, `global_keyprefix`), the binding members the producer records, the
 * fanout channel, and the stored message field for field — ids, delivery tags, reply_to, origin
 * and the clock-derived eta/expires aside. Topic matching is checked against kombu's own verdicts.
 */
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { inflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { Celery } from "../../sdk/index.js";
import { PyTuple } from "../../sdk/serializers/python-values.js";
import { allSerializers } from "../../sdk/serializers/all.js";
import type { ApplyOptions } from "../../sdk/options.js";
import type { TaskMessage } from "../../sdk/protocol/message.js";
import { declaredTypeOf, exchangeTypeOf, knownExchangeTypes, lookupQueues, parseTable, topicMatches } from "../../sdk/transports/redis-route.js";
import {
  bindingKey,
  bindingMember,
  declaredBinding,
  fanoutChannel,
  kombuMessage,
  messagePriority,
  queueKey,
  redisLayout,
  topicPattern,
  type RedisLayout,
} from "../../sdk/transports/redis-wire.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

const DIR = fileURLToPath(new URL("../fixtures/redis-vectors/", import.meta.url));
const load = <T>(name: string): T => JSON.parse(readFileSync(`${DIR}${name}.json`, "utf8")) as T;

interface StoredMessage {
  body: string;
  "content-encoding": string;
  "content-type": string;
  headers: Record<string, unknown>;
  properties: Record<string, unknown> & { delivery_info: { exchange: string; routing_key: string } };
}
interface RedisVector {
  case: string;
  db: number;
  transport_options: Record<string, unknown>;
  calls: Array<Record<string, unknown>>;
  lists: Record<string, StoredMessage[]>;
  sets: Record<string, string[]>;
  published: Array<{ channel: string; message: StoredMessage }>;
}

const QUEUES = {
  "rv.q": { exchange: "rv.q", exchangeType: "direct" as const, routingKey: "rv.q" },
  "rv.video": { exchange: "rv.topic", exchangeType: "topic" as const, routingKey: "video.#" },
  // Celery gave the fanout queue, declared without a routing key, the default one.
  "rv.bq": { exchange: "rv.bcast", exchangeType: "fanout" as const, routingKey: "rv.q" },
};

/** A captured Python `send_task` call in this SDK's terms. */
function toApply(call: Record<string, unknown>): { name: string; options: ApplyOptions } {
  const args = call.args as unknown[] | undefined;
  const options: Record<string, unknown> = {
    taskId: call.task_id,
    // Python tuples stay tuples in argsrepr; a list stays a list.
    args: args === undefined ? undefined : args.length === 2 && args.every((a) => typeof a === "number") ? PyTuple.of(...(args as number[])) : args,
  };
  for (const [py, ts] of [["kwargs", "kwargs"], ["queue", "queue"], ["priority", "priority"], ["countdown", "countdown"], ["expires", "expires"], ["serializer", "serializer"], ["compression", "compression"], ["exchange", "exchange"], ["routing_key", "routingKey"]] as const) {
    if (call[py] !== undefined && call[py] !== null) options[ts] = call[py];
  }
  return { name: call.name as string, options: options as ApplyOptions };
}

async function ourMessages(v: RedisVector): Promise<TaskMessage[]> {
  const transport = new RecordingTransport();
  const app = new Celery({ broker: transport, defaultQueue: "rv.q", queues: QUEUES, serializers: allSerializers });
  for (const call of v.calls) {
    const { name, options } = toApply(call);
    await app.sendTask(name, options);
  }
  return transport.messages;
}

/** What no two sends share, or that the clock decides: blanked on both sides. */
function comparable(m: StoredMessage, contentEncodingOfBody: boolean): unknown {
  const headers = { ...m.headers, origin: "*", eta: m.headers.eta === null ? null : "*", expires: m.headers.expires === null ? null : "*" };
  const properties = { ...m.properties, delivery_tag: "*", reply_to: "*" };
  let body: unknown = m.body;
  if (contentEncodingOfBody && m.headers.compression === "application/x-gzip") body = inflateSync(Buffer.from(m.body, "base64")).toString("base64");
  return { ...m, body, headers, properties };
}

const vectors = readdirSync(DIR)
  .filter((f) => f.endsWith(".json") && f !== "topic-matches.json")
  .map((f) => load<RedisVector>(f.slice(0, -5)));

/** Where our message goes given the bindings Python left in Redis (plus the producer's own declaration). */
function ourTarget(layout: RedisLayout, v: RedisVector, m: TaskMessage): { lists: string[]; channel?: string } {
  if (m.exchange === "") return { lists: [queueKey(layout, m.routingKey, messagePriority(m))] };
  const type = declaredTypeOf(m, knownExchangeTypes({ queues: QUEUES, defaultQueue: "rv.q" }));
  if (type === "fanout") return { lists: [], channel: fanoutChannel(layout, m.exchange, m.routingKey) };
  const table = parseTable(layout, v.sets[bindingKey(layout, m.exchange)] ?? []);
  return { lists: lookupQueues(exchangeTypeOf(type, table), table, m.routingKey).map((q) => queueKey(layout, q, messagePriority(m))) };
}

describe("kombu's Redis transport, as Python writes it", () => {
  it("has vectors to compare against", () => {
    expect(vectors.map((v) => v.case).sort()).toEqual(
      ["fanout", "fanout-keyprefix", "json-full", "json-gzip", "json-queue", "keyprefix", "msgpack-full", "priority", "priority-steps", "topic"].sort(),
    );
  });

  describe.each(vectors)("$case", (v) => {
    it("puts each message on the list (or channel) Python put it on, with the same fields", async () => {
      // Prepare
      const layout = redisLayout(v.transport_options, v.db);
      const messages = await ourMessages(v);
      const theirs = new Map<string, StoredMessage>();
      for (const [key, list] of Object.entries(v.lists)) for (const m of list) theirs.set(`${key} ${m.headers.id as string}`, m);
      for (const p of v.published) theirs.set(`channel ${p.channel} ${p.message.headers.id as string}`, p.message);
      // Act
      const ours = new Map<string, StoredMessage>();
      for (const m of messages) {
        const target = ourTarget(layout, v, m);
        const stored = JSON.parse(kombuMessage(m, crypto.randomUUID())) as StoredMessage;
        for (const key of target.lists) ours.set(`${key} ${m.meta.id}`, stored);
        if (target.channel !== undefined) ours.set(`channel ${target.channel} ${m.meta.id}`, stored);
      }
      // Assess
      expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
      for (const [where, stored] of ours) {
        expect(comparable(stored, true), where).toEqual(comparable(theirs.get(where)!, true));
      }
    });

    it("records the bindings Python's declare recorded", async () => {
      const layout = redisLayout(v.transport_options, v.db);
      const messages = await ourMessages(v);
      const declared = new Map<string, Set<string>>();
      for (const m of messages) {
        const d = m.declare;
        if (!d || d.queue === undefined || d.exchange === "") continue;
        const key = bindingKey(layout, d.exchange);
        if (!declared.has(key)) declared.set(key, new Set());
        declared.get(key)!.add(bindingMember(layout, declaredBinding(d.exchangeType, d.routingKey, d.queue)));
      }
      // Python declares a queue once per process (later cases in the capture add none); where both wrote a set, it is the same set.
      const both = Object.keys(v.sets).filter((key) => declared.has(key));
      for (const key of both) expect([...declared.get(key)!].sort(), key).toEqual([...v.sets[key]!].sort());
      if (["json-queue", "keyprefix"].includes(v.case)) expect(both.length).toBeGreaterThan(0);
    });
  });

  it("writes the binding a worker's declare writes, byte for byte", () => {
    const topic = vectors.find((v) => v.case === "topic")!;
    const layout = redisLayout({}, topic.db);
    expect(bindingMember(layout, declaredBinding("topic", "video.#", "rv.video"))).toBe(topic.sets["_kombu.binding.rv.topic"]![0]);
    const queue = vectors.find((v) => v.case === "json-queue")!;
    expect(bindingMember(layout, declaredBinding("direct", "rv.q", "rv.q"))).toBe(queue.sets["_kombu.binding.rv.q"]![0]);
  });
});

describe("topic matching", () => {
  const cases = load<Array<{ binding_key: string; pattern: string; routing_key: string; matches: boolean }>>("topic-matches");

  it("stores the pattern kombu derives from each binding key", () => {
    for (const c of cases) expect(topicPattern(c.binding_key), c.binding_key).toBe(c.pattern);
  });

  it("matches exactly where kombu's regex does (including where it differs from AMQP)", () => {
    const wrong = cases.filter((c) => topicMatches(c.binding_key, c.routing_key) !== c.matches);
    expect(wrong).toEqual([]);
    // kombu's `*` may span dots and `#` needs its dot: not AMQP's rules.
    expect(cases.find((c) => c.binding_key === "video.*" && c.routing_key === "video.x.y")!.matches).toBe(true);
    expect(cases.find((c) => c.binding_key === "video.#" && c.routing_key === "video")!.matches).toBe(false);
  });

  it("stays linear on a hostile binding key", () => {
    const key = Array.from({ length: 200 }, () => "*").join(".");
    const started = performance.now();
    expect(topicMatches(key, "a".repeat(5000))).toBe(false);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe("layout options", () => {
  it("maps priorities onto kombu's steps, lower numbers first", () => {
    const layout = redisLayout({}, 0);
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((p) => queueKey(layout, "q", p))).toEqual([
      "q", "q", "q", "q\x06\x163", "q\x06\x163", "q\x06\x163", "q\x06\x166", "q\x06\x166", "q\x06\x166", "q\x06\x169",
    ]);
  });

  it("puts a priority below the first step on the last step, as Python's steps[bisect(...) - 1] does", () => {
    const layout = redisLayout({ priority_steps: [3, 6] }, 0);
    expect([0, 3, 5, 9].map((p) => queueKey(layout, "q", p))).toEqual(["q\x06\x166", "q\x06\x163", "q\x06\x163", "q\x06\x166"]);
  });

  it("refuses transport options kombu could not use, naming them", () => {
    expect(() => redisLayout({ priority_steps: [3, 1] }, 0)).toThrow(/priority_steps/);
    expect(() => redisLayout({ sep: "" }, 0)).toThrow(/sep/);
    expect(() => redisLayout({ global_keyprefix: 5 as unknown as string }, 0)).toThrow(/global_keyprefix/);
    expect(() => redisLayout({ visibility_timeout: -1 }, 0)).toThrow(/visibility_timeout/);
  });
});
