/**
 * Results through Celery's result backends, against a real Python worker: `redis://` (each
 * result_serializer) and `rpc://` over the real RabbitMQ. What every backend promises is one
 * contract run against both; what only one of them does (connections, reply queues, stored keys)
 * is tested for that backend alone.
 */
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  Celery,
  ConfigurationError,
  ResultBackendError,
  TaskFailedError,
  TimeoutError,
  type AsyncResult,
  type CeleryOptions,
} from "../../sdk/node.js";
import { exceptionInfo } from "../../sdk/backends/exceptions.js";
import { decodeStoredMeta, type RedisBackend } from "../../sdk/backends/redis.js";
import { msgpackSerializer } from "../../sdk/serializers/msgpack.js";
import type { RpcBackend } from "../../sdk/backends/rpc.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { deleteQueues, rabbitmqctl, withChannel } from "../helpers/rabbit.js";

const BROKER = "amqp://guest:guest@127.0.0.1:5672//";
const REDIS = "redis://127.0.0.1:6379/0";

/**
 * Each worker here serves its own default queue: other test files' workers consume ce.default
 * with other result backends, and a task they took would never report back over rpc://.
 */
let queueCount = 0;
const privateQueue = (): string => `ce.results.${process.pid}.${++queueCount}`;

function newApp(queue: string, options: Partial<CeleryOptions> = {}): Celery {
  return new Celery({ broker: BROKER, backend: REDIS, defaultQueue: queue, ...options });
}

/** Removes a private queue and the direct exchange of the same name that worker and SDK declared. */
async function dropQueue(queue: string): Promise<void> {
  await deleteQueues([queue]);
  await withChannel(async (channel) => {
    await channel.deleteExchange(queue);
  });
}

function startWorker(queue: string, options: Parameters<typeof startCeleryWorker>[0] = {}): Promise<CeleryWorker> {
  return startCeleryWorker({ ...options, queues: [queue], env: { CELERY_EDGE_DEFAULT_QUEUE: queue } });
}

function tasksOf(app: Celery) {
  return {
    add: app.task<[number, number], number>("tasks.add"),
    echo: app.task<unknown[], { args: unknown[]; kwargs: Record<string, unknown> }>("tasks.echo"),
    fail: app.task<[string], never>("tasks.fail"),
    sleep: app.task<[number], number>("tasks.sleep"),
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

function printLogsOnFailure(getWorker: () => CeleryWorker | undefined): void {
  afterEach((context) => {
    const worker = getWorker();
    if (worker && context.task.result?.state === "fail") console.error(`--- logs of ${worker.hostname} ---\n${worker.logs()}`);
  });
}

/** A plain Redis connection for looking behind the backend's back (CLIENT LIST, EXISTS). */
async function inspector() {
  const client = createClient({ url: "redis://127.0.0.1:6379/0" });
  client.on("error", () => {});
  await client.connect();
  return client;
}

interface ClientInfo {
  id: string;
  name: string;
  sub: number;
}

async function clientsNamed(prefix: string): Promise<ClientInfo[]> {
  const redis = await inspector();
  try {
    const list = String(await redis.sendCommand(["CLIENT", "LIST"]));
    return list
      .split("\n")
      .filter(Boolean)
      .map((line) => Object.fromEntries(line.split(" ").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])))
      .filter((f) => (f.name ?? "").startsWith(prefix))
      .map((f) => ({ id: f.id!, name: f.name!, sub: Number(f.sub ?? 0) }));
  } finally {
    redis.destroy();
  }
}

