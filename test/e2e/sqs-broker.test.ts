/**
 * The SDK on an SQS broker (kombu's SQS transport, no relay), proven by a real Celery 5.2 worker
 * with `broker=sqs://…` (kombu 5.2.4, boto3, pycurl) consuming the local-aws-sqs emulator through
 * `predefined_queues`, through its own execution records. What the SDK sent is read from the
 * requests it made (a pass-through `fetch`), and Python's own SQS message is the comparison.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Celery, type CeleryError } from "../../sdk/node.js";
import { sqsBroker } from "../../sdk/sqs.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { startSqsBrokerEmulator, type SqsBrokerEmulator } from "../fixtures/sqs-broker-emulator.js";

const REGION = "us-east-1";
const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };
const VISIBILITY_TIMEOUT = 20;
const log = new ExecutionLog({ key: "celery_edge:executions:sqs-broker" });
const vectors = JSON.parse(readFileSync(new URL("../fixtures/sqs-vectors/python-sent.json", import.meta.url), "utf8")) as {
  calls: Array<{ id: string; task: string; args: unknown[]; kwargs: Record<string, unknown>; serializer: string; eta?: string }>;
  messages: Array<{ MessageBody: string }>;
};

/** Every SendMessageBatch the SDK made, as sent. */
const batches: Array<{ QueueUrl: string; Entries: Array<Record<string, unknown>> }> = [];
const recordingFetch: typeof fetch = async (input, init) => {
  const target = new Headers(init?.headers).get("x-amz-target");
  if (target === "AmazonSQS.SendMessageBatch") batches.push(JSON.parse(String(init!.body)));
  return fetch(input, init);
};
const sentEntry = (id: string): Record<string, unknown> | undefined =>
  batches.flatMap((b) => b.Entries).find((e) => decode(String(e.MessageBody)).headers.id === id);

interface KombuSqsMessage {
  body: string;
  "content-type": string;
  "content-encoding": string;
  headers: Record<string, unknown>;
  properties: Record<string, unknown> & { delivery_info: { exchange: string; routing_key: string } };
}
const decode = (messageBody: string): KombuSqsMessage => JSON.parse(Buffer.from(messageBody, "base64").toString("utf8"));

/** How often each of `ids` ran, read after a sentinel sent behind them has run. */
async function runsAfterSentinel(ids: ReadonlySet<string>): Promise<Map<string, number>> {
  const sentinel = await app.sendTask("tasks.record", { args: ["sentinel"] });
  await log.waitForTask(sentinel.id, 20_000);
  const runs = new Map<string, number>();
  for (const r of await log.read()) if (ids.has(r.id)) runs.set(r.id, (runs.get(r.id) ?? 0) + 1);
  return runs;
}

/** The queue's ApproximateNumberOfMessagesDelayed, asked of the emulator directly. */
async function delayedIn(queue: string): Promise<number> {
  const response = await fetch(emulator.endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "AmazonSQS.GetQueueAttributes" },
    body: JSON.stringify({ QueueUrl: emulator.queueUrl(queue), AttributeNames: ["ApproximateNumberOfMessagesDelayed"] }),
  });
  const json = (await response.json()) as { Attributes: Record<string, string> };
  return Number(json.Attributes.ApproximateNumberOfMessagesDelayed);
}

let emulator: SqsBrokerEmulator;
let worker: CeleryWorker | undefined;
let app: Celery;

beforeAll(async () => {
  const standard = { VisibilityTimeout: VISIBILITY_TIMEOUT };
  emulator = await startSqsBrokerEmulator([
    // The test app declares every queue it knows; with predefined_queues each must be there.
    ...["sqsb-default", "ce-video", "ce-image", "ce-priority", "sqsb-vectors"].map((QueueName) => ({ QueueName, Attributes: standard })),
    { QueueName: "sqsb.fifo", Attributes: { ...standard, FifoQueue: true } },
    // Not consumed: read back directly to see the order SQS keeps.
    { QueueName: "sqsb-order.fifo", Attributes: { ...standard, FifoQueue: true } },
  ]);
  await log.clear();
  app = new Celery({
    broker: sqsBroker({ region: REGION, endpoint: emulator.endpoint, credentials: CREDENTIALS, predefinedQueues: emulator.predefinedQueues(), fetch: recordingFetch }),
    defaultQueue: "sqsb.default",
  });
  worker = await startCeleryWorker({
    queues: ["sqsb.default", "sqsb.fifo"],
    pool: "threads",
    concurrency: 8,
    env: {
      CELERY_BROKER_URL: `sqs://test:test@127.0.0.1:${emulator.port}`,
      CELERY_BROKER_TRANSPORT_OPTIONS: JSON.stringify({
        is_secure: false,
        region: REGION,
        wait_time_seconds: 1,
        visibility_timeout: VISIBILITY_TIMEOUT,
        predefined_queues: emulator.predefinedQueues(),
      }),
      CELERY_EDGE_DEFAULT_QUEUE: "sqsb.default",
      CELERY_EDGE_EXTRA_QUEUES: JSON.stringify([{ name: "sqsb.fifo" }]),
      CELERY_EDGE_RECORD_KEY: log.key,
    },
  });
}, 90_000);

