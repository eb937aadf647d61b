/**
 * A long broker outage on the SQS path: SDK → SQS (fauxqs) → real relay handler → TCP proxy (taken
 * down) → RabbitMQ → real Celery worker. Records that failed for the broker's sake must keep coming
 * back until it returns (ChangeMessageVisibility backoff), while a record that is poison for its
 * own reasons still reaches the DLQ after its receives. Figures go to RELIABILITY.md, "Long broker
 * outages".
 *
 * Time is shortened, not faked. The relay's backoff after receive n is min(base·2^(n−1), max):
 *   production: base 30 s, max 900 s → 30, 60, 120, 240, 480, then 900 s. 30 receives
 *     (maxReceiveCount) last 30+60+120+240+480+25·900 = 23 430 s ≈ 6.5 h before a record is
 *     dead-lettered; a 1 h outage costs a record 8 failed receives (at 0, 30, 90, 210, 450, 930,
 *     1 830, 2 730 s; the 9th is at 3 630 s), 9 failed receives mean an outage of 1.0–1.26 h.
 *   here: base 1 s, max 4 s → 1, 2, 4, then 4 s. 30 receives last 1+2+4+27·4 = 115 s, so the
 *     clock runs 23 430 / 115 ≈ 204× faster and 1 h of production ≈ 17.7 s here.
 *   The outage here is 30 s: ≈ 1.7 h by that clock, and by the receive schedule (failed receives at
 *   0, 1, 3, 7, 11, 15, 19, 23, 27 s) the 9 failed receives of a 1.0–1.26 h production outage.
 *   The test asserts the receive count the records actually reached (≥ 9 when they get through).
 * The intake queue's own visibility timeout is 1 s, shorter than any backoff: without the doubling
 * a record comes back every second and spends its 30 receives within the outage (tried: with
 * RELAY_RETRY_MAX_SECONDS=1, 10 of the 50 tasks were dead-lettered and the test failed).
 */
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Celery } from "../../sdk/node.js";
import { encodeEnvelope } from "../../sdk/wire/envelope.js";
import { revokeMessage } from "../../sdk/revoke.js";
import { sqsRelay } from "../../sdk/sqs.js";
import { LOCAL_CREDENTIALS } from "../../scripts/local/fauxqs.js";
import { startSqsEventSource, type SqsEventSource } from "../../scripts/local/sqs-event-source.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { deleteQueues, publishRaw, purgeQueues, rawCeleryTaskMessage } from "../helpers/rabbit.js";
import { TEST_POLICY, startRelayHarness, type RelayHarness } from "../helpers/relay-harness.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";

/** A queue and record database of this file's own: other suites' workers consume ce.default. */
const QUEUE = "ce.rel.outage";
const RECORD_DB = 12;
const MAX_RECEIVE_COUNT = 30; // the CeleryRelay default
const RETRY_BASE_S = 1;
const RETRY_MAX_S = 4;
const OUTAGE_MS = 30_000; // ≥ 1 h of production, see above
const TASKS = 50;
/** Failed receives a 1 h outage costs a record in production (see above). */
const RECEIVES_IN_A_PRODUCTION_HOUR = 8;

const log = new ExecutionLog({ db: RECORD_DB });
let worker: CeleryWorker;
let harness: RelayHarness;
let proxy: TcpProxy;
let runner: SqsEventSource;
let app: Celery;

