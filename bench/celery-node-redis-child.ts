/**
 * @module
 * celery-node 0.5.9 on a Redis broker (its ioredis client), in its own process. `sendTask` returns
 * before the LPUSH is answered, so the clock stops when the list holds all N (polled with LLEN).
 *
 *   node --import tsx bench/celery-node-redis-child.ts N REDIS_URL QUEUE
 */
import celery from "celery-node";
import { createClient } from "redis";
import { SMALL_KWARGS, TASK_NAME, sleep, smallArgs } from "./lib/common.js";

const n = Number(process.argv[2] ?? 20_000);
const url = process.argv[3] ?? "redis://127.0.0.1:6379/13";
const queue = process.argv[4] ?? "bench.redis";
const redis = createClient({ url, socket: { reconnectStrategy: false } });
await redis.connect();
const waitForLength = async (want: number, timeoutMs: number): Promise<number> => {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if ((await redis.lLen(queue)) >= want) return performance.now();
    if (Date.now() > until) throw new Error(`${queue} did not reach ${want} messages`);
    await sleep(2);
  }
};
const client = celery.createClient(url, url, queue);

// Connect and send one, off the clock.
client.sendTask(TASK_NAME, smallArgs(-1), { ...SMALL_KWARGS });
await waitForLength(1, 30_000);
await redis.del(queue);

const c0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < n; i++) client.sendTask(TASK_NAME, smallArgs(i), { ...SMALL_KWARGS });
const seen = await waitForLength(n, 300_000);
const cpu = process.cpuUsage(c0); // includes the polling, a small share
const depth = await redis.lLen(queue);
await client.disconnect().catch(() => {});
await redis.quit();
console.log(JSON.stringify({ n, seconds: (seen - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6, depth }));
