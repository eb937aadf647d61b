/**
 * @module
 * `npm run demo`: the whole job end to end on this machine. Starts a real Celery worker, publishes
 * tasks with several options over direct AMQP and through the SQS relay (fauxqs + the real relay
 * handler, driven as Lambda would), and prints what the worker returned through `get()`. Then the
 * third path: a far-ETA task parked by the real scheduler function in a LOCAL STAND-IN for
 * EventBridge Scheduler (test/fixtures/scheduler-standin.ts; AWS has no Scheduler emulator), released
 * by it shortly before its ETA, relayed to RabbitMQ and run by the worker, with its lateness printed.
 */
import { SQSClient } from "@aws-sdk/client-sqs";
import { Celery } from "../sdk/node.js";
import { sqsRelay } from "../sdk/sqs.js";
import { LOCAL_CREDENTIALS, createQueue, sqsClientConfig, startSqsEmulator } from "./local/fauxqs.js";
import { SENDER_IDS, startLocalFunctions, type LocalFunctions } from "./local/functions.js";
import { startCeleryWorker, type CeleryWorker } from "../test/helpers/celery-worker.js";
import { ExecutionLog } from "../test/helpers/executions.js";

const BROKER = "amqp://guest:guest@127.0.0.1:5672//";
const BACKEND = "redis://127.0.0.1:6379/0";
/** The demo's own default queue, so it never shares one with a test run on the same broker. */
const QUEUE = "ce.demo";
/**
 * Shortened from the deployed defaults (900 s threshold, 120 s lead) so the demo takes about a
 * minute: a task due more than 30 s ahead is parked, and its schedule fires 15 s before the ETA.
 * The stand-in fires at the start of at()'s minute, so 15 s is enough here; EventBridge Scheduler
 * may fire anywhere within that minute, so a deployment keeps LEAD_SECONDS at 60 or more.
 */
const PARK_THRESHOLD_S = 30;
const LEAD_S = 15;
/** The parked task's schedule fires on the first minute boundary at least this far ahead. */
const MIN_PARKED_S = 20;

const show = (label: string, value: unknown): void => console.log(`  ${label.padEnd(70)} → ${JSON.stringify(value)}`);
/** Wall-clock time of day, UTC, to the millisecond. */
const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 23);

