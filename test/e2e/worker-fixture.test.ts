/**
 * What every end-to-end test takes on trust from the Celery worker fixture: its execution record
 * is the message as the worker received it, a worker consumes only the queues it was given (so test
 * files on other queues keep their tasks), and stop() really ends it (so no stray worker takes a
 * later test's tasks). Routing, priorities, ETAs and results are proven through the SDK elsewhere.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALL_QUEUES, startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { publishRaw, purgeQueues, queueDepth, rawCeleryTaskMessage } from "../helpers/rabbit.js";

const log = new ExecutionLog();

describe("a Celery worker fixture serving ce.image", () => {
  let worker: CeleryWorker | undefined;

  beforeAll(async () => {
    await purgeQueues(ALL_QUEUES);
    await log.clear();
    worker = await startCeleryWorker({ queues: ["ce.image"], pool: "solo" });
  });

  afterAll(async () => {
    await worker?.stop();
    await purgeQueues(ALL_QUEUES);
  });

  it("records a hand-built protocol 2 JSON message as the worker received it", async () => {
    // Prepare
    const message = rawCeleryTaskMessage({
      task: "tasks.echo",
      args: [1, "two", { three: [3] }],
      kwargs: { flag: true, nothing: null },
      exchange: "celery_edge.topic",
      routingKey: "image.fixture",
    });

    // Act
    await publishRaw(message);
    const record = await log.waitForTask(message.id);

    // Assess
    expect(record).toMatchObject({
      id: message.id,
      name: "tasks.echo",
      args: [1, "two", { three: [3] }],
      kwargs: { flag: true, nothing: null },
      exchange: "celery_edge.topic",
      routing_key: "image.fixture",
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

  it("consumes only the selected queues", async () => {
    // Prepare
    const ignored = rawCeleryTaskMessage({ task: "tasks.record", routingKey: "ce.default" });
    const consumed = rawCeleryTaskMessage({ task: "tasks.record", exchange: "celery_edge.topic", routingKey: "image.x" });

    // Act: a consumer of ce.default, idle, would have been handed the first message at once.
    await publishRaw(ignored);
    await publishRaw(consumed);
    const record = await log.waitForTask(consumed.id);

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