describe.each(["json", "msgpack", "yaml", "pickle"])("the redis:// backend with result_serializer %s", (serializer) => {
  const queue = privateQueue();
  let worker: CeleryWorker | undefined;
  let app: Celery;

  beforeAll(async () => {
    worker = await startWorker(queue, { resultSerializer: serializer, pool: "solo" });
    app = newApp(queue, { resultSerializer: serializer });
  });

  afterAll(async () => {
    await app?.close();
    await worker?.stop();
    await dropQueue(queue);
  });

  printLogsOnFailure(() => worker);

  it("returns the task's return value from get()", async () => {
    // Arrange
    const { add } = tasksOf(app);

    // Act
    const result = await add.delay(2, 2);
    const value = await result.get({ timeout: 15_000 });

    // Assert
    expect(value).toBe(4);
  });

  it("returns nested lists, dicts, strings and None as the worker returned them", async () => {
    // Arrange
    const { echo } = tasksOf(app);

    // Act
    const result = await echo.applyAsync({ args: ["a", 1.5, null, [1, 2]], kwargs: { k: "v", n: { deep: true } } });
    const value = await result.get({ timeout: 15_000 });

    // Assert
    expect(value).toEqual({ args: ["a", 1.5, null, [1, 2]], kwargs: { k: "v", n: { deep: true } } });
  });

  it("rejects get() with a TaskFailedError carrying ValueError, its message and the traceback", async () => {
    // Arrange
    const { fail } = tasksOf(app);

    // Act
    const result = await fail.delay(`boom with ${serializer}`);
    const error = await rejection(result.get({ timeout: 15_000 }));

    // Assert
    expect(error).toBeInstanceOf(TaskFailedError);
    const failure = error as TaskFailedError;
    expect(failure).toMatchObject({ taskId: result.id, excType: "ValueError", excMessage: `boom with ${serializer}`, code: "ERR_TASK_FAILED" });
    expect(failure.traceback).toContain("Traceback (most recent call last)");
    expect(failure.traceback).toContain(`ValueError: boom with ${serializer}`);
  });

  it("reads the worker's result only as the app's resultSerializer, never guessing the format from the bytes", async () => {
    // Arrange: an app left at the default (json) resultSerializer and resultAccept.
    const unaware = newApp(queue);
    const { add } = tasksOf(unaware);

    // Act
    const result = await add.delay(19, 23);
    const outcome = await result.get({ timeout: 15_000 }).catch((err: unknown) => err);
    await unaware.close();

    // Assert
    if (serializer === "json") expect(outcome).toBe(42);
    else expect(outcome).toMatchObject({ name: "ResultDecodeError", code: "ERR_RESULT_DECODE", taskId: result.id });
  });
});

describe("reading what Celery stores", () => {
  it("refuses a meta in another format than the configured serializer's instead of guessing the format from its bytes", () => {
    // Arrange
    const meta = { status: "SUCCESS", result: [1, "two"], traceback: null, children: [], date_done: "2024-01-02T03:04:05.000006", task_id: "t-1" };
    const bytes = msgpackSerializer.encode(meta);

    // Act
    const error = (() => {
      try {
        decodeStoredMeta(bytes, "t-1", "json");
      } catch (err) {
        return err;
      }
    })();

    // Assert
    expect(error).toMatchObject({ name: "ResultDecodeError", code: "ERR_RESULT_DECODE", taskId: "t-1" });
    expect(decodeStoredMeta(bytes, "t-1", "msgpack")).toEqual({ taskId: "t-1", status: "SUCCESS", result: [1, "two"], traceback: null, dateDone: "2024-01-02T03:04:05.000006" });
  });

  it("rejects bytes that are no Celery meta with ResultBackendError naming the task and the serializer", () => {
    // Act
    const error = (() => {
      try {
        decodeStoredMeta(new TextEncoder().encode('"just a string"'), "t-2", "json");
      } catch (err) {
        return err;
      }
    })();

    // Assert
    expect(error).toBeInstanceOf(ResultBackendError);
    expect((error as Error).message).toContain("task t-2 as json");
  });

  it.each([
    [{ exc_type: "ValueError", exc_message: ["boom"], exc_module: "builtins" }, "ValueError", "boom"],
    [{ exc_type: "ValueError", exc_message: [], exc_module: "builtins" }, "ValueError", ""],
    [{ exc_type: "ValueError", exc_message: ["a", 2, null], exc_module: "builtins" }, "ValueError", "('a', 2, None)"],
    [{ exc_type: "KeyError", exc_message: ["missing"], exc_module: "builtins" }, "KeyError", "'missing'"],
    [{ exc_type: "ValueError", exc_message: "old style", exc_module: "builtins" }, "ValueError", "old style"],
    [{ module: "builtins", name: "ValueError", args: ["pickled"] }, "ValueError", "pickled"],
    [
      { module: "celery.utils.serialization", name: "UnpickleableExceptionWrapper", args: ["app.errors", "Odd", ["x"], "Odd('x')"] },
      "Odd",
      "Odd('x')",
    ],
  ])("reads the exception %j as %s with Python's str() message", (stored, excType, excMessage) => {
    // Act
    const info = exceptionInfo(stored);

    // Assert
    expect({ excType: info.excType, excMessage: info.excMessage }).toEqual({ excType, excMessage });
  });
});

