/**
 * Faults on the direct AMQP path, against the real RabbitMQ and a real Celery worker: a broker
 * restart in the middle of a run, and broker flow control (a forced memory alarm). Figures are
 * printed as `[reliability] …` lines and kept in RELIABILITY.md.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Celery, CeleryError, TimeoutError } from "../../sdk/node.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { purgeQueues } from "../helpers/rabbit.js";
import {
  RecordCounter,
  SOAK_SIZE,
  clearMemoryAlarm,
  ensureBrokerUp,
  memoryAlarmOn,
  queueSentinel,
  raiseMemoryAlarm,
  report,
  restartBroker,
  sleep,
  tally,
  workerEnv,
} from "./helpers/faults.js";

const BROKER = "amqp://guest:guest@127.0.0.1:5672//";
const QUEUE = "ce.rel.amqp";
const records = new RecordCounter();
let worker: CeleryWorker;
let workerRestarts = 0;
const POOL_PROCESSES = 4;

async function startWorker(): Promise<CeleryWorker> {
  return startCeleryWorker({ queues: [QUEUE], concurrency: POOL_PROCESSES, env: workerEnv(QUEUE) });
}

/** Sends a sentinel through `app`, behind whatever that app already wrote. */
const through = (app: Celery) => async (sentinel: { task: string; args: unknown[] }) => (await app.sendTask(sentinel.task, { args: sentinel.args, ignoreResult: true })).id;

beforeAll(async () => {
  await records.open();
  worker = await startWorker();
  await purgeQueues([QUEUE]);
});

afterAll(async () => {
  // Other files share this broker: it must be running, with its normal watermark.
  try {
    await clearMemoryAlarm();
  } finally {
    await ensureBrokerUp();
    await worker?.stop();
    await records.close();
  }
});

beforeEach(async () => {
  await records.clear();
});

afterEach(async () => {
  await ensureBrokerUp();
  await clearMemoryAlarm();
  if (!worker.isRunning()) {
    workerRestarts++;
    worker = await startWorker();
  }
});

describe("a broker restart during a run of direct publishes", () => {
  it(`never resolves a send whose task is then lost, rejects only with typed errors, and reconnects by itself (${SOAK_SIZE} tasks)`, async () => {
    // Prepare: 20 callers share one app; each sends its tasks one by one and, as a careful caller
    // would, sends a rejected task again under the same id after 200 ms.
    const transport = new AmqpTransport({ url: BROKER });
    const app = new Celery({ broker: transport, defaultQueue: QUEUE, connectTimeout: 2_000, publishTimeout: 5_000 });
    const started = Date.now();
    const resolved = new Map<string, number>(); // task id → connections the transport had opened when its send resolved
    const rejections: Array<{ code: string; typed: boolean; at: number }> = [];
    const gaveUp: string[] = [];
    let next = 0;
    let restart: { downAt: number; upAt: number } | undefined;
    // The second half waits until the broker is really down (rabbitmqctl takes seconds to get
    // there), so the restart always lands mid-run however fast the first half went.
    let markDown!: () => void;
    const brokerDown = new Promise<void>((resolve) => (markDown = resolve));

    // Act
    const lane = async (): Promise<void> => {
      for (let i = next++; i < SOAK_SIZE; i = next++) {
        const taskId = `amqp-restart-${started}-${i}`;
        if (i >= SOAK_SIZE / 2) await brokerDown;
        const giveUpAt = Date.now() + 60_000;
        for (;;) {
          try {
            await app.sendTask("tasks.add", { args: [i, 1], taskId, ignoreResult: true });
            resolved.set(taskId, transport.connectionsOpened);
            break;
          } catch (err) {
            rejections.push({ code: (err as { code?: string }).code ?? String(err), typed: err instanceof CeleryError, at: Date.now() });
            if (Date.now() > giveUpAt) {
              gaveUp.push(taskId);
              break;
            }
            await sleep(200);
          }
        }
      }
    };
    const lanes = Promise.all(Array.from({ length: 20 }, lane));
    const quarterBy = Date.now() + 60_000;
    while (resolved.size < SOAK_SIZE / 4 && Date.now() < quarterBy) await sleep(20);
    const resolvedBeforeRestart = resolved.size;
    try {
      restart = await restartBroker(3_000, markDown);
    } finally {
      markDown(); // never leave the second half waiting, even if the restart failed
      await lanes;
      await app.close();
    }
    const ids = new Set(resolved.keys());
    await records.waitForAll(ids, 120_000);
    await records.afterQueued(queueSentinel(QUEUE), POOL_PROCESSES);
    const counts = await records.perTask();

    // Assess
    const { executed, duplicated, lost } = tally(ids, counts);
    const byCode: Record<string, number> = {};
    for (const r of rejections) byCode[r.code] = (byCode[r.code] ?? 0) + 1;
    const resolvedOnNewConnection = [...resolved.values()].filter((connections) => connections >= 2).length;
    report("amqp broker restart", {
      sent: SOAK_SIZE,
      resolved: resolved.size,
      executed,
      duplicated,
      lost: lost.length,
      rejections: rejections.length,
      rejectionCodes: JSON.stringify(byCode),
      resolvedBeforeRestart,
      resolvedOnNewConnection,
      connectionsOpened: transport.connectionsOpened,
      outageMs: restart.upAt - restart.downAt,
      workerRestarts,
      seconds: ((Date.now() - started) / 1000).toFixed(1),
    });
    expect(gaveUp).toEqual([]);
    expect(resolvedBeforeRestart).toBeGreaterThanOrEqual(SOAK_SIZE / 4);
    expect(resolvedBeforeRestart).toBeLessThan(SOAK_SIZE); // the restart really happened mid-run
    expect(rejections.length).toBeGreaterThan(0); // and callers really saw it
    expect(rejections.filter((r) => !r.typed)).toEqual([]);
    for (const code of Object.keys(byCode)) expect(["ERR_CONNECTION", "ERR_CHANNEL_CLOSED", "ERR_TIMEOUT", "ERR_PUBLISH"]).toContain(code);
    expect(lost).toEqual([]); // never resolved-and-lost
    expect(resolved.size).toBe(SOAK_SIZE);
    expect(executed).toBe(SOAK_SIZE);
    expect(resolvedOnNewConnection).toBeGreaterThan(0); // sends after the restart succeed…
    expect(transport.connectionsOpened).toBeGreaterThanOrEqual(2); // …on a connection it re-opened itself
    expect(worker.logs()).toContain("Connection to broker lost"); // the worker lived through the same restart
  }, 300_000);
});

