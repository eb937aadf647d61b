/**
 * Celery's `task-sent` event (#16), without a broker: the event builder (`sdk/events/task-sent.ts`)
 * against what Celery 5.2's dispatcher writes, the app option, the envelope's `sendSentEvent` flag,
 * the relay policy switch and the relay's own event fields from hostile headers
 * (`functions/shared/sent-event.ts`). Celery's Receiver reading the real thing: test/e2e/task-sent-events.test.ts.
 */
import { describe, expect, it } from "vitest";
import { Celery, ConfigurationError, EnvelopeError, PyTuple } from "../../sdk/index.js";
import { EVENT_EXCHANGE_DECLARATION, sentEventsAfter, sentFieldsOfCall, taskSentEvent, utcOffsetHours, type TaskSentFields } from "../../sdk/events/task-sent.js";
import type { TaskMessage } from "../../sdk/protocol/message.js";
import { decodeEnvelope, encodeEnvelope } from "../../sdk/wire/envelope.js";
import { resolvePolicy } from "../../functions/shared/policy.js";
import { publishSentEvent, relayedSentFields } from "../../functions/shared/sent-event.js";
import type { TaskView } from "../../functions/shared/task-view.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

const app = (options: { taskSendSentEvent?: boolean; protocol?: 1 | 2 } = {}): Celery =>
  new Celery({ broker: new RecordingTransport(), defaultQueue: "ce.sentev", origin: "gen42@producer", ...options });

const FIELDS: TaskSentFields = {
  uuid: "id-1",
  name: "tasks.echo",
  args: "(1, 'two')",
  kwargs: "{'k': 'v'}",
  retries: 0,
  eta: null,
  expires: null,
  rootId: "id-1",
  parentId: null,
  queue: "ce.sentev",
  exchange: "",
  routingKey: "ce.sentev",
};
const AT = new Date(Date.UTC(2030, 0, 2, 3, 4, 5));
const bodyOf = (m: TaskMessage): string => new TextDecoder().decode(m.body);

describe("the task-sent event", () => {
  it("has the keys of Celery 5.2's protocol 2 event in its order, and a float timestamp on a whole second", () => {
    // Act
    const event = taskSentEvent(FIELDS, { hostname: "gen42@producer", pid: 42, clock: 7, now: AT });

    // Assess: kombu's json.dumps of Event("task-sent", hostname=, utcoffset=, pid=, clock=, **sent_event).
    expect(bodyOf(event)).toBe(
      `{"hostname": "gen42@producer", "utcoffset": ${utcOffsetHours(AT)}, "pid": 42, "clock": 7, "uuid": "id-1", "root_id": "id-1", "parent_id": null, ` +
        `"name": "tasks.echo", "args": "(1, 'two')", "kwargs": "{'k': 'v'}", "retries": 0, "eta": null, "expires": null, ` +
        `"queue": "ce.sentev", "exchange": "", "routing_key": "ce.sentev", "timestamp": 1893553445.0, "type": "task-sent"}`,
    );
  });

  it("leaves out root_id and parent_id for protocol 1, as Celery's protocol 1 event does", () => {
    // Act
    const { rootId: _r, parentId: _p, ...v1 } = FIELDS;
    const keys = Object.keys(JSON.parse(bodyOf(taskSentEvent(v1, { hostname: "h", pid: 1, clock: 1, now: AT }))));

    // Assess
    expect(keys).toEqual(["hostname", "utcoffset", "pid", "clock", "uuid", "name", "args", "kwargs", "retries", "eta", "expires", "queue", "exchange", "routing_key", "timestamp", "type"]);
  });

  it("goes to the celeryev topic exchange as task.sent, transient, priority 0, with a hostname header, the exchange declared first", () => {
    // Act
    const event = taskSentEvent(FIELDS, { hostname: "gen42@producer", pid: 42, clock: 1 });

    // Assess
    expect([event.exchange, event.routingKey, event.mandatory, event.immediate]).toEqual(["celeryev", "task.sent", false, false]);
    expect(event.properties).toEqual({ contentType: "application/json", contentEncoding: "utf-8", deliveryMode: 1, priority: 0, headers: { hostname: "gen42@producer" } });
    expect(event.declare).toBe(EVENT_EXCHANGE_DECLARATION);
    expect(EVENT_EXCHANGE_DECLARATION).toEqual({ exchange: "celeryev", exchangeType: "topic", routingKey: "", durable: true });
  });

  it("gives Python's utcoffset(): whole hours west of UTC, floored", () => {
    // Arrange: UTC+5:30 (Python: -19800 // 3600 == -6), UTC-5, UTC.
    const zone = (minutesWest: number): Date => Object.assign(new Date(AT), { getTimezoneOffset: () => minutesWest });

    // Act / Assess
    expect([utcOffsetHours(zone(-330)), utcOffsetHours(zone(300)), utcOffsetHours(zone(0))]).toEqual([-6, 5, 0]);
  });
});

