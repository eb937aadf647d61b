/**
 * Broker failover with several broker URLs, on real parts: two RabbitMQ "hosts" on this machine (a
 * TCP proxy each, `A` and `B`, in front of the one real RabbitMQ), a real Celery worker consuming
 * straight from RabbitMQ, and one host closed in the middle of a run — for the direct AMQP path,
 * for the relay (its BROKER_URL holding both hosts) and for the rpc:// result backend. The proxies
 * log each connection they take or refuse, in the order it came: that log is the order the SDK
 * tried the hosts in. Figures are printed as `[reliability] …` lines.
 */
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { LOCAL_CREDENTIALS } from "../../scripts/local/fauxqs.js";
import { Celery, CeleryError } from "../../sdk/node.js";
import { sqsRelay } from "../../sdk/sqs.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { purgeQueues } from "../helpers/rabbit.js";
import { startRelayHarness } from "../helpers/relay-harness.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";
import { report, sleep } from "./helpers/faults.js";

const QUEUE = "ce.failover";
const RECORD_DB = 9;
const BROKER = "amqp://guest:guest@127.0.0.1:5672//";
const RABBIT = { host: "127.0.0.1", port: 5672 };
const TASKS = 200;
const LANES = 10;
const records = new ExecutionLog({ db: RECORD_DB });
let worker: CeleryWorker;
/** Sends the sentinel straight to RabbitMQ (no proxy), behind everything already queued. */
let direct: Celery;

const urlOf = (proxy: TcpProxy): string => `amqp://guest:guest@127.0.0.1:${proxy.port}//`;

async function twoHosts(): Promise<{ a: TcpProxy; b: TcpProxy; log: string[]; stop: () => Promise<void> }> {
  const log: string[] = [];
  const a = await startTcpProxy(RABBIT, { name: "A", log });
  const b = await startTcpProxy(RABBIT, { name: "B", log });
  return { a, b, log, stop: async () => void (await Promise.all([a.close(), b.close()])) };
}

/**
 * Resolves once the worker ran a task sent after everything else: one solo worker takes its queue
 * in order, so every message RabbitMQ held before the sentinel has run by then.
 */
async function afterEverythingQueued(): Promise<void> {
  const sentinel = await direct.sendTask("tasks.add", { args: [0, 0], ignoreResult: true });
  await records.waitFor((r) => r.id === sentinel.id, 60_000);
}

async function runsPerTask(): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const r of await records.read()) counts.set(r.id, (counts.get(r.id) ?? 0) + 1);
  return counts;
}

/** Runs per task once each of `ids` ran (or `timeoutMs` passed): the relay's retries come back late, in any order. */
async function untilEachRan(ids: readonly string[], timeoutMs: number): Promise<Map<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await runsPerTask();
    if (ids.every((id) => counts.has(id)) || Date.now() >= deadline) return counts;
    await sleep(200);
  }
}

beforeAll(async () => {
  await purgeQueues([QUEUE]);
  worker = await startCeleryWorker({
    queues: [QUEUE],
    pool: "solo",
    resultBackend: "rpc://",
    hostname: `failover-${process.pid}@localhost`,
    // The broker named explicitly: the relay harness sets BROKER_URL (to the proxies) for the relay, and Celery reads it too.
    env: { CELERY_EDGE_DEFAULT_QUEUE: QUEUE, CELERY_EDGE_RECORD_DB: String(RECORD_DB), CELERY_BROKER_URL: BROKER, BROKER_URL: BROKER },
  });
  direct = new Celery({ broker: BROKER, defaultQueue: QUEUE });
});

afterAll(async () => {
  await direct?.close();
  await worker?.stop();
});

beforeEach(async () => {
  await records.clear();
});

