/**
 * @module
 * Shared pieces of the reliability suite: run sizes, broker faults that always undo themselves,
 * and fast counting of the execution records a large run leaves in Redis.
 *
 * Reliability tests run their workers on queues of their own (`ce.rel.*`) and record executions in
 * their own Redis database, so a developer running another suite against the same broker at the
 * same time neither steals their tasks nor clears their records.
 */
import { connect } from "node:net";
import { createClient } from "redis";
import { publishRaw, rabbitmqctl, rawCeleryTaskMessage } from "../../helpers/rabbit.js";

/** Tasks per soak run: 2 000 in CI, 10 000 with `RELIABILITY_FULL=1`. */
export const SOAK_SIZE = process.env.RELIABILITY_FULL === "1" ? 10_000 : 2_000;

/** Redis database the reliability workers record executions in (`CELERY_EDGE_RECORD_DB`). */
export const RECORD_DB = 14;
const RECORDS_KEY = "celery_edge:executions";

/**
 * Worker environment: its own default queue and record database, and the broker named explicitly:
 * Celery also reads `BROKER_URL`, which the relay harness sets for the relay (possibly to another
 * user or a proxy), and a worker must not follow it.
 */
export function workerEnv(queue: string): Record<string, string> {
  const broker = "amqp://guest:guest@127.0.0.1:5672//";
  return { CELERY_EDGE_DEFAULT_QUEUE: queue, CELERY_EDGE_RECORD_DB: String(RECORD_DB), CELERY_BROKER_URL: broker, BROKER_URL: broker };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One line per figure, greppable in CI output, copied into RELIABILITY.md. */
export function report(name: string, figures: Record<string, number | string>): void {
  const text = Object.entries(figures)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  console.log(`[reliability] ${name}: ${text}`);
}

/** Execution records, counted per task id without keeping 10k parsed records around. */
export class RecordCounter {
  private redis = createClient({ url: "redis://127.0.0.1:6379", database: RECORD_DB, socket: { connectTimeout: 5_000, reconnectStrategy: false } });

  async open(): Promise<this> {
    this.redis.on("error", () => {});
    await this.redis.connect();
    return this;
  }

  async clear(): Promise<void> {
    await this.redis.del(RECORDS_KEY);
  }

  async total(): Promise<number> {
    return this.redis.lLen(RECORDS_KEY);
  }

  /** Executions per task id. */
  async perTask(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    const raw = await this.redis.lRange(RECORDS_KEY, 0, -1);
    for (const item of raw) {
      const id = (JSON.parse(item) as { id: string }).id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  }

  /** Polls until every id in `ids` executed at least once, or `timeoutMs` passed; returns the counts. */
  async waitForAll(ids: ReadonlySet<string>, timeoutMs: number): Promise<Map<string, number>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if ((await this.total()) >= ids.size) {
        const counts = await this.perTask();
        if ([...ids].every((id) => counts.has(id)) || Date.now() >= deadline) return counts;
      } else if (Date.now() >= deadline) {
        return this.perTask();
      }
      await sleep(250);
    }
  }

  /**
   * Resolves once every task queued ahead of this call has started (and so been recorded): `send`
   * queues a `tasks.sleep` sentinel behind them — on their queue, and on their channel when that
   * decides their order — once per pool process, round after round, until each of the worker's
   * `processes` pool processes has run one. The worker hands tasks out in queue order and a process
   * runs what it was handed in order, so a process that ran a sentinel already started everything
   * handed to it before. A positive signal, in place of waiting a while for what should not come.
   */
  async afterQueued(send: (sentinel: { task: string; args: unknown[] }) => Promise<string>, processes: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const sentinels = new Set<string>();
    const pids = new Set<number>();
    while (pids.size < processes) {
      // Sentinels that sleep a little spread over the idle processes instead of queueing on one.
      for (let i = 0; i < processes; i++) sentinels.add(await send({ task: "tasks.sleep", args: [0.2] }));
      for (;;) {
        const ran = (await this.redis.lRange(RECORDS_KEY, 0, -1))
          .map((item) => JSON.parse(item) as { id: string; pid: number })
          .filter((r) => sentinels.has(r.id));
        if (ran.length >= sentinels.size) {
          for (const r of ran) pids.add(r.pid);
          break;
        }
        if (Date.now() >= deadline) throw new Error(`sentinels ran on ${pids.size} of ${processes} pool processes within ${timeoutMs} ms`);
        await sleep(50);
      }
    }
  }

  async close(): Promise<void> {
    this.redis.destroy();
  }
}