describe("broker flow control (memory alarm)", () => {
  it("holds a publish while the broker blocks publishing, then fails it with a clear TimeoutError; nothing hangs", async () => {
    // Prepare: a connection that is already open when the alarm goes off, as in a warm Lambda.
    const app = new Celery({ broker: BROKER, defaultQueue: QUEUE, publishTimeout: 2_000 });
    const stamp = Date.now();
    try {
      const warm = await app.sendTask("tasks.add", { args: [0, 0], ignoreResult: true });
      await records.waitForAll(new Set([warm.id]), 15_000);
      await raiseMemoryAlarm();

      // Act
      const t0 = Date.now();
      const err = await app.sendTask("tasks.add", { args: [1, 1], ignoreResult: true, taskId: `blocked-single-${stamp}` }).catch((e: unknown) => e);
      const waited = Date.now() - t0;
      const batchStart = Date.now();
      const batch = await app
        .sendMany(Array.from({ length: 20 }, (_, i) => ({ task: "tasks.add", args: [i, 1], ignoreResult: true, taskId: `blocked-batch-${stamp}-${i}` })))
        .catch((e: unknown) => e);
      const batchWaited = Date.now() - batchStart;
      await clearMemoryAlarm();
      const after = await app.sendTask("tasks.add", { args: [2, 2], ignoreResult: true });
      await records.waitForAll(new Set([after.id]), 15_000);
      await records.afterQueued(through(app), POOL_PROCESSES);
      const counts = await records.perTask();
      const timedOut = [`blocked-single-${stamp}`, ...Array.from({ length: 20 }, (_, i) => `blocked-batch-${stamp}-${i}`)];
      const ranAnyway = timedOut.filter((id) => counts.has(id));

      // Assess
      const message = (err as Error).message;
      report("amqp flow control, timeout", { publishTimeoutMs: 2_000, waitedMs: waited, batchOf20WaitedMs: batchWaited, timedOutButRan: ranAnyway.length, message: JSON.stringify(message) });
      expect(err).toBeInstanceOf(TimeoutError);
      expect((err as CeleryError).code).toBe("ERR_TIMEOUT");
      expect(message).toMatch(/blocked|no confirm/);
      expect(message).not.toContain("guest:guest");
      expect(waited).toBeGreaterThanOrEqual(1_900);
      expect(waited).toBeLessThan(5_000);
      expect((batch as CeleryError).code).toBe("ERR_BATCH");
      expect(batchWaited).toBeLessThan(5_000);
      for (const o of (batch as { outcomes: Array<{ ok: boolean; error?: CeleryError }> }).outcomes) {
        expect(o.ok).toBe(false);
        expect(o.error).toBeInstanceOf(TimeoutError);
      }
      // "was not sent" must be true: none of the refused tasks runs once the broker unblocks.
      if (/was not sent/.test(message)) expect(ranAnyway).toEqual([]);
      expect(counts.get(after.id)).toBe(1); // the same app publishes again once unblocked
    } finally {
      await clearMemoryAlarm();
      await app.close();
    }
  }, 60_000);

  it("completes a held publish once the broker unblocks, and the worker runs it once", async () => {
    // Prepare
    const app = new Celery({ broker: BROKER, defaultQueue: QUEUE, publishTimeout: 20_000 });
    try {
      const warm = await app.sendTask("tasks.add", { args: [0, 0], ignoreResult: true });
      await records.waitForAll(new Set([warm.id]), 15_000);
      await raiseMemoryAlarm();

      // Act: publish while blocked, lift the alarm 2 s later.
      const t0 = Date.now();
      let settledWhileBlocked = false;
      const pending = app.sendTask("tasks.add", { args: [3, 3], ignoreResult: true }).finally(() => {
        settledWhileBlocked = Date.now() - t0 < 2_000;
      });
      await sleep(2_000);
      const stillBlocked = await memoryAlarmOn();
      await clearMemoryAlarm();
      const r = await pending;
      const waited = Date.now() - t0;
      await records.waitForAll(new Set([r.id]), 15_000);
      await records.afterQueued(through(app), POOL_PROCESSES);
      const executions = (await records.perTask()).get(r.id) ?? 0;

      // Assess
      report("amqp flow control, unblock", { blockedForMs: 2_000, resolvedAfterMs: waited, executions });
      expect(stillBlocked).toBe(true);
      expect(settledWhileBlocked).toBe(false);
      expect(waited).toBeGreaterThanOrEqual(2_000);
      expect(waited).toBeLessThan(20_000);
      expect(executions).toBe(1);
    } finally {
      await clearMemoryAlarm();
      await app.close();
    }
  }, 60_000);

  it("fails a first publish on a connection opened during the alarm within its timeouts", async () => {
    // Prepare: nothing is connected yet when the alarm goes off (a cold Lambda).
    await raiseMemoryAlarm();
    const app = new Celery({ broker: BROKER, defaultQueue: QUEUE, connectTimeout: 2_000, publishTimeout: 2_000 });
    try {
      // Act
      const t0 = Date.now();
      const err = await app.sendTask("tasks.add", { args: [4, 4], ignoreResult: true }).catch((e: unknown) => e);
      const waited = Date.now() - t0;

      // Assess
      report("amqp flow control, cold connection", { connectTimeoutMs: 2_000, publishTimeoutMs: 2_000, waitedMs: waited, code: (err as CeleryError).code });
      expect(err).toBeInstanceOf(CeleryError);
      expect(["ERR_TIMEOUT", "ERR_CONNECTION"]).toContain((err as CeleryError).code);
      expect(waited).toBeLessThan(2_000 + 2_000 + 2_000);
    } finally {
      await clearMemoryAlarm();
      await app.close();
    }
  }, 60_000);

  it("honours the publishTimeout given to an AmqpTransport when the app sets none", async () => {
    // Prepare: the timeout is configured on the transport, the documented AmqpTransportOptions field.
    const transport = new AmqpTransport({ url: BROKER, publishTimeout: 2_000 });
    const app = new Celery({ broker: transport, defaultQueue: QUEUE });
    try {
      const warm = await app.sendTask("tasks.add", { args: [0, 0], ignoreResult: true });
      await records.waitForAll(new Set([warm.id]), 15_000);
      await raiseMemoryAlarm();

      // Act
      const t0 = Date.now();
      const err = await Promise.race([app.sendTask("tasks.add", { args: [5, 5], ignoreResult: true }).catch((e: unknown) => e), sleep(8_000).then(() => "still waiting after 8 s")]);
      const waited = Date.now() - t0;

      // Assess
      report("amqp flow control, transport publishTimeout", { publishTimeoutMs: 2_000, waitedMs: waited });
      expect(err).toBeInstanceOf(TimeoutError);
      expect(waited).toBeLessThan(5_000);
    } finally {
      await clearMemoryAlarm();
      await app.close();
    }
  }, 60_000);
});