/** The two backends every contract test below runs against: each with its own worker and app. */
const BACKENDS: [name: string, url: string, workerOptions: Parameters<typeof startCeleryWorker>[0]][] = [
  ["redis://", REDIS, {}],
  ["rpc://", "rpc://", { resultBackend: "rpc://" }],
];

describe.each(BACKENDS)("the %s backend's contract", (backend, url, workerOptions) => {
  const queue = privateQueue();
  let worker: CeleryWorker | undefined;
  let app: Celery;

  beforeAll(async () => {
    worker = await startWorker(queue, { ...workerOptions, concurrency: 4 });
    app = newApp(queue, { backend: url });
  });

  afterAll(async () => {
    await app?.close();
    await worker?.stop();
    await dropQueue(queue);
  });

  printLogsOnFailure(() => worker);

  it("returns the task's return value from get()", async () => {
    // Arrange
    const { add } = tasksOf(app);

    // Act
    const value = await (await add.delay(40, 2)).get({ timeout: 15_000 });

    // Assert
    expect(value).toBe(42);
  });

  it("rejects get() with a TaskFailedError carrying ValueError, its message and the traceback", async () => {
    // Arrange
    const { fail } = tasksOf(app);

    // Act
    const result = await fail.delay(`boom over ${backend}`);
    const error = await rejection(result.get({ timeout: 15_000 }));

    // Assert
    expect(error).toBeInstanceOf(TaskFailedError);
    const failure = error as TaskFailedError;
    expect(failure).toMatchObject({ taskId: result.id, excType: "ValueError", excMessage: `boom over ${backend}`, code: "ERR_TASK_FAILED" });
    expect(failure.traceback).toContain("Traceback (most recent call last)");
    expect(failure.traceback).toContain(`ValueError: boom over ${backend}`);
  });

  it("returns the failure instead of rejecting when get() is called with propagate: false", async () => {
    // Arrange
    const { fail } = tasksOf(app);
    const result = await fail.delay("not propagated");

    // Act
    const value: unknown = await result.get({ timeout: 15_000, propagate: false });

    // Assert
    expect(value).toBeInstanceOf(TaskFailedError);
    expect(value).toMatchObject({ excType: "ValueError", excMessage: "not propagated" });
    expect(await result.state()).toBe("FAILURE");
    expect(await result.failed()).toBe(true);
  });

  it("rejects with TimeoutError when the task is not done within the timeout", async () => {
    // Arrange
    const { sleep } = tasksOf(app);
    const result = await sleep.delay(3);
    const started = Date.now();

    // Act
    const error = await rejection(result.get({ timeout: 300 }));

    // Assert
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).message).toContain(result.id);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("reports PENDING before the worker is done, SUCCESS after, and PENDING again once forgotten", async () => {
    // Arrange
    const { sleep } = tasksOf(app);
    const result = await sleep.delay(1);

    // Act
    const before = { state: await result.state(), ready: await result.ready() };
    await result.get({ timeout: 15_000 });
    const after = { state: await result.state(), ready: await result.ready(), successful: await result.successful() };
    await result.forget();
    const forgotten = await result.state();

    // Assert
    expect(before).toEqual({ state: "PENDING", ready: false });
    expect(after).toEqual({ state: "SUCCESS", ready: true, successful: true });
    expect(forgotten).toBe("PENDING");
  });

  it("returns a result that was ready before anyone waited for it", async () => {
    // Arrange: state() reads what the backend holds (the stored key; the replies consumed so far),
    // so SUCCESS there is the result having arrived, with no get() waiting for it yet.
    const { add } = tasksOf(app);
    const result = await add.delay(3, 4);
    for (let i = 0; i < 100 && (await result.state()) !== "SUCCESS"; i++) await new Promise((r) => setTimeout(r, 50));

    // Act
    const value = await result.get({ timeout: 1_000 });

    // Assert
    expect(value).toBe(7);
    expect(await result.state()).toBe("SUCCESS");
  });

  it("fails get() at once for a task sent with ignoreResult: true", async () => {
    // Arrange
    const { add } = tasksOf(app);
    const result = await add.applyAsync({ args: [1, 1], ignoreResult: true });
    const started = Date.now();

    // Act
    const error = await rejection(result.get({ timeout: 10_000 }));

    // Assert
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toContain("ignoreResult");
    expect(Date.now() - started).toBeLessThan(100);
  });
});

