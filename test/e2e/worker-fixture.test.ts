import { execFile } from "node:child_process";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ALL_QUEUES, PYTHON, startCeleryWorker } from "../helpers/celery-worker.js";
import type { CeleryWorker } from "../helpers/celery-worker.js";
import { clearExecutions, waitForExecution, waitForStoredResult } from "../helpers/executions.js";
import { publishRaw, purgeQueues, queueDepth, rabbitmqctl, rawCeleryTaskMessage } from "../helpers/rabbit.js";

function printLogsOnFailure(getWorker: () => CeleryWorker | undefined): void {
  afterEach((context) => {
    const worker = getWorker();
    if (worker && context.task.result?.state === "fail") {
      console.error(`--- logs of ${worker.hostname} ---\n${worker.logs()}`);
    }
  });
}

/**
 * `datetime.isoformat()` of an aware UTC datetime. Celery 5.2 reads a 3-digit fraction
 * (`toISOString()`'s ".812") as 812 microseconds, so the fraction must have 6 digits.
 */
function pythonIsoformat(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000+00:00");
}

/** Pickles `[args, kwargs, embed]` with the worker's own Python, for types JSON cannot carry. */
function pickledBody(pythonArgs: string): Promise<Buffer> {
  const script = [
    "import base64, datetime, pickle, sys",
    `body = (${pythonArgs}, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None})`,
    "sys.stdout.write(base64.b64encode(pickle.dumps(body, protocol=2)).decode())",
  ].join("\n");
  return new Promise((resolve, reject) => {
    execFile(PYTHON, ["-c", script], (error, stdout) =>
      error ? reject(error) : resolve(Buffer.from(stdout, "base64")),
    );
  });
}

