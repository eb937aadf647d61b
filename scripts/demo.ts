/**
 * @module
 * `npm run demo`: the whole job end to end on this machine. Starts a real Celery worker, publishes
 * tasks with several options over direct AMQP and through the SQS relay (fauxqs + the real relay
 * handler, driven as Lambda would), and prints what the worker returned through `get()`.
 */
import { SQSClient } from "@aws-sdk/client-sqs";
import { Celery } from "../sdk/node.js";
import { sqsRelay } from "../sdk/sqs.js";
import { LOCAL_CREDENTIALS, LOCAL_REGION, createQueue, sqsClientConfig, startSqsEmulator } from "./local/fauxqs.js";
import { startSqsEventSource } from "./local/sqs-event-source.js";
import { startCeleryWorker } from "../test/helpers/celery-worker.js";

const BROKER = "amqp://guest:guest@127.0.0.1:5672//";
const BACKEND = "redis://127.0.0.1:6379/0";
const show = (label: string, value: unknown): void => console.log(`  ${label.padEnd(70)} → ${JSON.stringify(value)}`);

async function main(): Promise<void> {
  console.log("Starting a real Celery worker (Debian python3-celery)…");
  const worker = await startCeleryWorker({ resultBackend: BACKEND });
  console.log(`  worker ${worker.hostname} ready in ${worker.startupMs} ms\n`);

  const sqs = await startSqsEmulator();
  const client = new SQSClient(sqsClientConfig(sqs.endpoint));
  const intake = await createQueue(client, "celery-edge-intake", { visibilityTimeout: 5, dlq: { maxReceiveCount: 3 } });
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    AWS_REGION: LOCAL_REGION,
    AWS_ENDPOINT_URL_SQS: sqs.endpoint,
    BROKER_URL: BROKER,
    // What the demo's tasks need, and nothing else: the relay refuses any other destination.
    RELAY_POLICY: JSON.stringify({
      queues: [{ name: "ce.default", declare: true }],
      exchanges: [{ exchange: "celery_edge.topic", routingKeys: ["video.*", "image.#"] }],
      contentTypes: ["application/json", "application/x-yaml", "application/x-msgpack"],
      // The demo shows every serializer on both paths; a deployment leaves pickle off.
      dangerouslyAllowPickle: true,
    }),
    INTAKE_QUEUE_URL: intake.url,
    POWERTOOLS_LOG_LEVEL: "WARN",
  });
  const { handler } = await import("../functions/relay/handler.js");
  const relay = startSqsEventSource({ client, queueUrl: intake.url, queueArn: intake.arn, handler });

  const direct = new Celery({ broker: BROKER, backend: BACKEND, defaultQueue: "ce.default" });
  const viaSqs = new Celery({
    broker: sqsRelay({ queueUrl: intake.url, endpoint: sqs.endpoint, credentials: LOCAL_CREDENTIALS }),
    backend: BACKEND,
    defaultQueue: "ce.default",
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
  } finally {
    await direct.close();
    await viaSqs.close();
    await relay.stop();
    client.destroy();
    await sqs.stop();
    await worker.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
