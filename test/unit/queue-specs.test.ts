/**
 * The app's `queues` config (#16): durability and quorum queues as the broker would be asked to
 * declare them, and the specs RabbitMQ 3.10 would refuse, refused when the (Node) app is made. What the
 * transport does with a queue that already exists: test/e2e/existing-queues.test.ts.
 */
import { describe, expect, it } from "vitest";
import { Celery, ConfigurationError, type QueueSpec } from "../../sdk/node.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

/** The declaration a task to `queue` carries, with `spec` as that queue's entry in `queues`. */
async function declarationFor(spec: QueueSpec, queue = "ce.unit.q") {
  const recorder = new RecordingTransport();
  await new Celery({ broker: recorder, queues: { [queue]: spec } }).sendTask("tasks.echo", { queue });
  return recorder.messages[0]!.declare;
}

describe("a queue in the app's queues config is declared", () => {
  it("durable, without arguments, when the spec says nothing (Celery's defaults)", async () => {
    // Act
    const d = await declarationFor({});

    // Assess
    expect(d).toEqual({ queue: "ce.unit.q", exchange: "ce.unit.q", exchangeType: "direct", routingKey: "ce.unit.q" });
    expect(d?.durable ?? true).toBe(true);
  });

  it("non-durable with durable: false", async () => {
    expect((await declarationFor({ durable: false }))?.durable).toBe(false);
  });

  it("as a quorum queue (x-queue-type) with queueType: \"quorum\", keeping its other arguments", async () => {
    // Act
    const d = await declarationFor({ queueType: "quorum", queueArguments: { "x-delivery-limit": 5 } });

    // Assess
    expect(d?.arguments).toEqual({ "x-delivery-limit": 5, "x-queue-type": "quorum" });
    expect(d?.durable ?? true).toBe(true);
  });

  it("as a quorum queue when its arguments say so, as kombu's queue_arguments do", async () => {
    expect((await declarationFor({ queueArguments: { "x-queue-type": "quorum" } }))?.arguments).toEqual({ "x-queue-type": "quorum" });
  });

  it("without x-queue-type for queueType: \"classic\" (RabbitMQ's default, equivalent to naming it)", async () => {
    expect((await declarationFor({ queueType: "classic", queueArguments: { "x-max-priority": 10 } }))?.arguments).toEqual({ "x-max-priority": 10 });
  });

  it("with a task's priority still sent to a quorum queue, as Celery sends it (RabbitMQ 3.10 ignores it)", async () => {
    // Prepare
    const recorder = new RecordingTransport();
    const app = new Celery({ broker: recorder, queues: { "ce.unit.qq": { queueType: "quorum" } } });

    // Act
    await app.sendTask("tasks.echo", { queue: "ce.unit.qq", priority: 7 });

    // Assess
    expect(recorder.messages[0]!.properties.priority).toBe(7);
  });
});

describe("a queue spec RabbitMQ would refuse is a ConfigurationError when the app is made", () => {
  const cases: Array<[string, QueueSpec, RegExp]> = [
    ["a quorum queue with x-max-priority", { queueType: "quorum", queueArguments: { "x-max-priority": 10 } }, /x-max-priority is not allowed on a quorum queue/],
    ["x-max-priority with x-queue-type quorum in the arguments", { queueArguments: { "x-queue-type": "quorum", "x-max-priority": 5 } }, /x-max-priority/],
    ["a non-durable quorum queue", { queueType: "quorum", durable: false }, /durable must be true for a quorum queue/],
    ["queueType and x-queue-type disagreeing", { queueType: "classic", queueArguments: { "x-queue-type": "quorum" } }, /queueType is "classic" but/],
    ["a stream queue", { queueArguments: { "x-queue-type": "stream" } }, /x-queue-type must be "classic" or "quorum"/],
    ["an unknown queueType", { queueType: "lazy" as never }, /queueType must be "classic" or "quorum"/],
    ["a durable that is not a boolean", { durable: "yes" as never }, /durable must be true or false/],
    ["queueArguments that are not an object", { queueArguments: [] as never }, /queueArguments must be an object/],
  ];

  it.each(cases)("%s", (_, spec, message) => {
    // Act
    const made = (): Celery => new Celery({ broker: new RecordingTransport(), queues: { "ce.unit.bad": spec } });

    // Assess
    expect(made).toThrow(ConfigurationError);
    expect(made).toThrow(message);
    try {
      made();
    } catch (err) {
      expect((err as ConfigurationError).code).toBe("ERR_CONFIGURATION");
      expect((err as Error).message).toContain('queues["ce.unit.bad"]');
    }
  });

  it("even for a queue no task is ever routed to", () => {
    // Act / Assess
    expect(() => new Celery({ broker: new RecordingTransport(), queues: { "ce.unit.ok": {}, "ce.unit.never-used": { queueType: "quorum", durable: false } } })).toThrow(
      /queues\["ce.unit.never-used"\]\.durable/,
    );
  });
});
