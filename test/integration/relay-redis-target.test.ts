/**
 * The relay's record work against the real Redis, with the broker the handler builds for a
 * `redis://` URL: what lands in Redis is kombu's layout (lists, `_kombu.binding.*` sets, the pidbox
 * fanout over PUBLISH) under the workers' `global_keyprefix`; only the policy's declarations are
 * carried out; a message no binding takes fails the record for a retry. A real worker runs what the
 * relay writes in test/e2e/relay-redis.test.ts.
 */
import { createClient } from "redis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { relayBroker } from "../../functions/relay/broker.js";
import { relayRecord, type RelayDeps } from "../../functions/relay/relay.js";
import { resolvePolicy } from "../../functions/shared/policy.js";
import { PublishError, type CeleryError } from "../../sdk/errors.js";
import { Celery } from "../../sdk/node.js";
import type { TaskMessage } from "../../sdk/protocol/message.js";
import { revokeMessage } from "../../sdk/revoke.js";
import { encodeEnvelope } from "../../sdk/wire/envelope.js";
import { RecordingTransport } from "../helpers/recording-transport.js";
import { recordingLogger } from "../helpers/relay-input.js";
import { sqsRecord } from "../helpers/sqs-record.js";

const DB = 5;
const PREFIX = "relay-redis-int:";
const SEP = "\x06\x16";
const URL = `redis://127.0.0.1:6379/${DB}`;
const policy = resolvePolicy({
  queues: [
    { name: "rr.declared", declare: true },
    { name: "rr.undeclared", declare: false },
  ],
  exchanges: [{ exchange: "rr.topic", routingKeys: ["video.#"] }],
  contentTypes: ["application/json", "application/x-msgpack"],
});
const builder = new Celery({ broker: new RecordingTransport() });
const redis = createClient({ url: URL, socket: { reconnectStrategy: false } });
const broker = await relayBroker(URL, { transportOptions: { global_keyprefix: PREFIX } });

/** A `tasks.echo` envelope as the SDK writes it, and the message it carries. */
async function sent(options: Record<string, unknown>, edit?: (e: Record<string, unknown>) => void): Promise<{ body: string; message: TaskMessage }> {
  const message = await builder.buildMessage("tasks.echo", { args: [1], ...options });
  const e = JSON.parse(encodeEnvelope(message)) as Record<string, unknown>;
  edit?.(e);
  return { body: JSON.stringify(e), message };
}
const envelope = async (options: Record<string, unknown>, edit?: (e: Record<string, unknown>) => void): Promise<string> => (await sent(options, edit)).body;

function deps(): RelayDeps & { backoffs: number[]; logger: ReturnType<typeof recordingLogger> } {
  const backoffs: number[] = [];
  return { broker, policy, trustedForwarders: [], forceMandatory: true, logger: recordingLogger(), backoff: async (_r, s) => void backoffs.push(s), backoffs };
}

async function ourKeys(): Promise<string[]> {
  return (await redis.keys(`${PREFIX}*`)).sort();
}

beforeAll(async () => {
  await redis.connect();
});

beforeEach(async () => {
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length > 0) await redis.del(keys);
});

afterAll(async () => {
  await broker.close();
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length > 0) await redis.del(keys);
  await redis.quit();
});

describe("the relay writes kombu's Redis message", () => {
  it("pushes the exact message onto the queue's list and records the policy queue's binding as a worker's declare would", async () => {
    // Prepare
    const { body, message } = await sent({ queue: "rr.declared", serializer: "msgpack", kwargs: { k: [1, "two"] } });

    // Act
    const action = await relayRecord(sqsRecord(body, "m-1"), deps());

    // Assess
    expect(action).toBe("published");
    expect(await ourKeys()).toEqual([`${PREFIX}_kombu.binding.rr.declared`, `${PREFIX}rr.declared`]);
    expect(await redis.sMembers(`${PREFIX}_kombu.binding.rr.declared`)).toEqual([`rr.declared${SEP}${SEP}rr.declared`]);
    const [raw] = await redis.lRange(`${PREFIX}rr.declared`, 0, -1);
    const stored = JSON.parse(raw!) as Record<string, any>;
    expect(new Uint8Array(Buffer.from(stored.body, "base64"))).toEqual(message.body);
    expect(stored["content-type"]).toBe("application/x-msgpack");
    expect(stored["content-encoding"]).toBe("binary");
    expect(stored.headers).toEqual(message.properties.headers);
    expect(stored.properties.delivery_info).toEqual({ exchange: "", routing_key: "rr.declared" });
    expect(stored.properties.body_encoding).toBe("base64");
  });

  it("carries out no declaration the envelope asks for, and none for a queue the policy does not declare", async () => {
    // Prepare: an envelope asking to bind a queue of its own choosing to the default queue's exchange.
    const body = await envelope({ queue: "rr.undeclared" }, (e) => {
      e.declare = { queue: "attacker", exchange: "rr.declared", exchangeType: "direct", routingKey: "rr.declared", durable: true };
    });

    // Act
    await relayRecord(sqsRecord(body, "m-2"), deps());

    // Assess: only the list, no binding set at all.
    expect(await ourKeys()).toEqual([`${PREFIX}rr.undeclared`]);
  });

  it("pushes a priority onto kombu's list for its step (lower numbers run first on Redis)", async () => {
    await relayRecord(sqsRecord(await envelope({ queue: "rr.declared", priority: 7 }), "m-3"), deps());
    expect(await redis.lLen(`${PREFIX}rr.declared${SEP}6`)).toBe(1);
    expect(await redis.exists(`${PREFIX}rr.declared`)).toBe(0);
  });
});

