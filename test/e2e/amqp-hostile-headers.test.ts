/**
 * Header and queue-argument tables holding `__proto__`, `constructor` or `prototype` keys, published
 * to the real RabbitMQ and read back raw: such a key is either refused with a typed error before
 * anything is sent, or sent as an ordinary key — never does what it holds turn into other headers
 * or arguments.
 *
 * amqplib decodes a table by assigning each key, so a `__proto__` key that was sent arrives as the
 * decoded object's prototype; `asSent` puts it back as a key to compare with what was sent.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Celery, ConfigurationError, type CeleryError, type TaskMessage } from "../../sdk/node.js";
import { decodeEnvelope, encodeEnvelope } from "../../sdk/wire/envelope.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { deleteQueues, getRawMessage, purgeQueues, rabbitmqctl } from "../helpers/rabbit.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

const BROKER = "amqp://guest:guest@127.0.0.1:5672//";
const QUEUE = "ce.hostile-headers";
const ARGS_QUEUE = `ce.hostile-arguments-${process.pid}`;
let app: Celery;

beforeAll(async () => {
  app = new Celery({ broker: BROKER, defaultQueue: QUEUE });
  await app.sendTask("tasks.echo", { args: ["declares the queue"] });
  await purgeQueues([QUEUE]);
});

beforeEach(async () => {
  await purgeQueues([QUEUE]);
});

afterAll(async () => {
  await app?.close();
  await deleteQueues([QUEUE, ARGS_QUEUE]);
});

/** A table as it was sent: a decoded object's prototype (other than Object's) was a `__proto__` key. */
function asSent(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(asSent);
  if (value === null || typeof value !== "object" || Buffer.isBuffer(value)) return value;
  const sent: Record<string, unknown> = {};
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) Object.defineProperty(sent, "__proto__", { value: asSent(proto), enumerable: true, writable: true, configurable: true });
  for (const k of Object.keys(value)) sent[k] = asSent((value as Record<string, unknown>)[k]);
  return sent;
}

/** Sorted-key JSON, `__proto__` keys included (JSON.stringify writes own ones). */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  return `{${Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
    .join(",")}}`;
}

describe("user headers named __proto__, constructor, prototype", () => {
  it("refuses a top-level __proto__ header with ConfigurationError ERR_INVALID_OPTION, and sends nothing", async () => {
    // Prepare
    const headers = JSON.parse('{"__proto__": {"x-injected": "yes"}}') as Record<string, string>;

    // Act
    const err = (await app.sendTask("tasks.echo", { args: ["refused"], headers }).catch((e: CeleryError) => e)) as CeleryError;
    const sentinel = await app.sendTask("tasks.echo", { args: ["sentinel"] });

    // Assess: the refusal is typed, and the first message on the queue is the sentinel sent after it.
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.code).toBe("ERR_INVALID_OPTION");
    expect(err.message).toMatch(/headers has a "__proto__" key/);
    expect((await getRawMessage(QUEUE))?.properties.headers?.id).toBe(sentinel.id);
  });

  it("sends constructor and prototype keys, at the top and nested, as ordinary headers", async () => {
    // Prepare
    const headers = JSON.parse('{"constructor": "c", "prototype": {"constructor": 1, "prototype": [2, {"constructor": null}]}}') as Record<string, never>;

    // Act
    const r = await app.sendTask("tasks.echo", { args: [], headers });
    const raw = await getRawMessage(QUEUE);

    // Assess
    const sent = asSent(raw?.properties.headers) as Record<string, unknown>;
    expect(sent.id).toBe(r.id);
    expect(canonical(sent.constructor)).toBe('"c"');
    expect(canonical(sent.prototype)).toBe('{"constructor":1,"prototype":[2,{"constructor":null}]}');
  });
});

describe("a relayed message whose headers hold __proto__ (decoded from its SQS envelope)", () => {
  it("sends __proto__ as an ordinary header; nothing it holds becomes a header of its own", async () => {
    // Prepare: the envelope as the relay reads it, with a "__proto__" header the sender wrote.
    const recorder = new RecordingTransport();
    const producer = new Celery({ broker: recorder, defaultQueue: QUEUE });
    await producer.sendTask("tasks.echo", { args: ["relayed"] });
    const text = encodeEnvelope(recorder.messages[0]!).replace('"headers":{', '"headers":{"__proto__":{"x-injected":"yes","task":"tasks.other"},');
    const message: TaskMessage = decodeEnvelope(text);
    const transport = new AmqpTransport({ url: BROKER });

    // Act
    try {
      await transport.publish(message);
    } finally {
      await transport.close();
    }
    const raw = await getRawMessage(QUEUE);

    // Assess
    const sent = asSent(raw?.properties.headers) as Record<string, unknown>;
    expect(canonical(sent["__proto__"])).toBe('{"task":"tasks.other","x-injected":"yes"}');
    expect(Object.keys(sent)).not.toContain("x-injected");
    expect(sent.task).toBe("tasks.echo");
    expect(Object.keys(sent).sort()).toEqual(["__proto__", ...Object.keys(recorder.messages[0]!.properties.headers)].sort());
  });
});

describe("queue arguments holding __proto__", () => {
  it("are declared as ordinary keys: no argument (x-max-priority here) comes out of them", async () => {
    // Prepare
    const queueArguments = JSON.parse('{"__proto__": {"x-max-priority": 7}, "x-celery-edge-test": {"__proto__": {"x-max-priority": 9}, "constructor": "c"}}') as Record<string, never>;
    const declaring = new Celery({ broker: BROKER, queues: { [ARGS_QUEUE]: { exchange: "", routingKey: ARGS_QUEUE, queueArguments } } });

    // Act
    try {
      await declaring.sendTask("tasks.echo", { args: [], queue: ARGS_QUEUE });
    } finally {
      await declaring.close();
    }
    const { stdout } = await rabbitmqctl(["list_queues", "name", "arguments", "--formatter", "json"]);

    // Assess: RabbitMQ lists arguments as [name, type, value] triples, tables as lists of them.
    const queue = (JSON.parse(stdout) as Array<{ name: string; arguments: unknown[] }>).find((q) => q.name === ARGS_QUEUE);
    expect(queue?.arguments).toEqual([
      ["__proto__", "table", [["x-max-priority", "signedint", 7]]],
      ["x-celery-edge-test", "table", [["__proto__", "table", [["x-max-priority", "signedint", 9]]], ["constructor", "longstr", "c"]]],
    ]);
  });
});
