/**
 * Bad input, refused with a typed error before anything is sent: one table per side.
 *
 * Producer side: every call goes to a recording transport (or, for the SQS size limits, an
 * SqsTransport whose `fetch` records), and each case asserts that nothing reached it. Relay side:
 * `relayRecord` gets Lambda-shaped SQS records; decoding errors must never reach the broker. An
 * unroutable key refused by the real RabbitMQ: test/integration/relay-unroutable.test.ts.
 *
 * Random values through every serializer, decoded by real Python (≥ 1 000 cases per serializer):
 * test/integration/python-roundtrip.test.ts.
 */
import { inspect } from "node:util";
import { beforeEach, describe, expect, it } from "vitest";
import {
  PolicyError,
  Celery,
  CeleryError,
  ConfigurationError,
  EnvelopeError,
  PayloadTooLargeError,
  PublishError,
  SerializationError,
  type ErrorCode,
} from "../../sdk/node.js";
import { decodeEnvelope } from "../../sdk/wire/envelope.js";
import { PROTOCOL_HEADERS } from "../../sdk/options.js";
import { PyTuple } from "../../sdk/serializers/python-values.js";
import { SqsTransport } from "../../sdk/transports/sqs.js";
import { SCHEDULER_MAX_INPUT_BYTES, SQS_MAX_MESSAGE_BYTES } from "../../sdk/wire/limits.js";
import { relayRecord, type RelayDeps } from "../../functions/relay/relay.js";
import { resolvePolicy } from "../../functions/shared/policy.js";
import { RecordingTransport } from "../helpers/recording-transport.js";
import { recordingLogger, validEnvelope } from "../helpers/relay-input.js";
import { sqsRecord } from "../helpers/sqs-record.js";

type ErrorClass = abstract new (...args: never[]) => CeleryError;

interface Case {
  /** What the caller did wrong. */
  name: string;
  act: (app: Celery, transport: RecordingTransport) => unknown;
  error: ErrorClass;
  code: ErrorCode;
  /** The message names the offending field or value. */
  says: RegExp;
}

const circularObject = (): Record<string, unknown> => {
  const o: Record<string, unknown> = { a: 1 };
  o.self = o;
  return o;
};
const circularArray = (): unknown[] => {
  const a: unknown[] = [1];
  a.push([a]);
  return a;
};
const YEAR_10000 = new Date("+010000-01-01T00:00:00Z");
const send = (options: Record<string, unknown>, name = "tasks.echo") => (app: Celery) => app.sendTask(name, options as never);
const serialization = (name: string, options: Record<string, unknown>, says: RegExp): Case => ({ name, act: send(options), error: SerializationError, code: "ERR_SERIALIZATION", says });
const option = (name: string, options: Record<string, unknown>, says: RegExp): Case => ({ name, act: send(options), error: ConfigurationError, code: "ERR_INVALID_OPTION", says });