describe("an app with two broker URLs, one closed in the middle of a run", () => {
  it(`loses nothing, rejects only with typed errors, retries nothing by itself, and tries the hosts round-robin (${TASKS} tasks)`, async () => {
    // Prepare: 10 callers share one app; each sends its tasks one by one and, as a careful caller
    // does, sends a rejected task again under the same id.
    const { a, b, log, stop } = await twoHosts();
    const app = new Celery({ broker: `${urlOf(a)};${urlOf(b)}`, defaultQueue: QUEUE, connectTimeout: 2_000, publishTimeout: 5_000 });
    const transport = app.transport as AmqpTransport;
    const run = Date.now();
    const confirmedOn = new Map<string, number>(); // task id → connections opened when its send resolved
    const rejected = new Map<string, Array<{ code: string; typed: boolean }>>();
    const gaveUp: string[] = [];
    let next = 0;
    let phase = 0;

    // Act: A goes down after a third of the tasks; after two thirds A is back and B goes down.
    const faults = (): void => {
      if (phase === 0 && confirmedOn.size >= TASKS / 3) {
        phase = 1;
        a.setDown(true);
      } else if (phase === 1 && confirmedOn.size >= (2 * TASKS) / 3) {
        phase = 2;
        a.setDown(false);
        b.setDown(true);
      }
    };
    const lane = async (): Promise<void> => {
      for (let i = next++; i < TASKS; i = next++) {
        const taskId = `failover-${run}-${i}`;
        for (let attempt = 1; ; attempt++) {
          try {
            await app.sendTask("tasks.add", { args: [i, 1], taskId, ignoreResult: true });
            confirmedOn.set(taskId, transport.connectionsOpened);
            faults();
            break;
          } catch (err) {
            const list = rejected.get(taskId) ?? [];
            list.push({ code: (err as { code?: string }).code ?? String(err), typed: err instanceof CeleryError });
            rejected.set(taskId, list);
            if (attempt >= 5) {
              gaveUp.push(taskId);
              break;
            }
            await sleep(50);
          }
        }
      }
    };
    const started = Date.now();
    try {
      await Promise.all(Array.from({ length: LANES }, lane));
    } finally {
      await app.close();
      await stop();
    }
    const sendMs = Date.now() - started;
    await afterEverythingQueued();
    const counts = await runsPerTask();

    // Assess: every task ran; one never rejected ran exactly once (the SDK sent nothing again by itself).
    const ids = [...confirmedOn.keys()];
    const lost = ids.filter((id) => !counts.has(id));
    const rejections = [...rejected.values()].flat();
    const neverRejected = ids.filter((id) => !rejected.has(id));
    const duplicated = ids.filter((id) => (counts.get(id) ?? 0) > 1);
    report("amqp failover", { tasks: TASKS, sendMs, rejections: rejections.length, rejectedTasks: rejected.size, duplicated: duplicated.length, connections: transport.connectionsOpened, proxyLog: log.join(",").replaceAll(" ", ":") });
    expect(gaveUp).toEqual([]);
    expect(confirmedOn.size).toBe(TASKS);
    expect(lost).toEqual([]);
    expect(rejections.every((r) => r.typed)).toBe(true);
    expect(rejections.filter((r) => !["ERR_CHANNEL_CLOSED", "ERR_CONNECTION", "ERR_TIMEOUT"].includes(r.code))).toEqual([]);
    expect(neverRejected.filter((id) => counts.get(id) !== 1)).toEqual([]);
    // Only a send the caller was told failed may have run twice (its confirm was lost, and the caller sent it again).
    expect(duplicated.filter((id) => !rejected.has(id))).toEqual([]);
    // The order: A first; A's broken connection replaced by trying A again (refused), then B; B's by B, then A.
    expect(log).toEqual(["A accepted", "A refused", "B accepted", "B refused", "A accepted"]);
    // Tasks were confirmed on each of the three connections: both faults landed in the middle of the run.
    expect(new Set(confirmedOn.values())).toEqual(new Set([1, 2, 3]));
  }, 120_000);
});

describe("the rpc:// result backend with two broker URLs", () => {
  it("gets a result over the second host when the first is down, tried in order", async () => {
    // Prepare
    const { a, b, log, stop } = await twoHosts();
    a.setDown(true);
    const app = new Celery({ broker: [urlOf(a), urlOf(b)], backend: "rpc://", defaultQueue: QUEUE, connectTimeout: 2_000 });
    try {
      // Act
      const result = await app.sendTask<number>("tasks.add", { args: [2, 3] });
      const value = await result.get({ timeout: 20_000 });
      // Assess: the backend (its reply queue, before the send) and the transport each tried A, then B.
      expect(value).toBe(5);
      expect(log).toEqual(["A refused", "B accepted", "A refused", "B accepted"]);
    } finally {
      await app.close();
      await stop();
    }
  }, 60_000);
});

