/**
 * The AMQP transport names a failure by what RabbitMQ answered — the reply code and the method it
 * refused, which amqplib puts on its errors — and by which amqplib event came first, never by the
 * words of an error message. Names that spell "NOT_FOUND" and "404" prove the point: a locked
 * queue so named is a refusal (405 RESOURCE_LOCKED), not a missing queue.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Celery, CeleryError, PublishError, type TaskMessage } from "../../sdk/node.js";
import { brokerRefusal } from "../../sdk/transports/amqp-connection.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { deleteQueues, queueDepth, withChannel, withConnection } from "../helpers/rabbit.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

const BROKER = "amqp://guest:guest@127.0.0.1:5672//";
const LOCKED = "ce.errors.NOT_FOUND-404";
const REFUSING = "ce.errors.reject-publish";
const MISSING = "ce.errors.no-such-queue";
let transport: AmqpTransport;

beforeAll(async () => {
  await deleteQueues([LOCKED, REFUSING, MISSING]);
  // A queue that takes nothing, and says so with a basic.nack (RabbitMQ's reject-publish overflow).
  await withChannel(async (ch) => {
    await ch.assertQueue(REFUSING, { durable: true, arguments: { "x-max-length": 0, "x-overflow": "reject-publish" } });
  });
  transport = new AmqpTransport({ url: BROKER });
});

afterAll(async () => {
  await transport?.close();
  await deleteQueues([REFUSING]);
});

/** A task message as the app builds it for `call`. */
async function message(call: Parameters<Celery["sendTask"]>[1]): Promise<TaskMessage> {
  const recorder = new RecordingTransport();
  await new Celery({ broker: recorder }).sendTask("tasks.echo", { args: ["errors"], ...call });
  return recorder.messages[0]!;
}

/** A task for `queue` through the default exchange with nothing to declare first (as the relay may send it). */
async function toQueue(queue: string, immediate = false): Promise<TaskMessage> {
  return { ...(await message({ immediate })), exchange: "", routingKey: queue, declare: null };
}

describe("AMQP failures, classified by the broker's reply", () => {
  it("reports a queue locked by another connection as a refusal, not as missing, whatever its name says", async () => {
    // Prepare: an exclusive queue held by another connection; a passive declare of it gets 405.
    await withConnection(async (holder) => {
      const ch = await holder.createChannel();
      await ch.assertQueue(LOCKED, { exclusive: true });

      // Act: nothing to declare, so the queue is only checked (a passive queue.declare).
      const err = await transport.publish(await toQueue(LOCKED, true)).catch((e: unknown) => e);

      // Assess
      expect(err).toBeInstanceOf(PublishError);
      expect((err as CeleryError).code).toBe("ERR_PUBLISH");
      expect((err as Error).message).toContain("RESOURCE_LOCKED");
      expect(brokerRefusal((err as Error).cause)).toEqual({ replyCode: 405, classId: 50, methodId: 10 });
    });
  });

  it("reports an immediate task to a queue that does not exist as ERR_NO_CONSUMERS (404 on queue.declare)", async () => {
    // Act
    const err = await transport.publish(await toQueue(MISSING, true)).catch((e: unknown) => e);

    // Assess
    expect((err as CeleryError).code).toBe("ERR_NO_CONSUMERS");
    expect((err as Error).message).toContain("does not exist");
    expect(brokerRefusal((err as Error).cause)).toEqual({ replyCode: 404, classId: 50, methodId: 10 });
  });

  it("reports a missing exchange as ERR_EXCHANGE_NOT_FOUND (404 on exchange.declare)", async () => {
    // Act
    const err = await transport.publish(await message({ exchange: "ce.errors.no-such-exchange", routingKey: "x" })).catch((e: unknown) => e);

    // Assess
    expect((err as CeleryError).code).toBe("ERR_EXCHANGE_NOT_FOUND");
    expect(brokerRefusal((err as Error).cause)).toEqual({ replyCode: 404, classId: 40, methodId: 10 });
  });

  it("reports a basic.nack as ERR_NACKED and keeps publishing on the same connection", async () => {
    // Prepare
    const opened = transport.connectionsOpened;

    // Act
    const err = await transport.publish(await toQueue(REFUSING)).catch((e: unknown) => e);
    const after = await transport.publish(await toQueue(REFUSING)).catch((e: unknown) => e);

    // Assess: nacked, not "channel closed"; the connection and channel stay up.
    expect(err).toBeInstanceOf(PublishError);
    expect((err as CeleryError).code).toBe("ERR_NACKED");
    expect((after as CeleryError).code).toBe("ERR_NACKED");
    expect(transport.connectionsOpened).toBe(opened);
    expect(await queueDepth(REFUSING)).toBe(0);
  });
});