const PRODUCER_CASES: Case[] = [
  // Values no worker can receive.
  serialization("a BigInt beyond ±(2^53 − 1) in args", { args: [2n ** 64n] }, /bigint 18446744073709551616 at args\[0\]/),
  serialization("a negative BigInt beyond −(2^53 − 1) in kwargs", { kwargs: { n: -(2n ** 60n) } }, /bigint .* at kwargs\.n/),
  serialization("a circular object", { args: [circularObject()] }, /circular reference at args\[0\]\.self/),
  serialization("a circular array", { args: [circularArray()] }, /circular reference/),
  serialization("a function", { args: [() => 1] }, /function at args\[0\]/),
  serialization("a function in a link's args", { link: { task: "tasks.echo", args: [() => 1] } }, /function at body\[2\]\.callbacks\[0\]\.args\[0\]/),
  serialization("a symbol", { args: [Symbol("s")] }, /symbol at args\[0\]/),
  serialization("an object with symbol keys", { kwargs: { [Symbol("k")]: 1 } }, /symbol keys/),
  serialization("undefined in args", { args: [1, undefined] }, /undefined at args\[1\]/),
  serialization("undefined as a kwarg", { kwargs: { a: undefined } }, /undefined at kwargs\.a/),
  serialization("a hole in an array", { args: [[1, , 3]] }, /undefined at args\[0\]\[1\]/),
  serialization("NaN with json", { args: [NaN] }, /json cannot carry NaN/),
  serialization("Infinity with json", { args: [Infinity] }, /json cannot carry Infinity/),
  serialization("-Infinity with json", { kwargs: { x: -Infinity } }, /json cannot carry -Infinity/),
  serialization("an invalid Date", { args: [new Date("not a date")] }, /invalid Date at args\[0\]/),
  serialization("a Date after Python's year 9999", { args: [YEAR_10000] }, /invalid Date/),
  serialization("a Map", { args: [new Map([["a", 1]])] }, /a Map at args\[0\]/),
  serialization("a Set", { args: [new Set([1])] }, /a Set/),
  serialization("a class instance", { args: [new (class Point { x = 1 })()] }, /a Point/),
  serialization("bytes with json", { args: [new Uint8Array([1])] }, /json cannot carry bytes/),
  serialization("an unpaired surrogate with msgpack", { args: ["\ud800"], serializer: "msgpack" }, /msgpack cannot carry a string with an unpaired UTF-16 surrogate/),
  serialization("a tuple holding a function", { args: [PyTuple.of<unknown>(1, () => 2)] }, /function at args\[0\]\[1\]/),

  // Options.
  option("priority above 255", { priority: 256 }, /priority must be an integer from 0 to 255, got 256/),
  option("a negative priority", { priority: -1 }, /priority .* got -1/),
  option("a fractional priority", { priority: 1.5 }, /priority .* got 1\.5/),
  option("a NaN priority", { priority: NaN }, /priority/),
  option("a priority given as a string", { priority: "5" }, /priority .* got "5"/),
  option("a negative countdown", { countdown: -1 }, /countdown must be a finite number ≥ 0, got -1/),
  option("a NaN countdown", { countdown: NaN }, /countdown/),
  option("an infinite countdown", { countdown: Infinity }, /countdown/),
  option("a countdown past Python's year 9999", { countdown: 1e20 }, /countdown/),
  option("eta and countdown together", { countdown: 10, eta: new Date(Date.now() + 60_000) }, /countdown and eta are mutually exclusive/),
  option("an invalid Date as eta", { eta: new Date("nope") }, /eta is an invalid Date/),
  option("an eta after Python's year 9999", { eta: YEAR_10000 }, /eta/),
  option("an eta that is not ISO 8601", { eta: "tomorrow" }, /eta must be an ISO 8601 date-time with an offset, got "tomorrow"/),
  option("a naive eta (no offset)", { eta: "2030-01-01T00:00:00" }, /eta must be an ISO 8601 date-time with an offset/),
  option("an eta on a day that does not exist", { eta: "2030-02-30T00:00:00Z" }, /eta/),
  option("an eta of the wrong type", { eta: 1_700_000_000 }, /eta must be a Date or an ISO 8601 string/),
  option("a NaN expires", { expires: NaN }, /expires must be finite seconds/),
  option("an invalid Date as expires", { expires: new Date("x") }, /expires is an invalid Date/),
  option("expires past Python's year 9999", { expires: 1e20 }, /expires/),
  option("an unknown serializer", { serializer: "bson" }, /serializer must be one of json, yaml, msgpack, pickle; got "bson"/),
  option("an empty serializer name", { serializer: "" }, /serializer must be a non-empty string/),
  option("a serializer that is not a string", { serializer: 42 }, /serializer must be a non-empty string, got 42/),
  option("an unknown compression", { compression: "brotli" }, /compression must be "zlib" or "gzip", got "brotli"/),
  option("protocol 3", { protocol: 3 }, /protocol must be 1 or 2, got 3/),
  option("args that are not an array", { args: "abc" }, /args must be an array, got "abc"/),
  option("kwargs that are an array", { kwargs: [1] }, /kwargs must be a plain object/),
  option("options that are null", null as unknown as Record<string, unknown>, /options must be a plain object, got null/),
  option("an empty taskId", { taskId: "" }, /taskId must be a non-empty string/),
  option("a taskId that is not a string", { taskId: 7 }, /taskId must be a non-empty string, got 7/),
  option("negative retries", { retries: -1 }, /retries must be a non-negative integer/),
  option("fractional retries", { retries: 1.5 }, /retries must be a non-negative integer/),
  option("a negative timeLimit", { timeLimit: -1 }, /timeLimit/),
  option("an empty queue name", { queue: "" }, /queue must be a non-empty string/),
  option("a routing key that is not a string", { routingKey: 5 }, /routingKey must be a non-empty string, got 5/),
  option("a link without a task name", { link: { task: "" } }, /link/),
  option("a link whose task is not a string", { link: [{ task: "tasks.add" }, { task: 5 }] }, /link .* got \{"task":5\}/),
  option("a linkError that is not a signature", { linkError: "tasks.echo" }, /linkError/),
  option("a non-boolean mandatory", { mandatory: "yes" }, /mandatory must be a boolean/),
  option("headers that are not an object", { headers: [["a", 1]] }, /headers must be a plain object/),

  // Task names.
  ...(["", "   ", 42, null, undefined, { name: "tasks.add" }] as unknown[]).map(
    (name): Case => ({
      name: `the task name ${inspect(name)} with sendTask`,
      act: (app) => app.sendTask(name as string, {}),
      error: ConfigurationError,
      code: "ERR_INVALID_OPTION",
      says: /task name must be a non-empty string/,
    }),
  ),
  { name: "an empty task name with app.task()", act: (app) => app.task(""), error: ConfigurationError, code: "ERR_INVALID_OPTION", says: /task name must be a non-empty string, got ""/ },
  { name: "a non-string task name in sendMany", act: (app) => app.sendMany([{ task: "tasks.add" }, { task: 5 as unknown as string }]), error: ConfigurationError, code: "ERR_INVALID_OPTION", says: /task name/ },
  { name: "a bad value in one call of sendMany", act: (app) => app.sendMany([{ task: "tasks.add", args: [1, 2] }, { task: "tasks.add", args: [1n << 70n] }]), error: SerializationError, code: "ERR_SERIALIZATION", says: /bigint/ },
  {
    // Checked at the first send, not in the constructor: a custom serializer may be registered after the app is made.
    name: "an unknown serializer set on the app",
    act: (_app, transport) => new Celery({ broker: transport, serializer: "bson" }).sendTask("tasks.add", {}),
    error: ConfigurationError,
    code: "ERR_INVALID_OPTION",
    says: /serializer must be one of .*; got "bson"/,
  },
  { name: "a task declared with priority 300", act: (app) => app.task("tasks.add", { priority: 300 }), error: ConfigurationError, code: "ERR_INVALID_OPTION", says: /priority .* got 300/ },

  // Headers that would overwrite Celery's own.
  ...[...PROTOCOL_HEADERS].map((key) => option(`headers.${key} (a protocol header)`, { headers: { [key]: "x" } }, new RegExp(`headers\\.${key} would overwrite Celery's own "${key}" header`))),

  // Header values AMQP and the envelope cannot carry faithfully.
  option("a BigInt header value", { headers: { tenant: 10n } }, /headers\.tenant/),
  option("an undefined header value", { headers: { tenant: undefined } }, /headers\.tenant/),
  option("a function header value", { headers: { tenant: () => "acme" } }, /headers\.tenant/),
  option("a NaN header value", { headers: { tenant: NaN } }, /headers\.tenant/),
  option("an Infinity header value", { headers: { tenant: Infinity } }, /headers\.tenant/),
  option("a Date header value", { headers: { tenant: new Date(0) } }, /headers\.tenant/),
  option("a circular header value", { headers: { tenant: circularObject() } }, /headers\.tenant/),
  option("a bytes header value", { headers: { tenant: new Uint8Array([1]) } }, /headers\.tenant/),
];