describe("exchanges", () => {
  it("fails a topic publish no binding takes (ERR_UNROUTABLE, backed off for a retry), then routes it once a worker's binding exists", async () => {
    // Prepare
    const body = await envelope({ exchange: "rr.topic", routingKey: "video.compress" });
    const first = deps();

    // Act: before any worker bound a queue, then after one did (kombu's member: key, regex, queue).
    const err = await relayRecord(sqsRecord(body, "m-4"), first).catch((e: unknown) => e);
    await redis.sAdd(`${PREFIX}_kombu.binding.rr.topic`, [`video.#${SEP}^video\\..*?$${SEP}rr.video`]);
    const second = deps();
    const action = await relayRecord(sqsRecord(body, "m-4", { receiveCount: 2 }), second);

    // Assess
    expect(err).toBeInstanceOf(PublishError);
    expect((err as CeleryError).code).toBe("ERR_UNROUTABLE");
    expect(first.backoffs).toHaveLength(1);
    expect(first.backoffs[0]).toBeGreaterThan(0);
    expect(first.logger.lines.map((l) => l.message)).toEqual(["publish failed"]);
    expect(action).toBe("published");
    expect(await redis.lLen(`${PREFIX}rr.video`)).toBe(1);
  });

  it("refuses an exchange and routing key the policy does not list before Redis is touched", async () => {
    const d = deps();
    const err = await relayRecord(sqsRecord(await envelope({ exchange: "rr.topic", routingKey: "audio.x" }), "m-5"), d).catch((e: unknown) => e);
    expect((err as CeleryError).code).toBe("ERR_POLICY");
    expect(d.backoffs).toEqual([0]);
    expect(await ourKeys()).toEqual([]);
  });
});

describe("message checks", () => {
  it("holds a Redis broker to the relay's message checks: an oversized headers table is refused as poison and nothing is written", async () => {
    // Prepare: a header no Python producer could send (the table is over 64 KiB encoded).
    const d = deps();
    const body = await envelope({ queue: "rr.declared" }, (e) => {
      (e.properties as { headers: Record<string, unknown> }).headers.filler = "x".repeat(70_000);
    });

    // Act
    const err = await relayRecord(sqsRecord(body, "m-7"), d).catch((e: unknown) => e);

    // Assess
    expect((err as CeleryError).code).toBe("ERR_ENVELOPE");
    expect(d.backoffs).toEqual([0]);
    expect(await ourKeys()).toEqual([]);
  });
});

describe("revokes", () => {
  it("go out as kombu's mailbox sends them on Redis: PUBLISHed on the pidbox fanout channel, with no binding or list written", async () => {
    // Prepare: a subscriber where a worker's pidbox consumer listens (kombu psubscribes to its fanout topic).
    const sub = redis.duplicate();
    await sub.connect();
    const received: Array<{ channel: string; message: string }> = [];
    await sub.pSubscribe(`${PREFIX}/${DB}.celery.pidbox*`, (message, channel) => received.push({ channel, message }));
    const taskId = crypto.randomUUID();
    const revoke = encodeEnvelope(revokeMessage(taskId));

    // Act
    const action = await relayRecord(sqsRecord(revoke, "m-6"), deps());
    for (let i = 0; i < 50 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await sub.quit();

    // Assess
    expect(action).toBe("published");
    expect(received.map((r) => r.channel)).toEqual([`${PREFIX}/${DB}.celery.pidbox`]);
    const m = JSON.parse(received[0]!.message) as Record<string, any>;
    expect(m.properties.delivery_info).toEqual({ exchange: "celery.pidbox", routing_key: "" });
    expect(JSON.parse(Buffer.from(m.body, "base64").toString())).toMatchObject({ method: "revoke", arguments: { task_id: taskId, terminate: false } });
    expect(await ourKeys()).toEqual([]);
  });
});