async function main(): Promise<void> {
  console.log("Starting a real Celery worker (Debian python3-celery)…");
  const worker = await startCeleryWorker({ resultBackend: BACKEND, queues: [QUEUE, "ce.video"], env: { CELERY_EDGE_DEFAULT_QUEUE: QUEUE } });
  console.log(`  worker ${worker.hostname} ready in ${worker.startupMs} ms\n`);

  // The functions' INFO logs and their metrics (EMF lines, for CloudWatch) would bury the story.
  process.env.POWERTOOLS_LOG_LEVEL ??= "WARN";
  process.env.POWERTOOLS_METRICS_DISABLED ??= "true";
  // The AWS SDK's notice that its 2027 releases will need Node 22 says nothing about the demo.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const sqs = await startSqsEmulator({ senderIds: SENDER_IDS });
  const client = new SQSClient(sqsClientConfig(sqs.endpoint));
  const intake = await createQueue(client, "celery-edge-intake", { visibilityTimeout: 5, dlq: { maxReceiveCount: 3 } });
  const park = await createQueue(client, "celery-edge-scheduler", { visibilityTimeout: 5 });
  const scheduleDlq = await createQueue(client, "celery-edge-schedule-dlq");
  const functions = await startLocalFunctions({
    sqs,
    brokerUrl: BROKER,
    // What the demo's tasks need, and nothing else: the relay refuses any other destination.
    policy: {
      queues: [{ name: QUEUE, declare: true }],
      exchanges: [{ exchange: "celery_edge.topic", routingKeys: ["video.*", "image.#"] }],
      contentTypes: ["application/json", "application/x-yaml", "application/x-msgpack"],
      // The demo shows every serializer on both paths; a deployment leaves pickle off.
      dangerouslyAllowPickle: true,
    },
    intake,
    park,
    scheduleDlq,
    parkThresholdSeconds: PARK_THRESHOLD_S,
    leadSeconds: LEAD_S,
  });

  const direct = new Celery({ broker: BROKER, backend: BACKEND, defaultQueue: QUEUE });
  const viaSqs = new Celery({
    // SQS delays tasks up to the park threshold; anything due later goes undelayed for the relay to park.
    broker: sqsRelay({ queueUrl: intake.url, endpoint: sqs.endpoint, credentials: LOCAL_CREDENTIALS, maxDelaySeconds: PARK_THRESHOLD_S }),
    backend: BACKEND,
    defaultQueue: QUEUE,
  });
  try {
    for (const [title, app] of [["Direct AMQP (publisher confirms)", direct], ["Through SQS and the relay Lambda", viaSqs]] as const) {
      console.log(title);
      const add = app.task<[number, number], number>("tasks.add");
      const started = Date.now();
      const calls = [
        ["add.delay(2, 2)", add.delay(2, 2)],
        ["add.applyAsync({ args: [10, 10], countdown: 2 })", add.applyAsync({ args: [10, 10], countdown: 2 })],
        ["echo, msgpack, topic exchange, routingKey video.compress, priority 7", app.sendTask("tasks.echo", { args: [1, "two"], kwargs: { a: 1 }, serializer: "msgpack", exchange: "celery_edge.topic", routingKey: "video.compress", priority: 7 })],
        ["echo, pickle, protocol 1", app.sendTask("tasks.echo", { args: ["héllo ☃"], serializer: "pickle", protocol: 1 })],
      ] as const;
      for (const [label, sent] of calls) show(label, await (await sent).get({ timeout: 30_000 }));
      const failing = await app.sendTask("tasks.fail", { args: ["boom"] });
      const failure = (await failing.get({ timeout: 30_000, propagate: false })) as { excType?: string; excMessage?: string };
      show("tasks.fail('boom') (get with propagate: false)", `${failure.excType}: ${failure.excMessage}`);
      console.log(`  (${Date.now() - started} ms)\n`);
    }
    await parkAndRelease(viaSqs, functions, worker);
  } finally {
    await direct.close();
    await viaSqs.close();
    await functions.stop();
    client.destroy();
    await sqs.stop();
    await worker.stop();
  }
}

/** One step of the parked task's journey: when it happened (ms), if it has. */
interface Step {
  readonly seen: () => number | undefined;
  /** Asked once `seen` has answered. */
  readonly what: () => string;
}

/**
 * The far-ETA path: sent through SQS with an ETA beyond the park threshold, parked by the relay
 * with the scheduler function, held as a schedule in the Scheduler stand-in, released to the intake
 * queue when the schedule fires, published by the relay, run by the worker at its ETA.
 */
