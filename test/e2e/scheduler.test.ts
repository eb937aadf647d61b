/**
 * Far-ETA parking end to end: SDK → SQS (fauxqs) → relay → scheduler function → EventBridge
 * Scheduler (the test stand-in speaking the real API) → scheduler function → SQS delay → relay →
 * RabbitMQ → real Celery worker. Thresholds are shortened so the test takes ~2 minutes, not hours.
 */
import { CreateScheduleGroupCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Celery } from "../../sdk/node.js";
import { sqsRelay } from "../../sdk/sqs.js";
import { SQSClient } from "@aws-sdk/client-sqs";
import { LOCAL_CREDENTIALS, createQueue, credentialsFor, sqsClientConfig } from "../../scripts/local/fauxqs.js";
import { startSqsEventSource, type SqsEventSource } from "../../scripts/local/sqs-event-source.js";
import { startSchedulerStandIn, type SchedulerStandIn } from "../fixtures/scheduler-standin.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { purgeQueues } from "../helpers/rabbit.js";
import { SCHEDULES_KEY, startRelayHarness, type RelayHarness } from "../helpers/relay-harness.js";

const THRESHOLD_S = 30;
const LEAD_S = 60;
const GROUP = "celery-edge-test";
/** A second producer with its own keys: SQS reports it as another SenderId. */
const OTHER_KEY = "AKIDOTHERSENDER";
const log = new ExecutionLog();
let worker: CeleryWorker;
let harness: RelayHarness;
let standIn: SchedulerStandIn;
let schedulesClient: SQSClient;
let schedulerRunner: SqsEventSource;
let sqsApp: Celery;
let parkingApp: Celery;
let amqpApp: Celery;
let otherApp: Celery;
/** Each park-queue record the scheduler function handled: its body, and whether it failed it. */
const handled: Array<{ body: string; failed: boolean }> = [];

beforeAll(async () => {
  process.env.POWERTOOLS_LOG_LEVEL = "ERROR"; // keep the functions' INFO lines out of the test output
  await purgeQueues(["ce.default"]);
  harness = await startRelayHarness({ brokerUrl: "amqp://guest:guest@127.0.0.1:5672//", parkThresholdSeconds: THRESHOLD_S, senderIds: { [OTHER_KEY]: "AIDAOTHERSENDER" } });
  // Schedules deliver as their own role, as EventBridge Scheduler does: the scheduler trusts it.
  schedulesClient = new SQSClient(sqsClientConfig(harness.sqs.endpoint, credentialsFor(SCHEDULES_KEY)));
  standIn = await startSchedulerStandIn({ sqsClient: schedulesClient, queueUrlForArn: (arn) => (arn === harness.park.arn ? harness.park.url : undefined) });
  // The CDK stack creates the group; here the real client creates it on the stand-in.
  const admin = new SchedulerClient({ endpoint: standIn.endpoint, region: "us-east-1", credentials: LOCAL_CREDENTIALS });
  await admin.send(new CreateScheduleGroupCommand({ Name: GROUP }));
  admin.destroy();
  const dlq = await createQueue(harness.client, `schedule-dlq-${Date.now()}`);
  Object.assign(process.env, {
    INTAKE_QUEUE_URL: harness.intake.url,
    SCHEDULER_QUEUE_ARN: harness.park.arn,
    SCHEDULE_GROUP: GROUP,
    SCHEDULER_ROLE_ARN: "arn:aws:iam::000000000000:role/celery-edge-scheduler",
    SCHEDULE_DLQ_ARN: dlq.arn,
    PARK_THRESHOLD_SECONDS: String(THRESHOLD_S),
    LEAD_SECONDS: String(LEAD_S),
    AWS_ENDPOINT_URL_SCHEDULER: standIn.endpoint,
    POWERTOOLS_SERVICE_NAME: "scheduler-under-test",
  });
  const { handler } = (await import("../../functions/scheduler/handler.js")) as { handler: (e: SQSEvent, c: Context) => Promise<SQSBatchResponse> };
  schedulerRunner = startSqsEventSource({
    client: harness.client,
    queueUrl: harness.park.url,
    queueArn: harness.park.arn,
    handler: async (event, context) => {
      const response = await handler(event, context);
      for (const r of event.Records) handled.push({ body: r.body, failed: response.batchItemFailures.some((f) => f.itemIdentifier === r.messageId) });
      return response;
    },
    onError: (e) => console.error("scheduler runner", e),
  });
  worker = await startCeleryWorker({ queues: ["ce.default"] });
  const sqsOptions = { queueUrl: harness.intake.url, endpoint: harness.sqs.endpoint, credentials: LOCAL_CREDENTIALS };
  // Producers delay with SQS only up to the park threshold; beyond it the relay parks the task.
  sqsApp = new Celery({ broker: sqsRelay({ ...sqsOptions, maxDelaySeconds: THRESHOLD_S }), defaultQueue: "ce.default" });
  const parkQueue = sqsRelay({ queueUrl: harness.park.url, endpoint: harness.sqs.endpoint, credentials: LOCAL_CREDENTIALS, useDelaySeconds: false });
  parkingApp = new Celery({ broker: sqsRelay({ ...sqsOptions, maxDelaySeconds: THRESHOLD_S }), defaultQueue: "ce.default", parking: { transport: parkQueue, thresholdSeconds: THRESHOLD_S } });
  amqpApp = new Celery({ broker: "amqp://guest:guest@127.0.0.1:5672//", defaultQueue: "ce.default" });
  otherApp = new Celery({ broker: sqsRelay({ ...sqsOptions, credentials: credentialsFor(OTHER_KEY) }), defaultQueue: "ce.default" });
}, 120_000);

