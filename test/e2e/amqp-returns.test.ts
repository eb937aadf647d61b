/**
 * Unroutable (returned) messages are told apart by publish sequence, never by correlation id: in
 * one batch on the real RabbitMQ, routable and unroutable mandatory tasks that share a correlation
 * id (and task id) each get their own outcome, in either order; on a headers exchange, where the
 * routing key does not decide, the message itself does.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Celery, type PublishOutcome, type TaskMessage } from "../../sdk/node.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { deleteQueues, purgeQueues, queueDepth, withChannel } from "../helpers/rabbit.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

const BROKER = "amqp://guest:guest@127.0.0.1:5672//";
const QUEUE = "ce.returns";
const HEADERS_QUEUE = "ce.returns-headers";
const SHARED_ID = "shared-correlation-id";
let transport: AmqpTransport;

beforeAll(async () => {
  await withChannel(async (ch) => {
    // Quorum queues confirm after their log is replicated and synced: a routed task's ack comes well
    // after the return of an unroutable task published after it, as it may in production.
    await ch.assertQueue(QUEUE, { durable: true, arguments: { "x-queue-type": "quorum" } });
    await ch.assertQueue(HEADERS_QUEUE, { durable: true, arguments: { "x-queue-type": "quorum" } });
    await ch.bindQueue(QUEUE, "amq.direct", "celery-edge.returns");
    await ch.bindQueue(HEADERS_QUEUE, "amq.headers", "", { "x-match": "all", route: "yes" });
  });
  transport = new AmqpTransport({ url: BROKER });
});

beforeEach(async () => {
  await purgeQueues([QUEUE, HEADERS_QUEUE]);
});

afterAll(async () => {
  await transport?.close();
  await deleteQueues([QUEUE, HEADERS_QUEUE]);
});

/** Task messages as the app builds them, all with the same task id (so the same correlation id). */
async function build(calls: Array<Parameters<Celery["sendTask"]>[1]>): Promise<TaskMessage[]> {
  const recorder = new RecordingTransport();
  const app = new Celery({ broker: recorder });
  for (const call of calls) await app.sendTask("tasks.echo", { taskId: SHARED_ID, mandatory: true, ...call });
  return recorder.messages;
}

const routable = { exchange: "amq.direct", routingKey: "celery-edge.returns", args: ["routable"] };
const unroutable: typeof routable = { exchange: "amq.direct", routingKey: "celery-edge.nobody.bound", args: ["unroutable"] };
const codes = (outcomes: PublishOutcome[]): string[] => outcomes.map((o) => (o.ok ? "ok" : o.error.code));

describe("returned messages are matched by publish sequence", () => {
  // Two hundred of each, alternating: RabbitMQ then sends several returns before the acks that follow them.
  const alternating = (first: typeof routable, second: typeof routable) => Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? first : second));
  for (const [name, order] of [
    ["routable first", alternating(routable, unroutable)],
    ["unroutable first", alternating(unroutable, routable)],
  ] as const) {
    it(`reports exactly the unroutable tasks of a batch sharing one correlation id (${name})`, async () => {
      // Prepare
      const messages = await build(order);
      expect(new Set(messages.map((m) => m.properties.correlationId))).toEqual(new Set([SHARED_ID]));

      // Act: how many returns come before their acks depends on RabbitMQ's timing; eight batches
      // make it all but certain that some do (matching by correlation id then fails every time).
      const batches: string[][] = [];
      for (let n = 0; n < 8; n++) batches.push(codes(await transport.publishMany(messages)));

      // Assess
      const expected = order.map((call) => (call === routable ? "ok" : "ERR_UNROUTABLE"));
      expect(batches).toEqual(Array.from({ length: 8 }, () => expected));
      expect(await queueDepth(QUEUE)).toBe(8 * 200);
    });
  }

  it("on a headers exchange (same exchange and routing key), tells the returned message by its content", async () => {
    // Prepare: amq.headers routes on the "route" header alone.
    const messages = await build([
      { exchange: "amq.headers", routingKey: "any", headers: { route: "yes" }, args: ["a"] },
      { exchange: "amq.headers", routingKey: "any", headers: { route: "no" }, args: ["b"] },
      { exchange: "amq.headers", routingKey: "any", headers: { route: "yes" }, args: ["c"] },
      { exchange: "amq.headers", routingKey: "any", headers: { route: "no" }, args: ["d"] },
    ]);

    // Act
    const outcomes = await transport.publishMany(messages);

    // Assess
    expect(codes(outcomes)).toEqual(["ok", "ERR_UNROUTABLE", "ok", "ERR_UNROUTABLE"]);
    expect(await queueDepth(HEADERS_QUEUE)).toBe(2);
  });
});