describe("the producer refuses bad input before sending anything", () => {
  for (const c of PRODUCER_CASES) {
    it(`refuses ${c.name} with ${c.error.name} ${c.code}`, async () => {
      // Prepare
      const transport = new RecordingTransport();
      const app = new Celery({ broker: transport });

      // Act
      const err = await (async () => c.act(app, transport))().then(
        () => undefined,
        (e: unknown) => e,
      );

      // Assess
      expect(err).toBeInstanceOf(c.error);
      expect((err as CeleryError).code).toBe(c.code);
      expect((err as Error).message).toMatch(c.says);
      expect(transport.messages).toHaveLength(0);
    });
  }
});

describe("the app refuses bad configuration when it is created", () => {
  const PASSWORD = "Pw-bad-input-7f3a";
  const CONFIG_CASES: Array<{ name: string; options: unknown; error: ErrorClass; code: ErrorCode; says: RegExp }> = [
    { name: "no options", options: undefined, error: ConfigurationError, code: "ERR_CONFIGURATION", says: /needs a broker/ },
    { name: "no broker", options: {}, error: ConfigurationError, code: "ERR_CONFIGURATION", says: /needs a broker/ },
    { name: "a broker that is neither a URL nor a Transport", options: { broker: 42 }, error: ConfigurationError, code: "ERR_CONFIGURATION", says: /broker must be a URL string or a Transport/ },
    { name: "an empty broker URL", options: { broker: "" }, error: ConfigurationError, code: "ERR_CONFIGURATION", says: /broker must be a URL/ },
    { name: "a broker URL without a scheme", options: { broker: "rabbit.internal:5672" }, error: ConfigurationError, code: "ERR_CONFIGURATION", says: /broker must be a URL .* got "rabbit\.internal:5672"/ },
    { name: "an http:// broker URL", options: { broker: "http://rabbit.internal/" }, error: ConfigurationError, code: "ERR_CONFIGURATION", says: /unknown broker scheme http:\/\// },
    { name: "a redis:// broker URL whose database is not a number", options: { broker: `redis://:${PASSWORD}@127.0.0.1:6379/zero` }, error: ConfigurationError, code: "ERR_CONFIGURATION", says: /broker: redis database must be a number/ },
    { name: "redis broker transport options kombu could not use", options: { broker: `redis://:${PASSWORD}@127.0.0.1:6379/0`, brokerTransportOptions: { priority_steps: [] } }, error: ConfigurationError, code: "ERR_INVALID_OPTION", says: /brokerTransportOptions\.priority_steps/ },
    { name: "an amqp:// URL with a malformed host", options: { broker: `amqp://user:${PASSWORD}@[rabbit:5672//` }, error: ConfigurationError, code: "ERR_CONFIGURATION", says: /broker URL amqp:\/\/user:\*\*\*@/ },
    { name: "an amqp:// URL with a non-numeric port", options: { broker: `amqp://user:${PASSWORD}@rabbit:port//` }, error: ConfigurationError, code: "ERR_CONFIGURATION", says: /broker URL amqp:\/\/user:\*\*\*@/ },
    { name: "a default priority above 255", options: { broker: new RecordingTransport(), defaultPriority: 300 }, error: ConfigurationError, code: "ERR_INVALID_OPTION", says: /priority .* got 300/ },
    { name: "a zero connect timeout", options: { broker: new RecordingTransport(), connectTimeout: 0 }, error: ConfigurationError, code: "ERR_INVALID_OPTION", says: /connectTimeout/ },
  ];
  for (const c of CONFIG_CASES) {
    it(`refuses ${c.name} with ${c.error.name} ${c.code}, never showing a password`, () => {
      // Act
      let err: unknown;
      try {
        new Celery(c.options as never);
      } catch (e) {
        err = e;
      }

      // Assess
      expect(err).toBeInstanceOf(c.error);
      expect((err as CeleryError).code).toBe(c.code);
      expect((err as Error).message).toMatch(c.says);
      expect(inspect(err, { depth: Infinity })).not.toContain(PASSWORD);
    });
  }
});

describe("the SQS transport refuses oversize tasks before calling SQS", () => {
  const requests: string[] = [];
  const recordingFetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    requests.push(await new Request(input, init).text());
    return new Response(JSON.stringify({ __type: "com.amazonaws.sqs#AccessDenied", message: "recorded, not sent" }), { status: 400 });
  }) as typeof fetch;
  beforeEach(() => {
    requests.length = 0;
  });
  const sqsApp = (): Celery =>
    new Celery({
      broker: new SqsTransport({ queueUrl: "https://sqs.us-east-1.amazonaws.com/000000000000/intake", credentials: { accessKeyId: "AKID", secretAccessKey: "secret" }, fetch: recordingFetch }),
    });

  it(`refuses a task over SQS's ${SQS_MAX_MESSAGE_BYTES}-byte message limit with PayloadTooLargeError ERR_PAYLOAD_TOO_LARGE`, async () => {
    const err = await sqsApp().sendTask("tasks.echo", { args: ["x".repeat(SQS_MAX_MESSAGE_BYTES)] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect((err as CeleryError).code).toBe("ERR_PAYLOAD_TOO_LARGE");
    expect((err as PayloadTooLargeError).limit).toBe(SQS_MAX_MESSAGE_BYTES);
    expect((err as PayloadTooLargeError).size).toBeGreaterThan(SQS_MAX_MESSAGE_BYTES);
    expect((err as Error).message).toMatch(/over the 1048576-byte limit/);
    expect(requests).toHaveLength(0);
  });

  it(`refuses a far-ETA task over Scheduler's ${SCHEDULER_MAX_INPUT_BYTES}-byte input limit with PayloadTooLargeError ERR_PAYLOAD_TOO_LARGE`, async () => {
    const err = await sqsApp().sendTask("tasks.echo", { args: ["x".repeat(300_000)], countdown: 86_400 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect((err as CeleryError).code).toBe("ERR_PAYLOAD_TOO_LARGE");
    expect((err as PayloadTooLargeError).limit).toBe(SCHEDULER_MAX_INPUT_BYTES);
    expect(requests).toHaveLength(0);
  });

  it("refuses only the oversize task of a batch and sends the others", async () => {
    const err = await sqsApp().sendMany([{ task: "tasks.add", args: [1, 2] }, { task: "tasks.echo", args: ["x".repeat(SQS_MAX_MESSAGE_BYTES)] }]).catch((e: unknown) => e);
    const outcomes = (err as { outcomes: Array<{ ok: boolean; error?: CeleryError }> }).outcomes;
    expect((err as CeleryError).code).toBe("ERR_BATCH");
    expect(outcomes[1]!.error).toBeInstanceOf(PayloadTooLargeError);
    // The small task went to SQS (and failed there: the recording fetch answers 400).
    expect(outcomes[0]!.error).toBeInstanceOf(PublishError);
    expect(requests).toHaveLength(1);
    expect(requests[0]).toContain("tasks.add");
    expect(requests[0]).not.toContain("x".repeat(1000));
  });
});

// ---------------------------------------------------------------------------------------------
// Relay side
// ---------------------------------------------------------------------------------------------

/** The envelope with `change` applied (`undefined` deletes a key); `at` is a dotted path. */
async function envelopeWith(at: string, value: unknown, base?: Record<string, unknown>): Promise<string> {
  const e = base ?? (await validEnvelope());
  const keys = at.split(".");
  let target = e as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) target = target[k] as Record<string, unknown>;
  if (value === undefined) delete target[keys.at(-1)!];
  else target[keys.at(-1)!] = value;
  return JSON.stringify(e);
}

interface RelayCase {
  name: string;
  body: () => Promise<string>;
  says: RegExp;
}

const RELAY_CASES: RelayCase[] = [
  { name: "a body that is not JSON", body: async () => "hello", says: /body is not JSON/ },
  { name: "an empty body", body: async () => "", says: /body is not JSON/ },
  { name: "truncated JSON", body: async () => (await envelopeWith("body", "x")).slice(0, 40), says: /body is not JSON/ },
  { name: "a JSON array", body: async () => "[1, 2]", says: /top level must be an object/ },
  { name: "JSON null", body: async () => "null", says: /top level must be an object/ },
  { name: "a future envelope version", body: () => envelopeWith("celeryEdgeEnvelope", 2), says: /unsupported version 2 \(this reader knows 1\)/ },
  { name: "version 0", body: () => envelopeWith("celeryEdgeEnvelope", 0), says: /unsupported version 0/ },
  { name: "the version as a string", body: () => envelopeWith("celeryEdgeEnvelope", "1"), says: /unsupported version "1"/ },
  { name: "no version", body: () => envelopeWith("celeryEdgeEnvelope", undefined), says: /unsupported version undefined/ },
  { name: "no task", body: () => envelopeWith("task", undefined), says: /task must be an object/ },
  { name: "no task id", body: () => envelopeWith("task.id", undefined), says: /task\.id must be a string/ },
  { name: "no task name", body: () => envelopeWith("task.name", undefined), says: /task\.name must be a string/ },
  { name: "an eta that is not a string", body: () => envelopeWith("task.eta", 5), says: /task\.eta must be a string or null/ },
  { name: "no exchange", body: () => envelopeWith("exchange", undefined), says: /exchange must be a string/ },
  { name: "no routing key", body: () => envelopeWith("routingKey", undefined), says: /routingKey must be a string/ },
  { name: "no mandatory flag", body: () => envelopeWith("mandatory", undefined), says: /mandatory and immediate must be booleans/ },
  { name: "no properties", body: () => envelopeWith("properties", undefined), says: /properties must be an object/ },
  { name: "headers that are not an object", body: () => envelopeWith("properties.headers", "task=x"), says: /properties\.headers must be an object of JSON values/ },
  { name: "a delivery mode of 3", body: () => envelopeWith("properties.deliveryMode", 3), says: /deliveryMode must be 1 or 2/ },
  { name: "a priority of 300", body: () => envelopeWith("properties.priority", 300), says: /priority must be an integer 0-255/ },
  { name: "no content type", body: () => envelopeWith("properties.contentType", undefined), says: /properties\.contentType must be a string/ },
  { name: "an unknown exchange type to declare", body: () => envelopeWith("declare.exchangeType", "x-consistent-hash"), says: /declare\.exchangeType/ },
  { name: "an unknown body encoding", body: () => envelopeWith("bodyEncoding", "hex"), says: /bodyEncoding must be "utf-8" or "base64"/ },
  { name: "no body", body: () => envelopeWith("body", undefined), says: /body must be a string/ },
  { name: "a body that is not base64", body: async () => envelopeWith("body", "not base64!", await envelopeWith("bodyEncoding", "base64").then((t) => JSON.parse(t))), says: /body is not valid base64/ },
  { name: "base64 without its padding", body: async () => envelopeWith("body", "abc", JSON.parse(await envelopeWith("bodyEncoding", "base64"))), says: /body is not valid base64/ },
];

describe("the relay refuses bad envelopes without touching the broker", () => {
  for (const c of RELAY_CASES) {
    it(`refuses ${c.name} with EnvelopeError ERR_ENVELOPE, logging why`, async () => {
      // Prepare
      const broker = new RecordingTransport();
      const logger = recordingLogger();
      const deps: RelayDeps = { broker, policy: resolvePolicy({}), trustedForwarders: [], forceMandatory: true, logger };
      const body = await c.body();

      // Act
      const err = await relayRecord(sqsRecord(body, "m-1"), deps).catch((e: unknown) => e);

      // Assess
      expect(err).toBeInstanceOf(EnvelopeError);
      expect((err as CeleryError).code).toBe("ERR_ENVELOPE");
      expect((err as Error).message).toMatch(c.says);
      expect(broker.messages).toHaveLength(0);
      expect(logger.lines).toEqual([{ level: "error", message: "rejected envelope", extra: expect.objectContaining({ messageId: "m-1", reason: (err as Error).message }) }]);
      expect(() => decodeEnvelope(body)).toThrow(EnvelopeError);
    });
  }

  for (const [exchange, says] of [
    ["amq.topic", "destination is a RabbitMQ built-in exchange"],
    ["celery_edge.topic", "exchange and routing key are not in the policy"],
    ["some.other.exchange", "exchange and routing key are not in the policy"],
  ] as const) {
    it(`refuses the exchange "${exchange}", outside the default policy, with PolicyError ERR_POLICY`, async () => {
      const broker = new RecordingTransport();
      const logger = recordingLogger();
      const body = JSON.stringify(await validEnvelope({ exchange, routingKey: "anything" }));

      const err = await relayRecord(sqsRecord(body, "m-2"), { broker, policy: resolvePolicy({}), trustedForwarders: [], forceMandatory: true, logger }).catch((e: unknown) => e);

      expect(err).toBeInstanceOf(PolicyError);
      expect((err as CeleryError).code).toBe("ERR_POLICY");
      expect((err as Error).message).toContain(`${says}: exchange ${JSON.stringify(exchange)}`);
      expect(broker.messages).toHaveLength(0);
      expect(logger.lines.map((l) => l.message)).toEqual(["rejected envelope"]);
    });
  }
});
