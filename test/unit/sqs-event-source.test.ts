/**
 * The local SQS event source against real fauxqs: Lambda-shaped records, partial batch responses,
 * whole-batch retries, and the queue's redrive policy moving poison messages to the DLQ.
 */
import { createHash } from "node:crypto";
import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createQueue, sqsClientConfig, startSqsEmulator, type SqsEmulator } from "../../scripts/local/fauxqs.js";
import {
  startSqsEventSource,
  type SqsBatchHandler,
  type SqsEventSource,
  type SqsEventSourceOptions,
  type SqsEventSourcePhase,
} from "../../scripts/local/sqs-event-source.js";

let emulator: SqsEmulator;
let sqs: SQSClient;
let queueSeq = 0;
const running: SqsEventSource[] = [];

beforeAll(async () => {
  emulator = await startSqsEmulator();
  sqs = new SQSClient(sqsClientConfig(emulator.endpoint));
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

afterAll(async () => {
  sqs.destroy();
  await emulator.stop();
});

/** A fresh queue per test, 1 s visibility timeout so failures come back quickly. */
async function freshQueue(maxReceiveCount = 5) {
  return createQueue(sqs, `event-source-${++queueSeq}`, { visibilityTimeout: 1, dlq: { maxReceiveCount } });
}

async function sendBodies(queueUrl: string, bodies: readonly string[]): Promise<void> {
  await sqs.send(
    new SendMessageBatchCommand({
      QueueUrl: queueUrl,
      Entries: bodies.map((body, i) => ({ Id: `m${i}`, MessageBody: body })),
    }),
  );
}

function start(
  queue: { url: string; arn: string },
  handler: SqsBatchHandler,
  extra: Partial<SqsEventSourceOptions> = {},
): { runner: SqsEventSource; errors: Array<{ phase: SqsEventSourcePhase; error: unknown }> } {
  const errors: Array<{ phase: SqsEventSourcePhase; error: unknown }> = [];
  const runner = startSqsEventSource({
    client: sqs,
    queueUrl: queue.url,
    queueArn: queue.arn,
    handler,
    waitTimeSeconds: 1,
    onError: (error, phase) => errors.push({ phase, error }),
    ...extra,
  });
  running.push(runner);
  return { runner, errors };
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000, state?: () => unknown): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms${state ? `; state: ${JSON.stringify(state())}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Visible + in-flight + delayed messages left on a queue. */
async function messagesLeft(queueUrl: string): Promise<number> {
  const out = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
      ],
    }),
  );
  return Object.values(out.Attributes ?? {}).reduce((sum, v) => sum + Number(v), 0);
}

describe("startSqsEventSource", () => {
  it("hands the handler Lambda-shaped records and a context, and deletes the batch when it returns void", async () => {
    // Prepare
    const queue = await freshQueue();
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: queue.url,
        MessageBody: '{"task":"tasks.add"}',
        MessageAttributes: {
          celeryTask: { DataType: "String", StringValue: "tasks.add" },
          blob: { DataType: "Binary", BinaryValue: new Uint8Array([0xca, 0xfe]) },
        },
      }),
    );
    const seen: Array<{ event: SQSEvent; context: Context; remaining: number }> = [];

    // Act
    const { runner, errors } = start(
      queue,
      async (event, context) => {
        seen.push({ event, context, remaining: context.getRemainingTimeInMillis() });
      },
      { functionName: "celery-relay", timeoutMs: 10_000 },
    );
    await waitFor(() => seen.length === 1);
    await runner.stop();

    // Assess
    const record = seen[0]?.event.Records[0] as SQSRecord;
    expect(seen[0]?.event.Records).toHaveLength(1);
    expect(record).toMatchObject({
      body: '{"task":"tasks.add"}',
      md5OfBody: createHash("md5").update('{"task":"tasks.add"}').digest("hex"),
      eventSource: "aws:sqs",
      eventSourceARN: queue.arn,
      awsRegion: "us-east-1",
      attributes: { ApproximateReceiveCount: "1", SenderId: expect.any(String) },
      messageAttributes: {
        celeryTask: { stringValue: "tasks.add", stringListValues: [], binaryListValues: [], dataType: "String" },
        blob: { binaryValue: Buffer.from([0xca, 0xfe]).toString("base64"), stringListValues: [], binaryListValues: [], dataType: "Binary" },
      },
    });
    expect(record.messageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(record.receiptHandle).not.toBe("");
    expect(record.attributes.SentTimestamp).toMatch(/^\d{13}$/);
    expect(record.attributes.ApproximateFirstReceiveTimestamp).toMatch(/^\d{13}$/);
    expect(record.md5OfMessageAttributes).toMatch(/^[0-9a-f]{32}$/);
    expect(seen[0]?.context).toMatchObject({
      functionName: "celery-relay",
      functionVersion: "$LATEST",
      invokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:celery-relay",
    });
    expect(seen[0]?.context.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen[0]?.remaining).toBeGreaterThan(9_000);
    expect(seen[0]?.remaining).toBeLessThanOrEqual(10_000);
    expect(runner.stats).toEqual({ batches: 1, records: 1, failures: 0 });
    expect(await messagesLeft(queue.url)).toBe(0);
    expect(errors).toEqual([]);
  });

  it("redelivers only the record named in batchItemFailures", async () => {
    // Prepare: three messages, all in the queue before polling starts so they arrive as one batch.
    const queue = await freshQueue();
    await sendBodies(queue.url, ["a", "b", "c"]);
    const batches: SQSRecord[][] = [];
    const handler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
      batches.push(event.Records);
      const failB = batches.length === 1;
      return {
        batchItemFailures: event.Records.filter((r) => failB && r.body === "b").map((r) => ({ itemIdentifier: r.messageId })),
      };
    };

    // Act
    const { runner, errors } = start(queue, handler);
    await waitFor(() => batches.length === 2);
    await runner.stop();

    // Assess
    expect(batches[0]?.map((r) => r.body).sort()).toEqual(["a", "b", "c"]);
    expect(batches[1]?.map((r) => r.body)).toEqual(["b"]);
    expect(batches[1]?.[0]?.messageId).toBe(batches[0]?.find((r) => r.body === "b")?.messageId);
    expect(batches[1]?.[0]?.attributes.ApproximateReceiveCount).toBe("2");
    expect(runner.stats).toEqual({ batches: 2, records: 4, failures: 1 });
    expect(await messagesLeft(queue.url)).toBe(0);
    expect(errors).toEqual([]);
  });

  it("redelivers the whole batch when the handler throws", async () => {
    // Prepare
    const queue = await freshQueue();
    await sendBodies(queue.url, ["x", "y"]);
    const batches: SQSRecord[][] = [];
    const handler = async (event: SQSEvent): Promise<void> => {
      batches.push(event.Records);
      if (batches.length === 1) throw new Error("worker unavailable");
    };

    // Act
    const { runner, errors } = start(queue, handler);
    await waitFor(() => batches.length === 2);
    await runner.stop();

    // Assess
    const ids = (records: SQSRecord[] | undefined) => (records ?? []).map((r) => r.messageId).sort();
    expect(batches[0]).toHaveLength(2);
    expect(ids(batches[1])).toEqual(ids(batches[0]));
    expect(batches[1]?.map((r) => r.attributes.ApproximateReceiveCount)).toEqual(["2", "2"]);
    expect(runner.stats).toEqual({ batches: 2, records: 4, failures: 2 });
    expect(errors).toEqual([{ phase: "handler", error: new Error("worker unavailable") }]);
    expect(await messagesLeft(queue.url)).toBe(0);
  });

  it("fails the whole batch when batchItemFailures names a message that is not in it", async () => {
    const queue = await freshQueue();
    await sendBodies(queue.url, ["p", "q"]);
    const batches: SQSRecord[][] = [];

    const { runner } = start(queue, async (event) => {
      batches.push(event.Records);
      return batches.length === 1 ? { batchItemFailures: [{ itemIdentifier: "not-a-message-id" }] } : undefined;
    });
    // Seen once under full-suite load: no second batch within 10 s. The state says what did arrive.
    await waitFor(() => batches.length === 2, 20_000, () => ({ batches: batches.map((b) => b.map((r) => [r.body, r.attributes.ApproximateReceiveCount])), stats: runner.stats }));
    await runner.stop();

    expect(batches[1]).toHaveLength(2);
    expect(runner.stats.failures).toBe(2);
  });

  it("moves a record that keeps failing to the DLQ after maxReceiveCount receives", async () => {
    // Prepare
    const queue = await freshQueue(2);
    await sendBodies(queue.url, ["poison", "fine"]);
    const deliveries: string[] = [];
    const handler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
      deliveries.push(...event.Records.map((r) => r.body));
      return {
        batchItemFailures: event.Records.filter((r) => r.body === "poison").map((r) => ({ itemIdentifier: r.messageId })),
      };
    };

    // Act: wait until the poison message shows up in the DLQ.
    const { runner } = start(queue, handler);
    const dlqMessages = [];
    const deadline = Date.now() + 15_000;
    while (dlqMessages.length === 0 && Date.now() < deadline) {
      const out = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: queue.dlqUrl, WaitTimeSeconds: 1, MessageSystemAttributeNames: ["All"] }),
      );
      dlqMessages.push(...(out.Messages ?? []));
    }
    await runner.stop();

    // Assess
    expect(dlqMessages.map((m) => m.Body)).toEqual(["poison"]);
    expect(deliveries.filter((b) => b === "poison")).toHaveLength(2);
    expect(deliveries.filter((b) => b === "fine")).toHaveLength(1);
    expect(runner.stats.failures).toBe(2);
    expect(await messagesLeft(queue.url)).toBe(0);
  });

  it("waits in stop() for the batch in flight and deletes it", async () => {
    // Prepare
    const queue = await freshQueue();
    await sendBodies(queue.url, ["slow"]);
    let entered!: () => void;
    const handlerEntered = new Promise<void>((resolve) => (entered = resolve));
    let finished = false;

    // Act
    const { runner } = start(queue, async () => {
      entered();
      await new Promise((resolve) => setTimeout(resolve, 300));
      finished = true;
    });
    await handlerEntered;
    await runner.stop();

    // Assess
    expect(finished).toBe(true);
    expect(runner.stats).toEqual({ batches: 1, records: 1, failures: 0 });
    expect(await messagesLeft(queue.url)).toBe(0);
  });

  it("gathers up to batchSize records across receives within the batching window", async () => {
    const queue = await freshQueue();
    await sendBodies(queue.url, ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
    await sendBodies(queue.url, ["11", "12"]);
    const sizes: number[] = [];

    const { runner } = start(
      queue,
      async (event) => {
        sizes.push(event.Records.length);
      },
      { batchSize: 12, maxBatchingWindowMs: 500 },
    );
    await waitFor(() => sizes.reduce((a, b) => a + b, 0) === 12);
    await runner.stop();

    expect(sizes).toEqual([12]);
  });

  it("runs several pollers side by side with concurrency", async () => {
    const queue = await freshQueue();
    await sendBodies(queue.url, ["c1", "c2", "c3", "c4"]);
    let active = 0;
    let peak = 0;

    const { runner } = start(
      queue,
      async () => {
        active += 1;
        peak = Math.max(peak, active);
        await new Promise((resolve) => setTimeout(resolve, 200));
        active -= 1;
      },
      { batchSize: 1, concurrency: 2 },
    );
    await waitFor(() => runner.stats.records === 4);
    await runner.stop();

    expect(peak).toBe(2);
    expect(runner.stats.batches).toBe(4);
  });

  it("stops cleanly with nothing to do and rejects impossible options", async () => {
    const queue = await freshQueue();
    const { runner } = start(queue, async () => undefined);

    await runner.stop();

    expect(runner.stats).toEqual({ batches: 0, records: 0, failures: 0 });
    expect(() => start(queue, async () => undefined, { batchSize: 20 })).toThrow(/maxBatchingWindowMs/);
    expect(() => start({ ...queue, arn: "not-an-arn" }, async () => undefined)).toThrow(/SQS queue ARN/);
  });
});