describe("the redis:// backend", () => {
  const queue = privateQueue();
  let worker: CeleryWorker | undefined;
  let app: Celery;
  let redis: Awaited<ReturnType<typeof inspector>>;

  beforeAll(async () => {
    worker = await startWorker(queue, { concurrency: 4 });
    app = newApp(queue);
    redis = await inspector();
  });

  afterAll(async () => {
    redis?.destroy();
    await app?.close();
    await worker?.stop();
    await dropQueue(queue);
  });

  printLogsOnFailure(() => worker);

  it("deletes the stored result on forget()", async () => {
    // Arrange
    const { add } = tasksOf(app);
    const result = await add.delay(5, 6);
    await result.get({ timeout: 15_000 });
    const storedBefore = await redis.exists(`celery-task-meta-${result.id}`);

    // Act
    await result.forget();

    // Assert
    expect(storedBefore).toBe(1);
    expect(await redis.exists(`celery-task-meta-${result.id}`)).toBe(0);
    expect(await result.state()).toBe("PENDING");
  });

  it("reads a result through asyncResult(id) from another app, as a producer in another Lambda would", async () => {
    // Arrange
    const { add } = tasksOf(app);
    const sent = await add.delay(20, 22);
    const other = newApp(queue);

    // Act
    const value = await other.asyncResult<number>(sent.id).get({ timeout: 15_000 });
    await other.close();

    // Assert
    expect(value).toBe(42);
  });

  it("gathers 200 results over one subscriber and one command connection", async () => {
    // Arrange
    const { add, sleep } = tasksOf(app);
    const backend = app.backend as RedisBackend;
    const opened = backend.connectionsOpened;
    // Four busy pool processes keep the 200 tasks queued while the subscription is checked.
    const blockers = await Promise.all([0, 1, 2, 3].map(() => sleep.delay(2)));
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => add.delay(i, i)));
    const started = Date.now();

    // Act
    const gathering = app.gather(results, { timeout: 30_000 });
    await new Promise((r) => setTimeout(r, 300));
    const during = await clientsNamed(`celery-edge:${app.oid}:`);
    const values = await gathering;
    const elapsed = Date.now() - started;
    await app.gather(blockers, { timeout: 10_000 });

    // Assert
    expect(values).toEqual(Array.from({ length: 200 }, (_, i) => 2 * i));
    expect(during.map((c) => c.name).sort()).toEqual([`celery-edge:${app.oid}:command`, `celery-edge:${app.oid}:subscriber`]);
    expect(during.find((c) => c.name.endsWith(":subscriber"))?.sub).toBe(200);
    expect(backend.connectionsOpened - opened).toBeLessThanOrEqual(2);
    console.info(
      `redis:// gather of 200 results (behind 2 s of blocking tasks): ${elapsed} ms, ${during.length} Redis connections, ${backend.connectionsOpened} opened by the backend in total`,
    );
  });

  it("unsubscribes every channel once the wait is over", async () => {
    // Arrange
    const { add } = tasksOf(app);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => add.delay(i, 1)));

    // Act
    await app.gather(results, { timeout: 15_000 });
    await new Promise((r) => setTimeout(r, 100));
    const after = await clientsNamed(`celery-edge:${app.oid}:subscriber`);

    // Assert
    expect(after.map((c) => c.sub)).toEqual([0]);
  });

  it("rejects a wait with ResultBackendError when the subscriber connection is lost, then recovers", async () => {
    // Arrange
    const { sleep, add } = tasksOf(app);
    const result = await sleep.delay(2);
    const waiting = rejection(result.get({ timeout: 20_000 }));
    await new Promise((r) => setTimeout(r, 300));
    const [subscriber] = await clientsNamed(`celery-edge:${app.oid}:subscriber`);
    const started = Date.now();

    // Act
    await redis.sendCommand(["CLIENT", "KILL", "ID", subscriber!.id]);
    const error = await waiting;
    const lostAfter = Date.now() - started;
    const next = await (await add.delay(1, 2)).get({ timeout: 15_000 });

    // Assert
    expect(error).toBeInstanceOf(ResultBackendError);
    expect((error as Error).message).toMatch(/lost the connection to redis:\/\/127\.0\.0\.1:6379\/0/);
    expect(lostAfter).toBeLessThan(1_000);
    expect(next).toBe(3);
  });

  it("never puts the password of the backend URL into an error", async () => {
    // Arrange
    const secretApp = newApp(queue, { backend: "redis://:s3cr3t-pw@127.0.0.1:1/0" });

    // Act
    const error = await rejection(secretApp.asyncResult("x").state());
    await secretApp.close();

    // Assert
    expect(error).toBeInstanceOf(ResultBackendError);
    expect((error as Error).message).toContain("redis://127.0.0.1:1/0");
    expect(JSON.stringify({ message: (error as Error).message, stack: (error as Error).stack })).not.toContain("s3cr3t-pw");
  });
});

