/**
 * SDK → SQS (fauxqs) → real relay handler → RabbitMQ → real Celery worker.
 */
import { GetQueueAttributesCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Celery, PayloadTooLargeError, type CeleryError } from "../../sdk/node.js";
import { sqsRelay } from "../../sdk/sqs.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { LOCAL_CREDENTIALS } from "../../scripts/local/fauxqs.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { deleteQueues, getRawMessage, purgeQueues } from "../helpers/rabbit.js";
import { startRelayHarness, type RelayHarness } from "../helpers/relay-harness.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";

const log = new ExecutionLog();
let worker: CeleryWorker;
let harness: RelayHarness;
let proxy: TcpProxy;
let app: Celery;

beforeAll(async () => {
  await purgeQueues(["ce.default", "ce.video", "ce.image"]);
  // The relay reaches RabbitMQ through a proxy so a test can take the broker away and bring it back.
  proxy = await startTcpProxy({ host: "127.0.0.1", port: 5672 });
  harness = await startRelayHarness({ brokerUrl: `amqp://guest:guest@127.0.0.1:${proxy.port}//`, maxReceiveCount: 3, visibilityTimeout: 1 });
  worker = await startCeleryWorker({ queues: ["ce.default", "ce.video", "ce.image"] });
  app = new Celery({
    broker: sqsRelay({ queueUrl: harness.intake.url, endpoint: harness.sqs.endpoint, credentials: LOCAL_CREDENTIALS }),
    defaultQueue: "ce.default",
  });
});

afterAll(async () => {
  await app?.close();
  await harness?.stop();
  await proxy?.close();
  await worker?.stop();
});

beforeEach(async () => {
  await log.clear();
});

async function dlqDepth(): Promise<number> {
  const out = await harness.client.send(new GetQueueAttributesCommand({ QueueUrl: harness.intake.dlqUrl!, AttributeNames: ["ApproximateNumberOfMessages"] }));
  return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0);
}

describe("tasks sent through the SQS relay run on the worker", () => {
  for (const serializer of ["json", "yaml", "msgpack", "pickle"]) {
    it(`round-trips args, routing, priority and headers with ${serializer}`, async () => {
      const r = await app.sendTask("tasks.echo", {
        args: [1, "two", { three: [3.5, null] }, "h\u00e9llo"],
        kwargs: { k: "v" },
        serializer,
        exchange: "celery_edge.topic",
        routingKey: "video.compress",
        priority: 7,
        headers: { tenant: "acme", attempt: 3 },
      });
      const rec = await log.waitForTask(r.id, 20_000);
      expect(rec.args).toEqual([1, "two", { three: [3.5, null] }, "h\u00e9llo"]);
      expect(rec.kwargs).toEqual({ k: "v" });
      expect([rec.exchange, rec.routing_key, rec.priority]).toEqual(["celery_edge.topic", "video.compress", 7]);
      expect(rec.headers).toMatchObject({ tenant: "acme", attempt: 3, task: "tasks.echo", id: r.id });
    });
  }

  it("carries characters SQS refuses (U+FFFE, U+FFFF, in args, kwargs and the task id) to the worker unchanged", async () => {
    // Arrange: what the direct path publishes as is; raw in an SQS body, SendMessage would fail.
    const odd = "a\uFFFEb\uFFFFc";

    // Act
    const r = await app.sendTask("tasks.echo", { args: [odd], kwargs: { [odd]: odd }, taskId: `id-${odd}-${Date.now()}` });

    // Assert
    const rec = await log.waitForTask(r.id, 20_000);
    expect(rec.args).toEqual([odd]);
    expect(rec.kwargs).toEqual({ [odd]: odd });
  });

  it("sends many with SendMessageBatch and every task runs", async () => {
    const results = await app.sendMany(Array.from({ length: 35 }, (_, i) => ({ task: "tasks.add", args: [i, i] })));
    const recs = await log.waitFor(35, 30_000);
    expect(new Set(recs.map((r) => r.id))).toEqual(new Set(results.map((r) => r.id)));
  });

  it("delays a near-ETA task with SQS DelaySeconds and the worker still honours the exact eta", async () => {
    const eta = new Date(Date.now() + 4_000);
    const r = await app.sendTask("tasks.echo", { args: ["soon"], eta });
    const rec = await log.waitForTask(r.id, 30_000);
    expect(rec.started_at * 1000).toBeGreaterThanOrEqual(eta.getTime());
    expect(rec.started_at * 1000 - eta.getTime()).toBeLessThan(3_000);
  });
});