afterAll(async () => {
  await Promise.all([sqsApp?.close(), parkingApp?.close(), amqpApp?.close(), otherApp?.close()]);
  await schedulerRunner?.stop();
  await standIn?.stop();
  schedulesClient?.destroy();
  await harness?.stop();
  await worker?.stop();
});

beforeEach(async () => {
  await log.clear();
});

const scheduleFor = (id: string) => [...standIn.schedules().values()].find((s) => s.name === `celery-edge-${id}`);
async function until(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

describe("far-ETA tasks are parked in Scheduler, not the broker", () => {
  it("parks a task due in ~90 s and runs it no earlier than its ETA and within 1 s after", async () => {
    const eta = new Date(Date.now() + 90_000);
    const r = await sqsApp.sendTask("tasks.echo", { args: ["parked"], eta });
    const name = `celery-edge-${r.id}`;
    expect(await until(() => standIn.fired.some((f) => f.name === name) || scheduleFor(r.id) !== undefined, 20_000)).toBe(true);
    // While parked, the worker has not seen it (no broker holds it).
    expect((await log.read()).some((x) => x.id === r.id)).toBe(false);
    const rec = await log.waitForTask(r.id, 150_000);
    const lateMs = rec.started_at * 1000 - eta.getTime();
    console.log(`parked task ran ${lateMs.toFixed(0)} ms after its ETA`);
    expect(lateMs).toBeGreaterThanOrEqual(0);
    expect(lateMs).toBeLessThan(1_000);
    expect(standIn.fired.filter((f) => f.name === name)).toHaveLength(1);
  }, 180_000);

  it("uses only an SQS delay for a 10 s countdown (no schedule)", async () => {
    const sent = Date.now();
    const r = await sqsApp.sendTask("tasks.echo", { args: ["short"], countdown: 10 });
    const rec = await log.waitForTask(r.id, 40_000);
    expect(rec.started_at * 1000).toBeGreaterThanOrEqual(sent + 10_000);
    expect(scheduleFor(r.id)).toBeUndefined();
    expect(standIn.fired.some((f) => f.name === `celery-edge-${r.id}`)).toBe(false);
  }, 60_000);

  it("answers a duplicate park request as already parked, keeping the first request's schedule", async () => {
    // Prepare: a task parked once.
    const eta = new Date(Date.now() + 600_000);
    const taskId = `dup-${Date.now()}`;
    const requestsFor = () => handled.filter((h) => (JSON.parse(h.body) as { task?: { id?: string } }).task?.id === taskId);
    await parkingApp.sendTask("tasks.echo", { args: ["first"], eta, taskId });
    expect(await until(() => scheduleFor(taskId) !== undefined, 20_000)).toBe(true);

    // Act: the same task parked again, as a redelivered request would be (other args tell them apart).
    await parkingApp.sendTask("tasks.echo", { args: ["second"], eta, taskId });
    expect(await until(() => requestsFor().length === 2, 20_000)).toBe(true);

    // Assess: Scheduler answered the second CreateSchedule with ConflictException, the function
    // took that as done (the record was not failed), and the schedule still holds the first request.
    const creates = standIn.calls.filter((c) => c.operation === "CreateSchedule" && c.name === `celery-edge-${taskId}`);
    expect(creates.map((c) => c.error)).toEqual([undefined, "ConflictException"]);
    expect(requestsFor().map((h) => h.failed)).toEqual([false, false]);
    const { body } = JSON.parse(scheduleFor(taskId)!.input) as { body: string };
    expect(body).toContain('"first"');
    expect(body).not.toContain('"second"');
    await parkingApp.revoke(taskId);
  }, 60_000);

  it("revoking a parked task deletes its schedule", async () => {
    const eta = new Date(Date.now() + 600_000);
    const r = await parkingApp.sendTask("tasks.echo", { args: ["to-revoke"], eta });
    expect(await until(() => scheduleFor(r.id) !== undefined, 20_000)).toBe(true);
    await r.revoke();
    expect(await until(() => scheduleFor(r.id) === undefined, 20_000)).toBe(true);
  }, 60_000);

  it("a revoked task already in the broker is not executed by the worker", async () => {
    const r = await amqpApp.sendTask("tasks.echo", { args: ["revoked-in-broker"], countdown: 4 });
    // The worker logs receiving it, then holds it until its ETA.
    expect(await until(() => worker.logs().includes(`Task tasks.echo[${r.id}] received`), 10_000)).toBe(true);
    await amqpApp.revoke(r.id);
    const marker = await amqpApp.sendTask("tasks.echo", { args: ["marker"], countdown: 6 });
    await log.waitForTask(marker.id, 30_000);
    expect((await log.read()).some((x) => x.id === r.id)).toBe(false);
    expect(worker.logs()).toMatch(new RegExp(`(Discarding revoked task|revoked).*${r.id}|${r.id}.*revoked`, "i"));
  }, 60_000);
});

describe("a parked task is revoked only by whoever parked it", () => {
  it("cancels a task parked through plain sqsRelay when its producer revokes it, and refuses another sender's revoke", async () => {
    // Prepare: two tasks parked by the relay for the same producer; the refused one is due later,
    // so its run is the positive signal that the cancelled one's ETA has passed. Scheduler may fire
    // anywhere in the minute of at() (the stand-in at its start), so both schedules fire in a minute
    // that begins at least 15 s from now: they are still there when revoked.
    const fireMinute = Math.ceil((Date.now() + 15_000) / 60_000) * 60_000;
    const cancelledEta = fireMinute + (LEAD_S + 5) * 1000; // 80 to 140 s from now
    const cancelled = await sqsApp.sendTask("tasks.echo", { args: ["revoked-by-owner"], eta: new Date(cancelledEta) });
    const kept = await sqsApp.sendTask("tasks.echo", { args: ["revoke-refused"], eta: new Date(cancelledEta + 5_000) });
    expect(await until(() => scheduleFor(cancelled.id) !== undefined && scheduleFor(kept.id) !== undefined, 20_000)).toBe(true);

    // Act: the owner revokes through the intake queue (no parking config); another sender tries too.
    await sqsApp.revoke(cancelled.id);
    await otherApp.revoke(kept.id);

    // Assess
    expect(await until(() => scheduleFor(cancelled.id) === undefined, 20_000)).toBe(true);
    const rec = await log.waitForTask(kept.id, 200_000);
    expect(rec.args).toEqual(["revoke-refused"]);
    expect((await log.read()).some((x) => x.id === cancelled.id)).toBe(false);
    expect(standIn.fired.some((f) => f.name === `celery-edge-${cancelled.id}`)).toBe(false);
    expect(standIn.fired.filter((f) => f.name === `celery-edge-${kept.id}`)).toHaveLength(1);
  }, 240_000);
});