describe("the rpc:// backend", () => {
  const queue = privateQueue();
  let worker: CeleryWorker | undefined;
  let app: Celery;

  beforeAll(async () => {
    worker = await startWorker(queue, { resultBackend: "rpc://", concurrency: 4 });
    app = newApp(queue, { backend: "rpc://" });
  });

  afterAll(async () => {
    await app?.close();
    await worker?.stop();
    await dropQueue(queue);
  });

  printLogsOnFailure(() => worker);

  it("declares the reply queue as Celery does: named after the oid, not durable, auto-delete, x-expires one day", async () => {
    // Arrange
    const { add } = tasksOf(app);
    await add.delay(1, 1);

    // Act
    const queues = JSON.parse(
      (await rabbitmqctl(["list_queues", "name", "durable", "auto_delete", "arguments", "--formatter", "json", "-q"])).stdout,
    ) as { name: string; durable: boolean; auto_delete: boolean; arguments: [string, string, unknown][] }[];

    // Assert
    const reply = queues.find((q) => q.name === app.oid);
    expect(reply).toMatchObject({ durable: false, auto_delete: true });
    expect(reply?.arguments).toEqual([["x-expires", expect.any(String), 86_400_000]]);
  });

  it("gathers 200 results over one AMQP connection and one consumer", async () => {
    // Arrange
    const { add } = tasksOf(app);
    const backend = app.backend as RpcBackend;
    const results: AsyncResult<number>[] = await Promise.all(Array.from({ length: 200 }, (_, i) => add.delay(i, 1)));
    const started = Date.now();

    // Act
    const values = await app.gather(results, { timeout: 30_000 });
    const elapsed = Date.now() - started;
    const consumers = (await rabbitmqctl(["list_consumers", "queue_name", "-q"])).stdout.split("\n").filter((l) => l.trim() === app.oid);

    // Assert
    expect(values).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(backend.connectionsOpened).toBe(1);
    expect(consumers).toHaveLength(1);
    console.info(`rpc:// gather of 200 results: ${elapsed} ms, ${backend.connectionsOpened} AMQP connection, ${consumers.length} consumer`);
  });

  it("rejects a wait with ResultBackendError when the broker closes the results connection", async () => {
    // Arrange
    // The task outlives the close by far: listing and closing connections with rabbitmqctl took
    // over 2 s under a loaded CI run, and a 2 s task then finished first (seen once in CI).
    const { sleep } = tasksOf(app);
    const result = await sleep.delay(8);
    const waiting = rejection(result.get({ timeout: 20_000 }));
    await new Promise((r) => setTimeout(r, 300));
    const listing = await rabbitmqctl(["list_connections", "pid", "client_properties", "-q", "--no-table-headers"]);
    const ours = listing.stdout.split("\n").filter((line) => line.includes(`celery-edge rpc results ${app.oid}`));

    // Act
    await rabbitmqctl(["close_connection", ours[0]!.split("\t")[0]!, "closed by the test"]);
    const error = await waiting;

    // Assert
    expect(ours).toHaveLength(1);
    expect(error).toBeInstanceOf(ResultBackendError);
    expect((error as Error).message).toContain("lost the broker connection");
    expect((error as Error).message).not.toContain("guest:guest");
  });
});
