/**
 * @module
 * The `celery-node` npm client (0.5.9) sending the same task, in its own process (it brings its own
 * amqplib 0.8). It has no publisher confirms and `sendTask` returns before anything is written, so
 * the only fair clock is "until the broker holds all N": we poll the queue depth.
 *
 * As shipped, its amqplib 0.8 leaves Nagle on and it makes three round trips per task (two
 * `isReady` declarations and an `assertQueue` before each publish), so each task waits out a
 * delayed ACK (~20 ms here). `nodelay` sets the socket option a user could pass through
 * `client.conf.CELERY_BROKER_OPTIONS`, to show the client at its best.
 *
 *   node --import tsx bench/celery-node-child.ts N [default|nodelay]
 */
import celery from "celery-node";
import { BENCH_QUEUE, BROKER_URL, BenchQueue, SMALL_KWARGS, TASK_NAME, smallArgs } from "./lib/common.js";

const n = Number(process.argv[2] ?? 20_000);
const noDelay = process.argv[3] === "nodelay";
const queue = await BenchQueue.open();
await queue.purge();
const client = celery.createClient(BROKER_URL, BROKER_URL, BENCH_QUEUE);
if (noDelay) {
  // Read lazily on first use, so setting them before the first send takes effect.
  client.conf.CELERY_BROKER_OPTIONS = { noDelay: true };
  client.conf.CELERY_BACKEND_OPTIONS = { noDelay: true };
}

// Connect, declare and send one, off the clock.
client.sendTask(TASK_NAME, smallArgs(-1), { ...SMALL_KWARGS });
await queue.waitForDepth(1);
await queue.purge();

const c0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < n; i++) client.sendTask(TASK_NAME, smallArgs(i), { ...SMALL_KWARGS });
const returned = performance.now();
const seen = await queue.waitForDepth(n, 300_000, 2);
const cpu = process.cpuUsage(c0); // includes the depth polling, a small share
const depth = await queue.depth();
await client.disconnect().catch(() => {});
await queue.close();
console.log(JSON.stringify({ n, noDelay, seconds: (seen - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6, loopSeconds: (returned - t0) / 1000, depth }));