describe("taskSendSentEvent", () => {
  it("keeps the call's fields on the message, and the event repeats its argsrepr, ids, eta and destination", async () => {
    // Act
    const message = await app({ taskSendSentEvent: true }).buildMessage("tasks.echo", { args: PyTuple.of<unknown>(1, "two"), kwargs: { k: "v" }, countdown: 10, taskId: "id-2" });
    const fields = sentFieldsOfCall(message.meta.sentEvent as never, message);

    // Assess
    const h = message.properties.headers;
    expect(fields).toEqual({
      uuid: "id-2",
      name: "tasks.echo",
      args: h.argsrepr,
      kwargs: h.kwargsrepr,
      retries: 0,
      eta: h.eta,
      expires: null,
      rootId: "id-2",
      parentId: null,
      queue: "ce.sentev",
      exchange: "",
      routingKey: "ce.sentev",
    });
    expect(fields.args).toBe("(1, 'two')");
  });

  it("cuts args at Celery's 1024 for protocol 2 and not for protocol 1 (saferepr without a limit)", async () => {
    // Arrange
    const args = ["x".repeat(3000)];

    // Act
    const [v2, v1] = await Promise.all([2, 1].map((protocol) => app({ taskSendSentEvent: true, protocol: protocol as 1 | 2 }).buildMessage("tasks.echo", { args })));
    const [f2, f1] = [v2!, v1!].map((m) => sentFieldsOfCall(m.meta.sentEvent as never, m));

    // Assess
    expect(f2!.args.length).toBeLessThan(1100);
    expect(f2!.args).toBe(v2!.properties.headers.argsrepr);
    expect(f1!.args).toBe(`['${"x".repeat(3000)}']`);
    expect("rootId" in f1!).toBe(false);
  });

  it("is off by default: the message asks for nothing", async () => {
    // Act
    const message = await app().buildMessage("tasks.echo");

    // Assess
    expect(message.meta.sentEvent).toBeUndefined();
    expect(JSON.parse(encodeEnvelope(message))).not.toHaveProperty("sendSentEvent");
  });

  it("must be a boolean", () => {
    // Act / Assess
    expect(() => app({ taskSendSentEvent: "yes" as never })).toThrow(ConfigurationError);
    expect(() => app({ taskSendSentEvent: "yes" as never })).toThrow(/taskSendSentEvent must be a boolean/);
  });

  it("makes one event per accepted message that asked, in order, numbering the clock", async () => {
    // Arrange
    const on = app({ taskSendSentEvent: true });
    const messages = [await on.buildMessage("a", { taskId: "1" }), await app().buildMessage("b", { taskId: "2" }), await on.buildMessage("c", { taskId: "3" }), await on.buildMessage("d", { taskId: "4" })];
    const decoded = decodeEnvelope(encodeEnvelope(messages[3]!)); // asks with `true`: no fields to make an event of
    let clock = 0;

    // Act
    const events = sentEventsAfter([...messages, decoded], (i) => i !== 2, () => ({ pid: 9, clock: ++clock }));

    // Assess
    expect(events.map((e) => [e.meta.id, JSON.parse(bodyOf(e)).clock, e.properties.headers.hostname])).toEqual([
      ["1", 1, "gen42@producer"],
      ["4", 2, "gen42@producer"],
    ]);
  });
});

describe("the envelope's sendSentEvent flag", () => {
  const envelopeOf = async (sendSentEvent?: unknown): Promise<Record<string, unknown>> => {
    const e = JSON.parse(encodeEnvelope(await app().buildMessage("tasks.echo", { taskId: "id-3" }))) as Record<string, unknown>;
    return sendSentEvent === undefined ? e : { ...e, sendSentEvent };
  };

  it("is written as true when the app asks, and read back as a request", async () => {
    // Act
    const text = encodeEnvelope(await app({ taskSendSentEvent: true }).buildMessage("tasks.echo"));

    // Assess
    expect(JSON.parse(text).sendSentEvent).toBe(true);
    expect(decodeEnvelope(text).meta.sentEvent).toBe(true);
  });

  it("reads absent and false as not asked (envelopes written before it existed)", async () => {
    // Act / Assess
    for (const e of [await envelopeOf(), await envelopeOf(false)]) expect(decodeEnvelope(JSON.stringify(e)).meta.sentEvent).toBeUndefined();
  });

  it.each([["yes"], [1], [null], [{}], [[true]], ["true"]])("refuses %j with EnvelopeError", async (garbage) => {
    // Act / Assess
    const text = JSON.stringify(await envelopeOf(garbage));
    expect(() => decodeEnvelope(text)).toThrow(EnvelopeError);
    expect(() => decodeEnvelope(text)).toThrow(/sendSentEvent must be true or false/);
  });
});

