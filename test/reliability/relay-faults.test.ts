/**
 * Faults on the SQS path: SDK → SQS (fauxqs) → real relay handler → RabbitMQ (restarted mid-run) →
 * real Celery worker. Figures are printed as `[reliability] …` lines and kept in RELIABILITY.md.
 *
 * Not repeated here (test/e2e/relay.test.ts): a malformed envelope dead-lettered after
 * maxReceiveCount with its reason logged; an exchange outside the relay policy and an unroutable key
 * dead-lettered; an unreachable broker (TCP proxy down) redelivering every record until it is back.
 */
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Celery } from "../../sdk/node.js";
import { encodeEnvelope } from "../../sdk/wire/envelope.js";
import { sqsRelay } from "../../sdk/sqs.js";
import { LOCAL_CREDENTIALS } from "../../scripts/local/fauxqs.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { purgeQueues, withChannel } from "../helpers/rabbit.js";
import { startRelayHarness, type RelayHarness } from "../helpers/relay-harness.js";
import { sqsRecord } from "../helpers/sqs-record.js";
import { RecordCounter, SOAK_SIZE, ensureBrokerUp, queueSentinel, report, restartBroker, sleep, tally, workerEnv } from "./helpers/faults.js";

const QUEUE = "ce.rel.relay";
const MAX_RECEIVE_COUNT = 5; // the CeleryRelay default
const records = new RecordCounter();
let worker: CeleryWorker;
let harness: RelayHarness;
let app: Celery;
let workerRestarts = 0;
const POOL_PROCESSES = 4;

async function startWorker(): Promise<CeleryWorker> {
  return startCeleryWorker({ queues: [QUEUE], concurrency: POOL_PROCESSES, env: workerEnv(QUEUE) });
}


beforeAll(async () => {
  process.env.POWERTOOLS_LOG_LEVEL = "WARN"; // 10k "published" lines would only slow the run down
  await records.open();
  harness = await startRelayHarness({ brokerUrl: "amqp://guest:guest@127.0.0.1:5672//", maxReceiveCount: MAX_RECEIVE_COUNT, visibilityTimeout: 3 });
  worker = await startWorker();
  await purgeQueues([QUEUE]);
  app = new Celery({
    broker: sqsRelay({ queueUrl: harness.intake.url, endpoint: harness.sqs.endpoint, credentials: LOCAL_CREDENTIALS }),
    defaultQueue: QUEUE,
  });
});

afterAll(async () => {
  await ensureBrokerUp();
  await app?.close();
  await harness?.stop();
  await worker?.stop();
  await records.close();
});

beforeEach(async () => {
  await records.clear();
});

afterEach(async () => {
  // Whatever a test did, the next one (and the next file) gets a running broker and worker.
  await ensureBrokerUp();
  if (!worker.isRunning()) {
    workerRestarts++;
    worker = await startWorker();
  }
});

async function dlqDepth(): Promise<number> {
  const out = await harness.client.send(new GetQueueAttributesCommand({ QueueUrl: harness.intake.dlqUrl!, AttributeNames: ["ApproximateNumberOfMessages"] }));
  return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0);
}

async function intakeBacklog(): Promise<number> {
  const out = await harness.client.send(
    new GetQueueAttributesCommand({ QueueUrl: harness.intake.url, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }),
  );
  return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) + Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
}