afterAll(async () => {
  await app?.close();
  await worker?.stop();
  await emulator?.close();
  await log.clear();
});

const SAMPLE_ARGS = [1, "two", { three: 3 }, [4.5, null, true, false], "h\u00e9llo \u2603 \u{1F600}"];
const SAMPLE_KWARGS = { k: "v", n: [1, 2], big: 2 ** 40, neg: -5, f: 0.25, none: null };

describe("tasks sent by the SDK run on a worker whose broker is SQS", () => {
  for (const serializer of ["json", "msgpack", "yaml", "pickle"]) {
    it(`round-trips args and kwargs with ${serializer}`, async () => {
      const r = await app.sendTask("tasks.echo", { args: SAMPLE_ARGS, kwargs: SAMPLE_KWARGS, serializer });
      const rec = await log.waitForTask(r.id, 20_000);
      expect(rec.args).toEqual(SAMPLE_ARGS);
      expect(rec.kwargs).toEqual(SAMPLE_KWARGS);
      // A 5.2 worker on SQS does not tell the content type; the message we sent does.
      expect(decode(String(sentEntry(r.id)!.MessageBody))["content-type"]).toBe(
        { json: "application/json", msgpack: "application/x-msgpack", yaml: "application/x-yaml", pickle: "application/x-python-serialize" }[serializer],
      );
      expect(rec.hostname).toBe(worker!.hostname);
    });
  }

  it("delays a countdown with DelaySeconds and the worker keeps the exact eta", async () => {
    const r = await app.sendTask("tasks.record", { args: ["countdown"], countdown: 4 });
    const entry = sentEntry(r.id)!;
    const eta = decode(String(entry.MessageBody)).headers.eta as string;
    expect(entry.DelaySeconds).toBeGreaterThanOrEqual(3);
    expect(entry.DelaySeconds).toBeLessThanOrEqual(4);
    // SQS holds it, not the worker: the queue counts it as delayed right after the send.
    expect(await delayedIn("sqsb-default")).toBeGreaterThanOrEqual(1);
    const rec = await log.waitForTask(r.id, 20_000);
    expect(Date.parse(rec.eta!)).toBe(Date.parse(eta));
    expect(rec.started_at * 1000).toBeGreaterThanOrEqual(Date.parse(eta));
  });

  it("sends to a FIFO queue with a group and the task id as deduplication id, and the worker runs each task once", async () => {
    const first = await app.sendMany(["a", "b", "c", "d", "e"].map((x) => ({ task: "tasks.record", args: ["fifo", x], queue: "sqsb.fifo" })));
    // The same task id again within SQS's deduplication window is not a second task.
    await app.sendTask("tasks.record", { args: ["fifo", "a-again"], queue: "sqsb.fifo", taskId: first[0]!.id });
    const sentinel = await app.sendTask("tasks.record", { args: ["fifo", "sentinel"], queue: "sqsb.fifo" });
    await log.waitForTask(sentinel.id, 20_000);
    // The worker's threads start a batch's tasks in any order; which ran, and how often, is the point here.
    const ran = (await log.read()).filter((r) => r.args[0] === "fifo").map((r) => r.args[1]);
    expect([...ran].sort()).toEqual(["a", "b", "c", "d", "e", "sentinel"]);
    const entry = sentEntry(first[2]!.id)!;
    expect(entry).toMatchObject({ MessageGroupId: "default", MessageDeduplicationId: first[2]!.id });
    expect(entry.DelaySeconds).toBeUndefined();
  });

  it("keeps a FIFO queue in send order across one sendMany", async () => {
    const sent = await app.sendMany(Array.from({ length: 12 }, (_, i) => ({ task: "tasks.record", args: ["order", i], queue: "sqsb-order.fifo" })));
    const received: string[] = [];
    while (received.length < sent.length) {
      const response = await fetch(emulator.endpoint, {
        method: "POST",
        headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "AmazonSQS.ReceiveMessage" },
        body: JSON.stringify({ QueueUrl: emulator.queueUrl("sqsb-order.fifo"), MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
      });
      const { Messages = [] } = (await response.json()) as { Messages?: Array<{ Body: string; ReceiptHandle: string }> };
      if (!Messages.length) break;
      received.push(...Messages.map((m) => decode(m.Body).headers.id as string));
      // A FIFO group gives nothing more while these are in flight: delete them, as a consumer acks.
      const deleted = await fetch(emulator.endpoint, {
        method: "POST",
        headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "AmazonSQS.DeleteMessageBatch" },
        body: JSON.stringify({ QueueUrl: emulator.queueUrl("sqsb-order.fifo"), Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })) }),
      });
      expect(deleted.ok).toBe(true);
    }
    expect(received).toEqual(sent.map((r) => r.id));
  });

  it("sends 500 tasks at once (500 concurrent sendTask calls) and each runs exactly once", async () => {
    const before = batches.length;
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => app.sendTask("tasks.record", { args: ["burst", i] })));
    const sentMs = Date.now() - started;
    const ids = new Set(results.map((r) => r.id));
    const records = await log.waitFor({ where: (r) => ids.has(r.id), count: 500 }, 45_000);
    const ranMs = Date.now() - started;
    expect(records).toHaveLength(500);
    const runs = await runsAfterSentinel(ids);
    expect(runs.size).toBe(500);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    console.log(`sqs-broker: 500 concurrent sendTask calls accepted in ${sentMs} ms, all run once within ${ranMs} ms (${batches.length - before} SendMessageBatch calls)`);
  }, 60_000);

  it("sends 100 tasks of one sendMany as ten SendMessageBatch calls of ten, and each runs exactly once", async () => {
    const before = batches.length;
    const results = await app.sendMany(Array.from({ length: 100 }, (_, i) => ({ task: "tasks.record", args: ["many", i] })));
    expect(batches.slice(before).map((b) => b.Entries.length)).toEqual(Array(10).fill(10));
    const ids = new Set(results.map((r) => r.id));
    await log.waitFor({ where: (r) => ids.has(r.id), count: 100 }, 30_000);
    const runs = await runsAfterSentinel(ids);
    expect(runs.size).toBe(100);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
  }, 40_000);

  it("refuses a queue the fleet does not know, sends nothing, and the worker keeps running", async () => {
    const before = batches.length;
    const error = (await app.sendTask("tasks.record", { args: ["unknown"], queue: "sqsb.unknown" }).catch((e: unknown) => e)) as CeleryError;
    expect(error.code).toBe("ERR_UNROUTABLE");
    expect(error.message).toContain("sqsb-unknown");
    expect(batches.length).toBe(before);
    const sentinel = await app.sendTask("tasks.record", { args: ["after-unknown"] });
    await log.waitForTask(sentinel.id, 20_000);
    expect(worker!.isRunning()).toBe(true);
  });

  it("the worker's asynchronous receive went through the emulator adapter", () => {
    expect(emulator.patchedRequests()).toBeGreaterThan(0);
  });
});