async function parkAndRelease(app: Celery, functions: LocalFunctions, worker: CeleryWorker): Promise<void> {
  console.log("Far ETA through the relay: parked in EventBridge Scheduler (a local stand-in), released, run on time");
  console.log(`  Park threshold ${PARK_THRESHOLD_S} s, lead ${LEAD_S} s (shortened for the demo; deployed defaults 900 s and 120 s):`);
  console.log(`  a task due more than ${PARK_THRESHOLD_S} s ahead is parked as a one-time schedule that fires ${LEAD_S} s before its ETA.`);
  console.log("  Scheduler is a LOCAL STAND-IN for Amazon EventBridge Scheduler (test/fixtures/scheduler-standin.ts):");
  console.log("  the real scheduler function calls it through the real @aws-sdk/client-scheduler; it fires at the start of at()'s minute.");

  // The ETA puts the schedule on a minute boundary at least MIN_PARKED_S ahead, so the task stays
  // parked for a while instead of firing as soon as it is made; the half second past it shows that
  // the ETA is kept to the millisecond although at() counts whole seconds.
  const now = Date.now();
  const fireAt = Math.ceil((now + MIN_PARKED_S * 1000) / 60_000) * 60_000;
  const eta = fireAt + LEAD_S * 1000 + 500;
  const waitS = Math.round((eta - now) / 1000);
  console.log(`  Sending tasks.echo("parked") due at ${clock(eta)} UTC, ${waitS} s from now; the demo waits about ${waitS} s for it.\n`);
  const result = await app.sendTask("tasks.echo", { args: ["parked"], eta: new Date(eta) });
  const sentAt = Date.now();
  const step = (at: number, text: string): void => console.log(`  ${clock(at)}  +${((at - sentAt) / 1000).toFixed(1).padStart(5)} s  ${text}`);
  const id = result.id;
  const name = `celery-edge-${id}`;

  const handled = (fn: "relay" | "scheduler", nth: number): number | undefined =>
    functions.handled.filter((h) => h.fn === fn && !h.failed && taskIdOf(h.body) === id)[nth]?.startedAt;
  const schedule = (): { at: number } | undefined => [...functions.standIn.schedules().values()].find((s) => s.name === name);
  const steps: Step[] = [
    // Function steps are timed when the function was invoked with the record.
    { seen: () => handled("relay", 0), what: () => `relay: due beyond ${PARK_THRESHOLD_S} s, so it goes to the scheduler function's queue` },
    {
      // The schedule is there once the scheduler function has handled the park request.
      seen: () => (schedule() ? handled("scheduler", 0) : undefined),
      what: () => `scheduler function: parks it, CreateSchedule ${name} at(${new Date(schedule()!.at).toISOString().slice(0, 19)}) in the stand-in`,
    },
    { seen: () => functions.standIn.fired.find((f) => f.name === name)?.firedAt, what: () => "stand-in: schedule fired, its Input sent back to the scheduler function's queue" },
    { seen: () => handled("scheduler", 1), what: () => `scheduler function: releases it to the intake queue, ${((eta - handled("scheduler", 1)!) / 1000).toFixed(1)} s before its ETA (an SQS delay holds it)` },
    { seen: () => handled("relay", 1), what: () => `relay: publishes it to RabbitMQ (queue ${QUEUE})` },
  ];

  let next = 0;
  let lastProgress = Date.now();
  const deadline = eta + 60_000;
  while (next < steps.length) {
    const at = steps[next]!.seen();
    if (at !== undefined) {
      step(at, steps[next]!.what());
      next += 1;
      continue;
    }
    if (Date.now() > deadline) throw new Error(`the parked task did not get past step ${next + 1} of ${steps.length} by ${clock(deadline)} (stand-in failures: ${functions.standIn.failed.length})`);
    if (Date.now() - lastProgress >= 10_000) {
      lastProgress = Date.now();
      const parked = schedule();
      const left = (ms: number): string => `${Math.max(0, Math.round((ms - Date.now()) / 1000))} s`;
      const where = parked ? `parked in the stand-in, fires in ${left(fireAt)}` : next < 4 ? "firing" : "released, in the intake queue's SQS delay";
      const seenByWorker = receivedAt(worker.logs(), id) === undefined ? "the worker has not received it" : "the worker holds it";
      console.log(`  …${" ".repeat(23)}${where}, due in ${left(eta)}; ${seenByWorker}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  const record = await new ExecutionLog().waitForTask(id, 30_000);
  const ranAt = record.started_at * 1000;
  // From the worker's own log line; only shown, so a log format that does not match costs nothing.
  const received = receivedAt(worker.logs(), id);
  if (received !== undefined) step(received, "worker: received it, holds it as an ordinary ETA task");
  step(ranAt, "worker: ran it");
  show("tasks.echo('parked') (get)", await result.get({ timeout: 10_000 }));
  console.log(`  due ${clock(eta)} UTC, ran ${clock(ranAt)} UTC: lateness ${Math.round(ranAt - eta)} ms\n`);
}

/** The task id an envelope carries, if it is one. */
function taskIdOf(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { task?: { id?: unknown } }).task?.id as string | undefined;
  } catch {
    return undefined;
  }
}

/** When the worker logged receiving task `id` (its log's local time, as Python's logging writes it). */
function receivedAt(logs: string, id: string): number | undefined {
  const line = new RegExp(`\\[(\\d{4}-\\d\\d-\\d\\d) (\\d\\d:\\d\\d:\\d\\d),(\\d{3}): INFO/MainProcess\\] Task [\\w.]+\\[${id}\\] received`).exec(logs);
  return line ? new Date(`${line[1]}T${line[2]}.${line[3]}`).getTime() : undefined;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