beforeAll(async () => {
  // The harness keeps these if set; the backoff is what this file is about, so set them here.
  process.env.RELAY_RETRY_BASE_SECONDS = String(RETRY_BASE_S);
  process.env.RELAY_RETRY_MAX_SECONDS = String(RETRY_MAX_S);
  process.env.POWERTOOLS_LOG_LEVEL = "INFO"; // the receive counts are read from "published" lines
  await purgeQueues([QUEUE]);
  await log.clear();
  proxy = await startTcpProxy({ host: "127.0.0.1", port: 5672 });
  harness = await startRelayHarness({
    brokerUrl: `amqp://guest:guest@127.0.0.1:${proxy.port}//`,
    policy: { ...TEST_POLICY, queues: [...(TEST_POLICY.queues ?? []), { name: QUEUE, declare: true }] },
    maxReceiveCount: MAX_RECEIVE_COUNT,
    visibilityTimeout: 1,
  });
  // One poller, as one Lambda container runs one batch at a time. The harness's two pollers share
  // the handler's module-scope Powertools BatchProcessor, whose state one invocation resets under
  // the other: a batch's failures can vanish from its response and its records be deleted unsent.
  await harness.runner.stop();
  const { handler } = (await import("../../functions/relay/handler.js")) as { handler: (e: SQSEvent, c: Context) => Promise<SQSBatchResponse> };
  runner = startSqsEventSource({ client: harness.client, queueUrl: harness.intake.url, queueArn: harness.intake.arn, handler, batchSize: 10, concurrency: 1, onError: () => {} });
  // The worker talks to RabbitMQ directly: the outage is between the relay and the broker.
  worker = await startCeleryWorker({
    queues: [QUEUE],
    env: { CELERY_EDGE_DEFAULT_QUEUE: QUEUE, CELERY_EDGE_RECORD_DB: String(RECORD_DB), CELERY_BROKER_URL: "amqp://guest:guest@127.0.0.1:5672//" },
  });
  app = new Celery({
    broker: sqsRelay({ queueUrl: harness.intake.url, endpoint: harness.sqs.endpoint, credentials: LOCAL_CREDENTIALS }),
    defaultQueue: QUEUE,
  });
});

afterAll(async () => {
  proxy?.setDown(false);
  await app?.close();
  await runner?.stop();
  await harness?.stop();
  await proxy?.close();
  await worker?.stop();
  await deleteQueues([QUEUE]);
});

interface RelayLine {
  message: string;
  messageId?: string;
  receiveCount?: string;
  taskId?: string;
  code?: string;
  reason?: string;
}

function relayLines(): RelayLine[] {
  return harness.logs
    .flatMap((chunk) => chunk.split("\n"))
    .filter((l) => l.trim().startsWith("{"))
    .map((l) => JSON.parse(l) as RelayLine);
}

async function queueCounts(url: string): Promise<{ visible: number; inFlight: number }> {
  const out = await harness.client.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }),
  );
  return { visible: Number(out.Attributes?.ApproximateNumberOfMessages ?? 0), inFlight: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0) };
}

async function waitUntil(what: string, condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every message on the DLQ, read without deleting (each stays invisible while the test runs). */
async function dlqMessageIds(): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const out = await harness.client.send(new ReceiveMessageCommand({ QueueUrl: harness.intake.dlqUrl!, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 120 }));
    if (!out.Messages?.length) return ids;
    ids.push(...out.Messages.map((m) => m.MessageId!));
  }
}