describe("the SDK's SQS message and Python's decode to the same fields", () => {
  for (const [i, call] of vectors.calls.entries()) {
    it(`${call.id} (${call.serializer})`, async () => {
      const ours = await app.sendTask(call.task, {
        args: call.args,
        kwargs: call.kwargs,
        serializer: call.serializer,
        taskId: call.id,
        queue: "sqsb.vectors",
        ...(call.eta ? { eta: new Date(call.eta) } : {}),
      });
      const mine = decode(String(sentEntry(ours.id)!.MessageBody));
      const python = decode(vectors.messages[i]!.MessageBody);
      const body = (m: KombuSqsMessage): Buffer => Buffer.from(m.body, "base64");
      expect(body(mine).equals(body(python))).toBe(true);
      expect(mine["content-type"]).toBe(python["content-type"]);
      expect(mine["content-encoding"]).toBe(python["content-encoding"]);
      // Who sent it and from where differ by nature; everything a worker acts on must not.
      const fields = (m: KombuSqsMessage) => {
        const { origin: _o, ...headers } = m.headers;
        const { delivery_tag: _t, reply_to: _r, delivery_info, ...properties } = m.properties;
        return { headers, properties, routing_key: delivery_info.routing_key };
      };
      const a = fields(mine);
      const b = fields(python);
      if (call.eta) expect(Date.parse(a.headers.eta as string)).toBe(Date.parse(b.headers.eta as string));
      expect({ ...a, headers: { ...a.headers, eta: null } }).toEqual({ ...b, headers: { ...b.headers, eta: null } });
    });
  }
});