describe("the relay republishes byte for byte", () => {
  it("delivers the same properties, headers and body as the direct AMQP path", async () => {
    const queue = "ce.capture";
    await deleteQueues([queue]);
    const direct = new AmqpTransport({ url: "amqp://guest:guest@127.0.0.1:5672//" });
    try {
      for (const serializer of ["json", "msgpack", "pickle"]) {
        const message = await app.buildMessage("tasks.echo", { args: [1, "é", { x: [1.5] }], kwargs: { z: null }, serializer, queue, priority: 3, expires: 600, compression: serializer === "pickle" ? "zlib" : undefined });
        await direct.publish(message);
        const viaDirect = await getRawMessage(queue, 5_000);
        await app.transport.publish(message);
        const viaRelay = await getRawMessage(queue, 20_000);
        expect(viaDirect).not.toBeNull();
        expect(viaRelay).not.toBeNull();
        expect(Buffer.compare(viaRelay!.content, viaDirect!.content)).toBe(0);
        expect(viaRelay!.properties).toEqual(viaDirect!.properties);
        expect([viaRelay!.fields.exchange, viaRelay!.fields.routingKey]).toEqual([viaDirect!.fields.exchange, viaDirect!.fields.routingKey]);
      }
    } finally {
      await direct.close();
      await deleteQueues([queue]);
    }
  });
});

describe("nothing is lost", () => {
  it("redelivers records while the broker is unreachable and runs every task once it is back", async () => {
    proxy.setDown(true);
    const failuresBefore = harness.runner.stats.failures;
    const results = await app.sendMany(Array.from({ length: 20 }, (_, i) => ({ task: "tasks.add", args: [i, 100] })));
    // Let the relay fail each record at least once.
    const deadline = Date.now() + 15_000;
    while (harness.runner.stats.failures - failuresBefore < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(harness.runner.stats.failures - failuresBefore).toBeGreaterThanOrEqual(20);
    expect((await log.read()).length).toBe(0);
    proxy.setDown(false);
    const recs = await log.waitFor(20, 30_000);
    const ids = new Set(results.map((r) => r.id));
    expect(new Set(recs.map((r) => r.id))).toEqual(ids);
    expect(await dlqDepth()).toBe(0);
  });

  it("sends a malformed envelope to the DLQ after maxReceiveCount, with the reason logged", async () => {
    const { SendMessageCommand } = await import("@aws-sdk/client-sqs");
    const before = await dlqDepth();
    await harness.client.send(new SendMessageCommand({ QueueUrl: harness.intake.url, MessageBody: '{"celeryEdgeEnvelope": 99}' }));
    const deadline = Date.now() + 20_000;
    while ((await dlqDepth()) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect(await dlqDepth()).toBe(before + 1);
    expect(harness.logs.some((l) => l.includes("unsupported version 99"))).toBe(true);
  });

  it("refuses a RabbitMQ built-in exchange, and an unroutable key, into the DLQ", async () => {
    const before = await dlqDepth();
    const a = await app.sendTask("tasks.echo", { args: [], exchange: "amq.topic", routingKey: "x" });
    const b = await app.sendTask("tasks.echo", { args: [], exchange: "celery_edge.topic", routingKey: "nobody.bound" });
    const deadline = Date.now() + 25_000;
    while ((await dlqDepth()) < before + 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect(await dlqDepth()).toBe(before + 2);
    const logged = harness.logs.join("\n");
    expect(logged).toContain(`"taskId":"${b.id}"`);
    expect(logged).toContain("destination is a RabbitMQ built-in exchange");
    expect(logged).toContain("ERR_POLICY");
    expect(logged).toContain("ERR_UNROUTABLE");
    expect(a.id).not.toBe(b.id);
    const dlq = await harness.client.send(new ReceiveMessageCommand({ QueueUrl: harness.intake.dlqUrl!, MaxNumberOfMessages: 10 }));
    expect((dlq.Messages ?? []).length).toBeGreaterThan(0);
  });

  it("refuses an oversize task before sending, naming the size and the limit", async () => {
    const err = await app.sendTask("tasks.echo", { args: ["x".repeat(1_100_000)] }).catch((e: CeleryError) => e);
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect((err as PayloadTooLargeError).limit).toBe(1_048_576);
    expect((err as PayloadTooLargeError).size).toBeGreaterThan(1_100_000);
  });

  it("never logs the broker password", () => {
    expect(harness.logs.join("\n")).not.toContain("guest:guest");
  });
});