describe("a broker outage of a scaled hour", () => {
  it("ends with every task executed exactly once and only the poison records dead-lettered", async () => {
    // Prepare: two records that can never pass, whatever the broker does.
    const honestShape = JSON.parse(encodeEnvelope(await app.buildMessage("tasks.add", { args: [0, 0] }))) as { properties: Record<string, unknown> };
    const unknownContentType = JSON.stringify({ ...honestShape, properties: { ...honestShape.properties, contentType: "application/x-evil" } });
    const revoke = revokeMessage("3b9a3a57-1f0e-4b8e-9a59-2d1d2f0c0a11");
    const shutdown = encodeEnvelope({
      ...revoke,
      body: new TextEncoder().encode(JSON.stringify({ method: "shutdown", arguments: {}, destination: null, pattern: null, matcher: null })),
    });

    // Act: the broker goes away, producers keep sending, the broker comes back after the outage.
    const downAt = Date.now();
    proxy.setDown(true);
    const sent = await app.sendMany(Array.from({ length: TASKS }, (_, i) => ({ task: "tasks.add", args: [i, 1000] })));
    const ids = new Set(sent.map((r) => r.id));
    const poison = new Map<string, string>();
    for (const [what, body] of [["shutdown control message", shutdown], ["unknown content type", unknownContentType]] as const) {
      const out = await harness.client.send(new SendMessageCommand({ QueueUrl: harness.intake.url, MessageBody: body }));
      poison.set(out.MessageId!, what);
    }
    const poisonSentAt = Date.now();
    // The poison must not wait for the broker: it is dead-lettered while the outage goes on.
    await waitUntil("both poison records in the DLQ", async () => (await queueCounts(harness.intake.dlqUrl!)).visible >= 2, OUTAGE_MS - (Date.now() - downAt) - 1_000);
    const poisonDeadAfterMs = Date.now() - poisonSentAt;
    await new Promise((r) => setTimeout(r, OUTAGE_MS - (Date.now() - downAt)));
    const failedDuringOutage = relayLines().filter((l) => l.message === "publish failed" && l.taskId !== undefined && ids.has(l.taskId));
    proxy.setDown(false);
    const upAt = Date.now();
    const recs = await log.waitFor({ where: (r) => ids.has(r.id), count: TASKS }, 60_000);
    const drainedAt = Date.now();
    // Nothing left on the intake queue means nothing more can reach the broker from it; a task put
    // on the broker after that and run by the one worker process proves every earlier one has run.
    await waitUntil("the intake queue to be empty", async () => {
      const c = await queueCounts(harness.intake.url);
      return c.visible + c.inFlight === 0;
    }, 30_000);
    const sentinel = rawCeleryTaskMessage({ task: "tasks.add", args: [-1, -1], routingKey: QUEUE });
    await publishRaw(sentinel);
    await log.waitForTask(sentinel.id, 20_000);

    // Assess
    const runs = new Map<string, number>();
    for (const r of await log.read()) if (ids.has(r.id)) runs.set(r.id, (runs.get(r.id) ?? 0) + 1);
    expect(recs.length).toBeGreaterThanOrEqual(TASKS);
    expect(runs.size).toBe(TASKS);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);

    const dead = await dlqMessageIds();
    expect(dead.sort()).toEqual([...poison.keys()].sort());

    const lines = relayLines();
    const published = lines.filter((l) => l.message === "published" && l.taskId !== undefined && ids.has(l.taskId));
    expect(new Set(published.map((l) => l.taskId))).toEqual(ids);
    const receivesToPass = published.map((l) => Number(l.receiveCount));
    const maxReceives = Math.max(...receivesToPass);
    const minReceives = Math.min(...receivesToPass);
    // The outage cost every record at least the receives of a production hour, and it still had
    // most of its 30 left: well under maxReceiveCount.
    expect(minReceives).toBeGreaterThan(RECEIVES_IN_A_PRODUCTION_HOUR);
    expect(maxReceives).toBeLessThanOrEqual(MAX_RECEIVE_COUNT / 2);
    expect(failedDuringOutage.every((l) => l.code === "ERR_CONNECTION" || l.code === "ERR_TIMEOUT")).toBe(true);

    // Each poison record was refused on each of its receives, for its own reason, then dead-lettered.
    for (const [messageId, what] of poison) {
      const refusals = lines.filter((l) => l.messageId === messageId);
      expect(refusals.every((l) => l.message === "rejected envelope"), what).toBe(true);
      expect(refusals.length, what).toBe(MAX_RECEIVE_COUNT);
    }
    const refusalReasons = lines.filter((l) => poison.has(l.messageId ?? "")).map((l) => l.reason ?? "");
    expect(refusalReasons.some((r) => r.includes('method "shutdown" is not allowed'))).toBe(true);
    expect(refusalReasons.some((r) => r.includes('content type "application/x-evil"'))).toBe(true);

    const figures = {
      outageMs: upAt - downAt,
      scaledOutage: `${((upAt - downAt) / 1000 / 17.7).toFixed(2)} h at 17.7 s per production hour`,
      tasks: TASKS,
      executed: runs.size,
      duplicated: [...runs.values()].reduce((n, c) => n + c - 1, 0),
      deadLettered: dead.length,
      poisonDeadLetteredAfterMs: poisonDeadAfterMs,
      failedReceivesDuringOutage: failedDuringOutage.length,
      receivesToPassMin: minReceives,
      receivesToPassMax: maxReceives,
      drainMs: drainedAt - upAt,
    };
    console.log(`[reliability] relay long outage: ${JSON.stringify(figures)}`);
  }, 180_000);
});