async function waitUntil(what: string, condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe("a broker restart during a run through the relay", () => {
  it(`runs every one of ${SOAK_SIZE} tasks at least once, loses none and dead-letters none`, async () => {
    // Prepare
    const started = Date.now();
    const failuresBefore = harness.runner.stats.failures;
    const dlqBefore = await dlqDepth();
    const ids = new Set<string>();

    // Act: the producer sends in batches while the broker is restarted once a quarter has run.
    const producing = (async () => {
      for (let sent = 0; sent < SOAK_SIZE; sent += 100) {
        const calls = Array.from({ length: Math.min(100, SOAK_SIZE - sent) }, (_, i) => ({ task: "tasks.add", args: [sent + i, 1], ignoreResult: true }));
        for (const r of await app.sendMany(calls)) ids.add(r.id);
      }
    })();
    await waitUntil("a quarter of the tasks to run", async () => (await records.total()) >= SOAK_SIZE / 4, 120_000);
    const executedBeforeRestart = await records.total();
    const { downAt, upAt } = await restartBroker(3_000);
    await producing;
    const counts = await records.waitForAll(ids, 180_000);
    // Records whose publish was confirmed but whose success the relay never reported come back after
    // the visibility timeout and run again: wait until the intake queue is empty so they are counted.
    await waitUntil("the intake queue to drain", async () => (await intakeBacklog()) === 0, 60_000);
    await records.afterQueued(queueSentinel(QUEUE), POOL_PROCESSES);
    const final = await records.perTask();

    // Assess
    const { executed, duplicated, lost } = tally(ids, final);
    const relayFailures = harness.runner.stats.failures - failuresBefore;
    const deadLettered = (await dlqDepth()) - dlqBefore;
    report("relay broker restart", {
      sent: ids.size,
      executed,
      duplicated,
      lost: lost.length,
      deadLettered,
      relayRecordFailures: relayFailures,
      executedBeforeRestart,
      outageMs: upAt - downAt,
      workerRestarts,
      seconds: ((Date.now() - started) / 1000).toFixed(1),
    });
    expect(ids.size).toBe(SOAK_SIZE);
    expect(executedBeforeRestart).toBeLessThan(SOAK_SIZE); // the restart really happened mid-run
    expect(relayFailures).toBeGreaterThan(0); // and the relay really saw it
    expect(lost).toEqual([]);
    expect(executed).toBe(SOAK_SIZE);
    expect(deadLettered).toBe(0);
    expect(worker.logs()).toContain("Connection to broker lost"); // the worker lived through the same restart
    expect(counts.size).toBeGreaterThanOrEqual(SOAK_SIZE);
  }, 300_000);
});

const lambdaContext = { functionName: "relay", awsRequestId: "test", getRemainingTimeInMillis: () => 30_000 } as unknown as Context;

describe("a record failing in a batch whose other records succeed", () => {
  it("is the only one reported for retry, runs once when retried, and the others run exactly once", async () => {
    // Prepare: the tenth record targets a routing key nothing is bound to yet (unroutable).
    const { handler } = (await import("../../functions/relay/handler.js")) as { handler: (e: SQSEvent, c: Context) => Promise<SQSBatchResponse> };
    const good = await Promise.all(Array.from({ length: 9 }, (_, i) => app.buildMessage("tasks.add", { args: [i, 2], queue: QUEUE })));
    const late = await app.buildMessage("tasks.add", { args: [99, 2], exchange: "celery_edge.topic", routingKey: "rel.late.key" });
    const event: SQSEvent = { Records: [...good, late].map((m, i) => sqsRecord(encodeEnvelope(m), `m-${i}`, { queueArn: harness.intake.arn })) };

    // Act
    const first = await handler(event, lambdaContext);
    // The failure is transient: bind the key, as an operator would, and redeliver the failed record only.
    await withChannel(async (ch) => ch.bindQueue(QUEUE, "celery_edge.topic", "rel.late.key"));
    try {
      const retry = await handler({ Records: event.Records.filter((r) => first.batchItemFailures.some((f) => f.itemIdentifier === r.messageId)) }, lambdaContext);
      const counts = await records.waitForAll(new Set([...good, late].map((m) => m.meta.id)), 20_000);
      await records.afterQueued(queueSentinel(QUEUE), POOL_PROCESSES);
      const final = await records.perTask();

      // Assess
      expect(first.batchItemFailures).toEqual([{ itemIdentifier: "m-9" }]);
      expect(retry.batchItemFailures).toEqual([]);
      for (const m of [...good, late]) expect(final.get(m.meta.id)).toBe(1);
      expect(counts.size).toBe(10);
      expect(harness.logs.join("\n")).toContain(late.meta.id); // the failure was logged with its task id
    } finally {
      await withChannel(async (ch) => ch.unbindQueue(QUEUE, "celery_edge.topic", "rel.late.key"));
    }
  });

  it("sends a poison record to the DLQ after maxReceiveCount with its reason logged, while its batch-mates run once", async () => {
    // Prepare: one SendMessageBatch of nine good envelopes and one the relay can never decode.
    const dlqBefore = await dlqDepth();
    const receivesBefore = harness.runner.stats.records;
    const good = await Promise.all(Array.from({ length: 9 }, (_, i) => app.buildMessage("tasks.add", { args: [i, 3], queue: QUEUE })));
    const poison = JSON.stringify({ ...JSON.parse(encodeEnvelope(good[0]!)), bodyEncoding: "base64", body: "not base64!" });

    // Act
    await harness.client.send(
      new SendMessageBatchCommand({
        QueueUrl: harness.intake.url,
        Entries: [...good.map((m, i) => ({ Id: `g${i}`, MessageBody: encodeEnvelope(m) })), { Id: "poison", MessageBody: poison }],
      }),
    );
    await waitUntil("the poison record in the DLQ", async () => (await dlqDepth()) > dlqBefore, 60_000);
    const final = await records.perTask();

    // Assess
    expect(await dlqDepth()).toBe(dlqBefore + 1);
    const dead = await harness.client.send(new ReceiveMessageCommand({ QueueUrl: harness.intake.dlqUrl!, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    expect((dead.Messages ?? []).map((m) => m.Body)).toContain(poison);
    for (const m of good) expect(final.get(m.meta.id)).toBe(1);
    expect(harness.runner.stats.records - receivesBefore).toBeGreaterThanOrEqual(9 + MAX_RECEIVE_COUNT);
    const rejections = harness.logs.filter((l) => l.includes("rejected envelope") && l.includes("body is not valid base64"));
    expect(rejections.length).toBe(MAX_RECEIVE_COUNT);
  }, 90_000);
});