/** For `RecordCounter.afterQueued`: publishes each sentinel straight to `queue`, behind what is on it. */
export function queueSentinel(queue: string): (sentinel: { task: string; args: unknown[] }) => Promise<string> {
  return async (sentinel) => {
    const message = rawCeleryTaskMessage({ ...sentinel, routingKey: queue });
    await publishRaw(message);
    return message.id;
  };
}

/** Executed, duplicated and lost among `ids`, from per-id execution counts. */
export function tally(ids: ReadonlySet<string>, counts: ReadonlyMap<string, number>): { executed: number; duplicated: number; lost: string[] } {
  let executed = 0;
  let duplicated = 0;
  const lost: string[] = [];
  for (const id of ids) {
    const n = counts.get(id) ?? 0;
    if (n === 0) lost.push(id);
    else executed++;
    if (n > 1) duplicated += n - 1;
  }
  return { executed, duplicated, lost };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    const done = (open: boolean): void => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => done(true));
  });
}

/** Starts the RabbitMQ application if it is stopped and waits until it accepts AMQP connections. */
export async function ensureBrokerUp(): Promise<void> {
  await rabbitmqctl(["start_app"]);
  await rabbitmqctl(["await_startup"]);
  const deadline = Date.now() + 60_000;
  while (!(await portOpen(5672))) {
    if (Date.now() > deadline) throw new Error("RabbitMQ did not listen on 5672 within 60 s of start_app");
    await sleep(100);
  }
}

/**
 * `rabbitmqctl stop_app`, `downMs` of outage, `start_app`. The broker is started again whatever
 * happens in between. Resolves with when it went down and when it accepted connections again.
 */
export async function restartBroker(downMs: number, onDown?: () => void): Promise<{ downAt: number; upAt: number }> {
  const downAt = Date.now();
  try {
    await rabbitmqctl(["stop_app"]);
    onDown?.();
    await sleep(downMs);
  } finally {
    await ensureBrokerUp();
  }
  return { downAt, upAt: Date.now() };
}

/** Raises RabbitMQ's memory alarm (every publishing connection is blocked) and waits until it is on. */
export async function raiseMemoryAlarm(): Promise<void> {
  await rabbitmqctl(["set_vm_memory_high_watermark", "0.0000001"]);
  const deadline = Date.now() + 15_000;
  while (!(await memoryAlarmOn())) {
    if (Date.now() > deadline) throw new Error("RabbitMQ did not raise its memory alarm within 15 s");
    await sleep(100);
  }
}

/** Restores the watermark every other test expects (RabbitMQ's default 0.4) and waits for the alarm to clear. */
export async function clearMemoryAlarm(): Promise<void> {
  await rabbitmqctl(["set_vm_memory_high_watermark", "0.4"]);
  const deadline = Date.now() + 15_000;
  while (await memoryAlarmOn()) {
    if (Date.now() > deadline) throw new Error("RabbitMQ's memory alarm did not clear within 15 s of restoring the watermark");
    await sleep(100);
  }
}

export async function memoryAlarmOn(): Promise<boolean> {
  const { stdout } = await rabbitmqctl(["eval", "rabbit_alarm:get_alarms()."]);
  return stdout.includes("memory");
}
