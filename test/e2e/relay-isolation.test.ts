/**
 * No record can harm its batch-mates (#13, Deliver 6).
 *
 * 1. Through the real relay handler (SQS → fauxqs → Lambda-style event source → RabbitMQ → real
 *    Celery worker): one SQS batch mixing honest tasks with records RabbitMQ would answer with a
 *    channel error (bad `expiration`, an oversize header table) or that no worker can read (unknown
 *    content type). They are refused before anything is published, so the honest ones run once.
 * 2. `relayRecord` on a real `AmqpTransport`, records run side by side as Powertools runs a batch:
 *    a channel error that validation cannot foresee (an allowed exchange the transport has already
 *    checked is deleted behind its back) closes the confirm channel under the honest records in
 *    flight; they are retried on a fresh channel in the same invocation and none is reported failed.
 */
import { randomUUID } from "node:crypto";
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Celery, CeleryError } from "../../sdk/node.js";
import { encodeEnvelope } from "../../sdk/wire/envelope.js";
import { sqsRelay } from "../../sdk/sqs.js";
import type { TaskMessage } from "../../sdk/protocol/message.js";
import type { Transport } from "../../sdk/transport.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { LOG_FIELD_MAX, Mutex, relayRecord, type RelayDeps, type RelayLogger } from "../../functions/relay/relay.js";
import { resolvePolicy } from "../../functions/shared/policy.js";
import { LOCAL_CREDENTIALS } from "../../scripts/local/fauxqs.js";
import { startSqsEventSource, type SqsEventSource } from "../../scripts/local/sqs-event-source.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { AMQP_URL, deleteQueues, publishRaw, purgeQueues, rawCeleryTaskMessage, withChannel } from "../helpers/rabbit.js";
import { TEST_POLICY, startRelayHarness, type RelayHarness } from "../helpers/relay-harness.js";
import { sqsRecord } from "../helpers/sqs-record.js";

/** A queue and record database of this file's own: other suites' workers consume ce.default. */
const QUEUE = "ce.rel.isolation";
const RECORD_DB = 11;
/** An exchange the policy allows; part 2 deletes it behind the transport's back. */
const DOOMED_EXCHANGE = "ce.rel.isolation.doomed";
const SINK = "ce.rel.isolation.sink";
const MAX_RECEIVE_COUNT = 3;

const log = new ExecutionLog({ db: RECORD_DB });
let worker: CeleryWorker;
let app: Celery;

beforeAll(async () => {
  process.env.POWERTOOLS_LOG_LEVEL = "INFO";
  await log.clear();
  worker = await startCeleryWorker({
    queues: [QUEUE],
    env: { CELERY_EDGE_DEFAULT_QUEUE: QUEUE, CELERY_EDGE_RECORD_DB: String(RECORD_DB), CELERY_BROKER_URL: "amqp://guest:guest@127.0.0.1:5672//" },
  });
  await purgeQueues([QUEUE]);
  // Builds messages only; nothing is sent through it.
  app = new Celery({ broker: sqsRelay({ queueUrl: "http://127.0.0.1:1/000000000000/unused", endpoint: "http://127.0.0.1:1", credentials: LOCAL_CREDENTIALS }), defaultQueue: QUEUE });
});

afterAll(async () => {
  await app?.close();
  await worker?.stop();
  await deleteQueues([QUEUE, SINK]);
  await withChannel((ch) => ch.deleteExchange(DOOMED_EXCHANGE));
});

/**
 * Runs a task after everything already on the queue (one worker process takes them in order), so
 * once it has run, whatever was going to run from earlier publishes has run too.
 */
async function afterEverythingQueued(): Promise<void> {
  const sentinel = rawCeleryTaskMessage({ task: "tasks.add", args: [-1, -1], routingKey: QUEUE });
  await publishRaw(sentinel);
  await log.waitForTask(sentinel.id, 20_000);
}

async function runsPerTask(): Promise<Map<string, number>> {
  const runs = new Map<string, number>();
  for (const r of await log.read()) runs.set(r.id, (runs.get(r.id) ?? 0) + 1);
  return runs;
}

const honestTask = (n: number): Promise<TaskMessage> => app.buildMessage("tasks.add", { args: [n, 7], queue: QUEUE });