describe("the relay with two broker URLs in BROKER_URL, one closed in the middle of a run", () => {
  it(`loses nothing: records that failed while no host answered come back from SQS and are published through the host that came back (${TASKS} tasks)`, async () => {
    // Prepare
    const { a, b, log, stop } = await twoHosts();
    process.env.POWERTOOLS_LOG_LEVEL = "INFO"; // the relay's "published" lines tell how far it got
    const harness = await startRelayHarness({
      brokerUrl: `${urlOf(a)};${urlOf(b)}`,
      policy: { queues: [{ name: QUEUE, declare: true }], contentTypes: ["application/json"] },
      maxReceiveCount: 5,
      visibilityTimeout: 3,
    });
    const app = new Celery({ broker: sqsRelay({ queueUrl: harness.intake.url, endpoint: harness.sqs.endpoint, credentials: LOCAL_CREDENTIALS }), defaultQueue: QUEUE });
    const run = Date.now();
    const ids = Array.from({ length: TASKS }, (_, i) => `failover-relay-${run}-${i}`);
    const published = (): number => harness.logs.filter((line) => line.includes('"message":"published"')).length;
    const failed = (): string[] => harness.logs.filter((line) => line.includes('"message":"publish failed"'));
    try {
      // Act: all the tasks at once; once the relay has published a fifth of them through A, both
      // hosts go down until a record has failed (and gone back to SQS); then B comes back.
      const started = Date.now();
      const sent = Promise.all(ids.map((taskId, i) => app.sendTask("tasks.add", { args: [i, 1], taskId, ignoreResult: true })));
      const downBy = Date.now() + 30_000;
      while (published() < TASKS / 5 && Date.now() < downBy) await sleep(5);
      a.setDown(true);
      b.setDown(true);
      const publishedBeforeDown = published();
      const failedBy = Date.now() + 30_000;
      while (failed().length === 0 && Date.now() < failedBy) await sleep(20);
      b.setDown(false);
      await sent;
      const counts = await untilEachRan(ids, 90_000);
      const tookMs = Date.now() - started;
      const dlq = await harness.client.send(new GetQueueAttributesCommand({ QueueUrl: harness.intake.dlqUrl!, AttributeNames: ["ApproximateNumberOfMessages"] }));

      // Assess: every task ran at least once (at-least-once: a record whose confirm was lost may run twice).
      const lost = ids.filter((id) => !counts.has(id));
      const duplicated = ids.filter((id) => (counts.get(id) ?? 0) > 1).length;
      const failures = failed();
      report("relay failover", { tasks: TASKS, tookMs, publishedBeforeDown, failedPublishes: failures.length, executions: [...counts.values()].reduce((n, c) => n + c, 0), duplicated, proxyLog: log.join(",").replaceAll(" ", ":") });
      expect(lost).toEqual([]);
      // A went down in the middle of the run: the relay had published some of the tasks, not all.
      expect(publishedBeforeDown).toBeGreaterThanOrEqual(TASKS / 5);
      expect(publishedBeforeDown).toBeLessThan(TASKS);
      expect(Number(dlq.Attributes?.ApproximateNumberOfMessages ?? 0)).toBe(0);
      // Records failed while both hosts were down, each with the typed error naming both (no password), and came back through SQS.
      expect(failures.length).toBeGreaterThan(0);
      for (const line of failures) {
        expect(line).toMatch(/"code":"ERR_CONNECTION"/);
        expect(line).toContain(`127.0.0.1:${a.port}`);
        expect(line).toContain(`127.0.0.1:${b.port}`);
        expect(line).not.toContain("guest:guest");
      }
      // The relay connected through A; then each connect attempt tried both hosts, round-robin (no
      // host twice in a row), until B took the connection back.
      expect(log[0]).toBe("A accepted");
      expect(log[log.length - 1]).toBe("B accepted");
      const between = log.slice(1, -1);
      expect(between.every((entry) => entry.endsWith("refused"))).toBe(true);
      expect(between.filter((entry, i) => i > 0 && entry === between[i - 1])).toEqual([]);
      expect([a.accepted, b.accepted]).toEqual([1, 1]);
    } finally {
      await app.close();
      await harness.stop();
      await stop();
    }
  }, 150_000);
});