describe("the Celery worker fixture consuming every queue", () => {
  let worker: CeleryWorker | undefined;

  beforeAll(async () => {
    await purgeQueues(ALL_QUEUES);
    worker = await startCeleryWorker();
    console.info(`celery worker ${worker.hostname} ready in ${worker.startupMs} ms`);
  });

  afterAll(async () => {
    await worker?.stop();
  });

  beforeEach(async () => {
    await clearExecutions();
  });

  printLogsOnFailure(() => worker);

  it("records a hand-built protocol 2 JSON message sent to the default queue as the worker received it", async () => {
    // Prepare
    const message = rawCeleryTaskMessage({
      task: "tasks.echo",
      args: [1, "two", { three: [3] }],
      kwargs: { flag: true, nothing: null },
      routingKey: "ce.default",
    });

    // Act
    await publishRaw(message);
    const record = await waitForExecution(message.id);

    // Assess
    expect(record).toMatchObject({
      id: message.id,
      name: "tasks.echo",
      args: [1, "two", { three: [3] }],
      kwargs: { flag: true, nothing: null },
      exchange: "",
      routing_key: "ce.default",
      priority: null,
      eta: null,
      expires: null,
      retries: 0,
      content_type: "application/json",
      content_encoding: "utf-8",
      protocol: 2,
      correlation_id: message.id,
      root_id: message.id,
      hostname: worker?.hostname,
    });
    expect(record.headers).toMatchObject({ lang: "py", task: "tasks.echo", id: message.id });
  });

  it("stores the return value in the Redis result backend", async () => {
    // Prepare
    const message = rawCeleryTaskMessage({ task: "tasks.add", args: [2, 3] });

    // Act
    await publishRaw(message);
    const stored = await waitForStoredResult(message.id);

    // Assess
    expect(stored).toMatchObject({ task_id: message.id, status: "SUCCESS", result: 5 });
  });

  it("records a failing task before its body raises", async () => {
    // Prepare
    const message = rawCeleryTaskMessage({ task: "tasks.fail", args: ["boom"] });

    // Act
    await publishRaw(message);
    const stored = await waitForStoredResult(message.id);
    const record = await waitForExecution(message.id, 1_000);

    // Assess
    expect(stored.status).toBe("FAILURE");
    expect(stored.result).toMatchObject({ exc_type: "ValueError", exc_message: ["boom"] });
    expect(record).toMatchObject({ name: "tasks.fail", args: ["boom"] });
  });

  it.each([
    ["video.transcode.hd", "ce.video"],
    ["image.thumbnail", "ce.image"],
  ])("routes topic key %s through celery_edge.topic to %s", async (routingKey) => {
    // Prepare
    const message = rawCeleryTaskMessage({
      task: "tasks.record",
      args: [routingKey],
      exchange: "celery_edge.topic",
      routingKey,
    });

    // Act
    await publishRaw(message); // mandatory: rejects if no queue is bound for the key
    const record = await waitForExecution(message.id);

    // Assess
    expect(record).toMatchObject({ exchange: "celery_edge.topic", routing_key: routingKey, args: [routingKey] });
  });

  it("declares the topology: ce.priority has x-max-priority 10 and only the default-exchange binding", async () => {
    // Act
    const queues = JSON.parse(
      (await rabbitmqctl(["list_queues", "name", "arguments", "--formatter", "json", "-q"])).stdout,
    ) as { name: string; arguments: [string, string, unknown][] }[];
    const bindings = JSON.parse(
      (await rabbitmqctl(["list_bindings", "source_name", "destination_name", "routing_key", "--formatter", "json", "-q"]))
        .stdout,
    ) as { source_name: string; destination_name: string; routing_key: string }[];

    // Assess
    expect(queues.find((q) => q.name === "ce.priority")?.arguments).toEqual([["x-max-priority", "signedint", 10]]);
    expect(bindings.filter((b) => b.destination_name === "ce.priority")).toEqual([
      { source_name: "", destination_name: "ce.priority", routing_key: "ce.priority" },
    ]);
    expect(bindings).toEqual(
      expect.arrayContaining([
        { source_name: "celery_edge.topic", destination_name: "ce.video", routing_key: "video.#" },
        { source_name: "celery_edge.topic", destination_name: "ce.image", routing_key: "image.#" },
        { source_name: "ce.default", destination_name: "ce.default", routing_key: "ce.default" },
      ]),
    );
  });

  it("records the AMQP priority of a message sent to ce.priority through the default exchange", async () => {
    // Prepare
    const message = rawCeleryTaskMessage({ task: "tasks.record", routingKey: "ce.priority", priority: 7 });

    // Act
    await publishRaw(message);
    const record = await waitForExecution(message.id);

    // Assess
    expect(record).toMatchObject({ exchange: "", routing_key: "ce.priority", priority: 7 });
  });

  it("holds a message with an eta until it is due and records eta and expires", async () => {
    // Prepare
    const eta = pythonIsoformat(Date.now() + 1_500);
    const expires = pythonIsoformat(Date.now() + 60_000);
    const message = rawCeleryTaskMessage({ task: "tasks.record", eta, expires });

    // Act
    await publishRaw(message);
    const record = await waitForExecution(message.id);

    // Assess
    expect(record.eta).toBe(eta);
    expect(record.expires).toBe(expires);
    expect(record.started_at * 1_000).toBeGreaterThanOrEqual(Date.parse(eta) - 50);
  });

  it("records Python-only argument types (tuple, bytes, datetime) in JSON-safe form", async () => {
    // Prepare
    const message = rawCeleryTaskMessage({ task: "tasks.record" });
    const content = await pickledBody("((1, 2), b'\\x00\\xff', datetime.datetime(2024, 1, 2, 3, 4, 5))");

    // Act
    await publishRaw({
      ...message,
      content,
      options: { ...message.options, contentType: "application/x-python-serialize", contentEncoding: "binary" },
    });
    const record = await waitForExecution(message.id);

    // Assess
    expect(record.content_type).toBe("application/x-python-serialize");
    expect(record.args).toEqual([[1, 2], { __bytes__: "AP8=" }, { __datetime__: "2024-01-02T03:04:05" }]);
  });
});

describe("a Celery worker fixture limited to some queues", () => {
  let worker: CeleryWorker | undefined;

  beforeAll(async () => {
    await purgeQueues(ALL_QUEUES);
    worker = await startCeleryWorker({ queues: ["ce.image"], pool: "solo" });
  });

  afterAll(async () => {
    await worker?.stop();
    await purgeQueues(ALL_QUEUES);
  });

  printLogsOnFailure(() => worker);

  it("consumes only the selected queues", async () => {
    // Prepare
    const ignored = rawCeleryTaskMessage({ task: "tasks.record", routingKey: "ce.default" });
    const consumed = rawCeleryTaskMessage({ task: "tasks.record", exchange: "celery_edge.topic", routingKey: "image.x" });

    // Act
    await publishRaw(ignored);
    await publishRaw(consumed);
    const record = await waitForExecution(consumed.id);

    // Assess
    expect(record.hostname).toBe(worker?.hostname);
    expect(await queueDepth("ce.default")).toBe(1);
  });

  it("stops with a warm shutdown that ends the worker process", async () => {
    // Act
    const exit = await worker?.stop();

    // Assess
    expect(exit).toEqual({ code: 0, signal: null });
    expect(worker?.isRunning()).toBe(false);
    expect(worker?.logs()).toContain(`${worker?.hostname} ready.`);
  });
});