interface RelayLine {
  message: string;
  messageId?: string;
  taskId?: string;
  code?: string;
  reason?: string;
}

describe("a poison record in an SQS batch, through the real relay handler", () => {
  let harness: RelayHarness;
  let runner: SqsEventSource | undefined;
  const invocations: Array<{ ids: string[]; failed: string[] }> = [];

  beforeAll(async () => {
    harness = await startRelayHarness({
      brokerUrl: "amqp://guest:guest@127.0.0.1:5672//",
      policy: { ...TEST_POLICY, queues: [...(TEST_POLICY.queues ?? []), { name: QUEUE, declare: true }] },
      maxReceiveCount: MAX_RECEIVE_COUNT,
      // Long enough that an honest record is never received twice by this test's clock.
      visibilityTimeout: 30,
    });
    // This file polls itself, once the batch is on the queue, so the ten records arrive in one event;
    // and with one poller, as one Lambda container runs one batch at a time.
    await harness.runner.stop();
  });

  afterAll(async () => {
    await runner?.stop();
    await harness?.stop();
  });

  it("publishes the honest records once, reports only the poison ones failed and dead-letters them with their reasons", async () => {
    // Prepare: five honest tasks and five records that must not reach the broker, in one batch.
    const honest = await Promise.all([0, 1, 2, 3, 4].map(honestTask));
    const poisonShapes: Array<[string, (p: Record<string, unknown>) => Record<string, unknown>, string]> = [
      ["expiration abc", (p) => ({ ...p, expiration: "abc" }), 'properties.expiration "abc" must be a decimal number of milliseconds'],
      ["expiration -1", (p) => ({ ...p, expiration: "-1" }), 'properties.expiration "-1" must be a decimal number of milliseconds'],
      ["expiration over ten years", (p) => ({ ...p, expiration: "315360000001" }), 'properties.expiration "315360000001" must be a decimal number of milliseconds'],
      ["header table over 64 KiB", (p) => ({ ...p, headers: { ...(p.headers as object), padding: "x".repeat(70_000) } }), "headers table is"],
      ["unknown content type", (p) => ({ ...p, contentType: "application/x-evil" }), 'content type "application/x-evil" is not a Celery serializer\'s'],
    ];
    const poison = await Promise.all(
      poisonShapes.map(async ([what, change, reason], i) => {
        const envelope = JSON.parse(encodeEnvelope(await honestTask(100 + i))) as { properties: Record<string, unknown>; task: { id: string } };
        return { what, reason, taskId: envelope.task.id, body: JSON.stringify({ ...envelope, properties: change(envelope.properties) }) };
      }),
    );
    const entries = honest.flatMap((m, i) => [
      { Id: `honest-${i}`, MessageBody: encodeEnvelope(m) },
      { Id: `poison-${i}`, MessageBody: poison[i]!.body },
    ]);
    const sent = await harness.client.send(new SendMessageBatchCommand({ QueueUrl: harness.intake.url, Entries: entries }));
    expect(sent.Failed ?? []).toEqual([]);
    const messageIdOf = new Map(sent.Successful!.map((s) => [s.Id!, s.MessageId!]));
    const honestIds = new Set(honest.map((_, i) => messageIdOf.get(`honest-${i}`)!));
    const poisonIds = new Map(poison.map((p, i) => [messageIdOf.get(`poison-${i}`)!, p]));

    // Act
    const { handler } = (await import("../../functions/relay/handler.js")) as { handler: (e: SQSEvent, c: Context) => Promise<SQSBatchResponse> };
    runner = startSqsEventSource({
      client: harness.client,
      queueUrl: harness.intake.url,
      queueArn: harness.intake.arn,
      batchSize: 10,
      concurrency: 1,
      onError: () => {},
      handler: async (event, context) => {
        const response = await handler(event, context);
        invocations.push({ ids: event.Records.map((r) => r.messageId), failed: response.batchItemFailures.map((f) => f.itemIdentifier) });
        return response;
      },
    });
    const deadline = Date.now() + 30_000;
    const depth = async (url: string): Promise<number> => {
      const out = await harness.client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }));
      return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) + Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
    };
    while ((await depth(harness.intake.dlqUrl!)) < poisonIds.size || (await depth(harness.intake.url)) > 0) {
      if (Date.now() > deadline) throw new Error("the poison records did not reach the DLQ within 30 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    await afterEverythingQueued();

    // Assess: one event held all ten; its response named exactly the poison records.
    expect(new Set(invocations[0]!.ids)).toEqual(new Set([...honestIds, ...poisonIds.keys()]));
    expect(new Set(invocations[0]!.failed)).toEqual(new Set(poisonIds.keys()));
    for (const inv of invocations) for (const id of inv.failed) expect(honestIds.has(id)).toBe(false);

    const runs = await runsPerTask();
    for (const m of honest) expect(runs.get(m.meta.id), m.meta.id).toBe(1);
    for (const p of poison) expect(runs.has(p.taskId), p.what).toBe(false);

    const lines = harness.logs.flatMap((c) => c.split("\n")).filter((l) => l.trim().startsWith("{"));
    const parsed = lines.map((l) => JSON.parse(l) as RelayLine);
    for (const l of parsed) {
      if (l.message === "publish failed" || l.message === "rejected envelope") expect(honestIds.has(l.messageId ?? "")).toBe(false);
    }
    expect(parsed.filter((l) => l.message === "published" && honestIds.has(l.messageId ?? "")).length).toBe(honestIds.size);

    const dead = await harness.client.send(new ReceiveMessageCommand({ QueueUrl: harness.intake.dlqUrl!, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    expect(new Set((dead.Messages ?? []).map((m) => m.MessageId))).toEqual(new Set(poisonIds.keys()));
    for (const [messageId, p] of poisonIds) {
      const refusals = parsed.filter((l) => l.messageId === messageId);
      expect(refusals.length, p.what).toBe(MAX_RECEIVE_COUNT);
      for (const l of refusals) {
        expect([l.message, l.code], p.what).toEqual(["rejected envelope", "ERR_ENVELOPE"]);
        expect(l.reason, p.what).toContain(p.reason);
        expect(l.reason!.length, p.what).toBeLessThanOrEqual(LOG_FIELD_MAX + 1);
      }
    }
    // The 70 000-character header never reaches a log line.
    for (const l of lines) expect(l.length).toBeLessThan(2_048);
  });
});

describe("a channel error during a batch, relayRecord on a real AmqpTransport", () => {
  const policy = resolvePolicy({ queues: [{ name: QUEUE, declare: true }], exchanges: [{ exchange: DOOMED_EXCHANGE, routingKeys: ["#"] }] });

  /** The transport as the relay uses it, noting each publish that failed and why. */
  function observed(broker: Transport, failures: Array<{ taskId: string; code: string }>): Transport {
    return {
      kind: broker.kind,
      publishMany: (m, o) => broker.publishMany(m, o),
      close: () => broker.close(),
      async publish(message, options) {
        try {
          return await broker.publish(message, options);
        } catch (err) {
          failures.push({ taskId: message.meta.id, code: err instanceof CeleryError ? err.code : String(err) });
          throw err;
        }
      },
    };
  }

  const quiet: RelayLogger = { info: () => {}, warn: () => {}, error: () => {} };

  /**
   * Warms a transport up (the queue declared, the exchange checked and remembered), deletes the
   * exchange out of band, then relays a batch of twelve with the record for that exchange fourth.
   */
  async function batchWithChannelError(solo: Mutex | undefined) {
    await withChannel(async (ch) => {
      await ch.assertExchange(DOOMED_EXCHANGE, "direct", { durable: true });
      await ch.assertQueue(SINK, { durable: true });
      await ch.bindQueue(SINK, DOOMED_EXCHANGE, "sink");
    });
    const broker = new AmqpTransport({ url: AMQP_URL });
    const failures: Array<{ taskId: string; code: string }> = [];
    const deps: RelayDeps = { broker: observed(broker, failures), policy, trustedForwarders: [], forceMandatory: true, logger: quiet, ...(solo ? { solo } : {}) };
    const record = (m: TaskMessage): SQSRecord => sqsRecord(encodeEnvelope(m), randomUUID());
    try {
      const warmUp = [await honestTask(-2), await app.buildMessage("tasks.add", { args: [-3, 7], exchange: DOOMED_EXCHANGE, routingKey: "sink" })];
      for (const m of warmUp) await relayRecord(record(m), deps);
      await withChannel((ch) => ch.deleteExchange(DOOMED_EXCHANGE));

      const honest = await Promise.all(Array.from({ length: 11 }, (_, i) => honestTask(200 + i)));
      const doomed = await app.buildMessage("tasks.add", { args: [-4, 7], exchange: DOOMED_EXCHANGE, routingKey: "sink" });
      const batch = [...honest.slice(0, 3), doomed, ...honest.slice(3)];
      // As Powertools' BatchProcessor runs an SQS batch: every record at once.
      const outcomes = await Promise.allSettled(batch.map((m) => relayRecord(record(m), deps)));
      return { honest, doomed, batch, outcomes, failures, connectionsOpened: broker.connectionsOpened, warmUp };
    } finally {
      await broker.close();
    }
  }

  it("retries the honest records on a fresh channel in the same invocation and fails only the record that broke it", async () => {
    // Prepare, Act
    const { honest, doomed, batch, outcomes, failures, connectionsOpened, warmUp } = await batchWithChannelError(new Mutex());
    await afterEverythingQueued();

    // Assess: the channel really closed under honest records in flight…
    const honestIds = new Set(honest.map((m) => m.meta.id));
    const closedUnder = failures.filter((f) => honestIds.has(f.taskId));
    expect(closedUnder.length).toBeGreaterThan(0);
    expect(new Set(closedUnder.map((f) => f.code))).toEqual(new Set(["ERR_CHANNEL_CLOSED"]));
    expect(connectionsOpened).toBe(2);
    // …yet each of them resolved "published" and ran, and only the doomed record was refused.
    batch.forEach((m, i) => {
      const o = outcomes[i]!;
      if (m === doomed) {
        expect(o.status).toBe("rejected");
        expect(((o as PromiseRejectedResult).reason as CeleryError).code).toBe("ERR_EXCHANGE_NOT_FOUND");
      } else {
        expect(o).toEqual({ status: "fulfilled", value: "published" });
      }
    });
    // The records behind it on the channel were dropped by RabbitMQ with the channel and run once.
    // Those ahead of it had been routed, but their confirms died with the channel, so they too
    // failed ERR_CHANNEL_CLOSED and the retry published them again: at least once, as an SQS
    // redelivery would have done, never lost.
    const runs = await runsPerTask();
    const ahead = batch.slice(0, batch.indexOf(doomed));
    const behind = batch.slice(batch.indexOf(doomed) + 1);
    for (const m of [warmUp[0]!, ...behind]) expect(runs.get(m.meta.id), m.meta.id).toBe(1);
    for (const m of ahead) expect(runs.get(m.meta.id), m.meta.id).toBeGreaterThanOrEqual(1);
    for (const m of ahead) expect(runs.get(m.meta.id), m.meta.id).toBeLessThanOrEqual(2);
    const twice = ahead.filter((m) => runs.get(m.meta.id) === 2).length;
    console.log(
      `[reliability] relay channel error mid-batch: ${closedUnder.length} of ${honest.length} honest records lost their channel, all retried and published ` +
        `(${behind.length} behind the bad record ran once, ${twice} of ${ahead.length} ahead of it ran twice); ` +
        `the bad record: ${failures.filter((f) => f.taskId === doomed.meta.id).map((f) => f.code).join(" then ")}`,
    );
  });

  it("without the one-at-a-time retry, the same batch fails honest records (control: the scenario can fail)", async () => {
    const { honest, batch, outcomes } = await batchWithChannelError(undefined);
    await afterEverythingQueued();

    const honestIds = new Set(honest.map((m) => m.meta.id));
    const failedHonest = batch.filter((m, i) => honestIds.has(m.meta.id) && outcomes[i]!.status === "rejected");
    expect(failedHonest.length).toBeGreaterThan(0);
    for (const m of failedHonest) {
      const o = outcomes[batch.indexOf(m)] as PromiseRejectedResult;
      expect((o.reason as CeleryError).code).toBe("ERR_CHANNEL_CLOSED");
    }
  });
});