describe("the relay's policy switch and event", () => {
  const view: TaskView = { protocol: 2, id: "id-4", name: "tasks.echo", eta: null, expires: null };
  const v2Message = (headers: Record<string, unknown>, exchange = "", routingKey = "ce.sentev"): TaskMessage => ({
    exchange,
    routingKey,
    mandatory: false,
    immediate: false,
    properties: { contentType: "application/json", contentEncoding: "utf-8", deliveryMode: 2, headers: { task: "tasks.echo", id: "id-4", ...headers } as never },
    body: new TextEncoder().encode('[[], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'),
    declare: null,
    meta: { id: "id-4", name: "tasks.echo", eta: null, sentEvent: true },
  });

  it("is off by default, and must be a boolean", () => {
    // Act / Assess
    expect(resolvePolicy({}).sentEvents).toBe(false);
    expect(resolvePolicy({ sentEvents: true }).sentEvents).toBe(true);
    expect(() => resolvePolicy({ sentEvents: "yes" })).toThrow(/sentEvents must be true or false/);
  });

  it("still refuses celeryev as a destination when events are allowed", () => {
    // Act / Assess
    expect(() => resolvePolicy({ sentEvents: true, exchanges: [{ exchange: "celeryev", routingKeys: ["#"] }] })).toThrow(/Celery's event exchange/);
  });

  it("reads hostile header values as the worker's defaults, cuts long text and never cuts an id", async () => {
    // Act
    const fields = await relayedSentFields(v2Message({ argsrepr: 5, kwargsrepr: "k".repeat(5000), retries: -1, root_id: "r".repeat(300), parent_id: "p-1" }), view, null);

    // Assess
    expect(fields).toMatchObject({ uuid: "id-4", name: "tasks.echo", args: "", retries: 0, rootId: null, parentId: "p-1", queue: "ce.sentev", exchange: "", routingKey: "ce.sentev" });
    expect(fields.kwargs).toHaveLength(1024);
    expect(fields.kwargs.endsWith("...")).toBe(true);
  });

  it("names the queue the policy declares on a named exchange, else none", async () => {
    // Act
    const declared = await relayedSentFields(v2Message({}, "celery_edge.topic", "video.x"), view, { queue: "ce.video", exchange: "celery_edge.topic", exchangeType: "topic", routingKey: "video.#" });
    const bare = await relayedSentFields(v2Message({}, "celery_edge.topic", "video.x"), view, null);

    // Assess
    expect([declared.queue, bare.queue]).toEqual(["ce.video", null]);
  });

  it("publishes nothing when the policy does not allow it, and says so in the record's log", async () => {
    // Arrange
    const broker = new RecordingTransport();
    const log: Record<string, unknown> = {};

    // Act
    await publishSentEvent(v2Message({ argsrepr: "()" }), view, null, { broker, policy: resolvePolicy({}), logger: { warn: () => undefined } }, log);

    // Assess
    expect(broker.messages).toEqual([]);
    expect(log.sentEvent).toBe("not allowed");
  });

  it("logs a failed event and does not throw", async () => {
    // Arrange: a broker that refuses the event (the task itself went out before).
    const broker = Object.assign(new RecordingTransport(), { publish: async () => Promise.reject(Object.assign(new Error("NOT_FOUND"), { code: "ERR_PUBLISH" })) });
    const warned: Array<[string, Record<string, unknown>]> = [];
    const log: Record<string, unknown> = { taskId: "id-4" };

    // Act
    await publishSentEvent(v2Message({}), view, null, { broker, policy: resolvePolicy({ sentEvents: true }), logger: { warn: (m, x) => warned.push([m, x]) } }, log);

    // Assess
    expect(log.sentEvent).toBe("failed");
    expect(warned).toEqual([["task-sent event failed (the task itself was published)", expect.objectContaining({ taskId: "id-4", code: "ERR_PUBLISH", reason: "NOT_FOUND" })]]);
  });
});
