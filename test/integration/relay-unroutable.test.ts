/**
 * The relay against the real RabbitMQ: a routing key no queue is bound to fails the record with
 * PublishError ERR_UNROUTABLE, and the connection keeps serving the next record. The refusals that
 * never reach a broker: test/unit/bad-input.test.ts.
 */
import { afterAll, describe, expect, it } from "vitest";
import { PublishError, type CeleryError } from "../../sdk/node.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { relayRecord } from "../../functions/relay/relay.js";
import { resolvePolicy } from "../../functions/shared/policy.js";
import { deleteQueues, queueDepth } from "../helpers/rabbit.js";
import { recordingLogger, validEnvelope } from "../helpers/relay-input.js";
import { sqsRecord } from "../helpers/sqs-record.js";

// amq.* is closed to every policy, so the unroutable case uses an exchange the test declares.
const WIDE = resolvePolicy({ queues: [{ name: "ce.bad-input.probe", declare: true }], exchanges: [{ exchange: "ce.bad-input.direct", routingKeys: ["#"], declare: { type: "direct" } }] });

describe("the relay refuses an unroutable key on the real broker", () => {
  const broker = new AmqpTransport({ url: "amqp://guest:guest@127.0.0.1:5672//", connectTimeout: 5_000, publishTimeout: 10_000 });
  afterAll(async () => {
    await broker.close();
  });

  it("fails the record with PublishError ERR_UNROUTABLE and logs the task id and code", async () => {
    // Prepare: an allowed exchange that exists, and a routing key no queue is bound to.
    const logger = recordingLogger();
    const envelope = await validEnvelope({ exchange: "ce.bad-input.direct", routingKey: "celery-edge.nobody.bound" });
    envelope.declare = null;

    // Act
    const err = await relayRecord(sqsRecord(JSON.stringify(envelope), "m-3"), { broker, policy: WIDE, trustedForwarders: [], forceMandatory: true, logger }).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(PublishError);
    expect((err as CeleryError).code).toBe("ERR_UNROUTABLE");
    expect((err as Error).message).toMatch(/unroutable: no queue bound to exchange "ce\.bad-input\.direct" with routing key "celery-edge\.nobody\.bound"/);
    expect(logger.lines).toEqual([
      { level: "error", message: "publish failed", extra: expect.objectContaining({ messageId: "m-3", taskId: (envelope.task as { id: string }).id, code: "ERR_UNROUTABLE" }) },
    ]);
  });

  it("still publishes the next record on the same connection", async () => {
    const logger = recordingLogger();
    const envelope = await validEnvelope({ queue: "ce.bad-input.probe" });
    try {
      const action = await relayRecord(sqsRecord(JSON.stringify(envelope), "m-4"), { broker, policy: WIDE, trustedForwarders: [], forceMandatory: true, logger });
      expect(action).toBe("published");
      expect(await queueDepth("ce.bad-input.probe")).toBe(1);
      expect(broker.connectionsOpened).toBe(1);
    } finally {
      await deleteQueues(["ce.bad-input.probe"]);
    }
  });
});
