/**
 * The SQS path as it runs in AWS, on real local parts: fauxqs (real SQS API), the real relay
 * handler invoked by a Lambda-style event source, the real RabbitMQ.
 */
import { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent, Context } from "aws-lambda";
import { createQueue, LOCAL_CREDENTIALS, LOCAL_REGION, sqsClientConfig, startSqsEmulator, type SqsEmulator, type CreatedQueue } from "../../scripts/local/fauxqs.js";
import { pathToFileURL } from "node:url";
import type { RelayPolicy } from "../../functions/shared/policy.js";
import { bundleRelay } from "./relay-bundle.js";
import { startSqsEventSource, type SqsEventSource } from "../../scripts/local/sqs-event-source.js";

export interface RelayHarness {
  sqs: SqsEmulator;
  client: SQSClient;
  intake: CreatedQueue;
  park: CreatedQueue;
  runner: SqsEventSource;
  /** The relay handler the runner invokes, for tests that invoke it with an event of their own. */
  handler: (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;
  /** JSON lines the relay logged (Powertools writes INFO to stdout, ERROR to stderr; EMF metrics to stdout). */
  logs: string[];
  stop(): Promise<void>;
}

/**
 * Who is who on the emulator, as SQS reports `SenderId`: producers sign with LOCAL_CREDENTIALS, the
 * functions with their own key (a role session, as in Lambda), and the schedules' role with another.
 */
export const FUNCTIONS_KEY = "AKIDFUNCTIONS";
export const FUNCTIONS_ROLE = "AROAFUNCTIONS";
export const SCHEDULES_KEY = "AKIDSCHEDULES";
export const SCHEDULES_ROLE = "AROASCHEDULES";
export const PRODUCER_SENDER = "AIDAPRODUCER";
export const SENDER_IDS: Readonly<Record<string, string>> = {
  [LOCAL_CREDENTIALS.accessKeyId]: PRODUCER_SENDER,
  [FUNCTIONS_KEY]: `${FUNCTIONS_ROLE}:celery-edge-fn`,
  [SCHEDULES_KEY]: `${SCHEDULES_ROLE}:scheduler-session`,
};

/** What the e2e suites send: their queues, the topic exchange the worker fixture binds, every serializer. */
export const TEST_POLICY: RelayPolicy = {
  queues: ["ce.default", "ce.video", "ce.image", "ce.edge-examples", "ce.rel.relay", "ce.rel.security", "ce.capture", "celery"].map((name) => ({ name, declare: true })),
  exchanges: [{ exchange: "celery_edge.topic", routingKeys: ["#"] }],
  contentTypes: ["application/json", "application/x-yaml", "application/x-msgpack"],
  dangerouslyAllowPickle: true,
};

export interface RelayHarnessOptions {
  brokerUrl: string;
  /** @default TEST_POLICY */
  policy?: RelayPolicy;
  /** Run the handler as the construct deploys it: one esbuild ESM bundle, AWS SDK external. */
  bundled?: boolean;
  /** Extra access key → SenderId mappings for the emulator. */
  senderIds?: Readonly<Record<string, string>>;
  /** The intake queue's redrive maxReceiveCount, also given to the relay (MAX_RECEIVE_COUNT). @default 3 */
  maxReceiveCount?: number;
  visibilityTimeout?: number;
  parkThresholdSeconds?: number;
  /**
   * Lifecycle events: the bus name (EVENT_BUS_NAME) and the PutEvents endpoint (the EventBridge
   * stand-in, as AWS_ENDPOINT_URL_EVENTBRIDGE). Unset: the relay puts no events. The handler reads
   * its environment once per test file (unless `bundled`), so the first harness of a file decides.
   */
  eventBus?: { name: string; endpoint: string };
}

/** Points the AWS SDK and our SQS transport at the emulator (the relay reads env at import). */
export function useLocalAwsEnv(): void {
  // The functions sign as themselves, so SQS tells their records from producers'.
  process.env.AWS_ACCESS_KEY_ID = FUNCTIONS_KEY;
  process.env.AWS_SECRET_ACCESS_KEY = LOCAL_CREDENTIALS.secretAccessKey;
  process.env.AWS_REGION = LOCAL_REGION;
}

export async function startRelayHarness(options: RelayHarnessOptions): Promise<RelayHarness> {
  useLocalAwsEnv();
  const sqs = await startSqsEmulator({ senderIds: { ...SENDER_IDS, ...options.senderIds } });
  const client = new SQSClient(sqsClientConfig(sqs.endpoint));
  process.env.AWS_ENDPOINT_URL_SQS = sqs.endpoint;
  const suffix = Math.random().toString(36).slice(2, 8);
  const intake = await createQueue(client, `intake-${suffix}`, {
    visibilityTimeout: options.visibilityTimeout ?? 2,
    dlq: { maxReceiveCount: options.maxReceiveCount ?? 3 },
  });
  const park = await createQueue(client, `park-${suffix}`, { visibilityTimeout: 2 });
  process.env.BROKER_URL = options.brokerUrl;
  process.env.RELAY_POLICY = JSON.stringify(options.policy ?? TEST_POLICY);
  process.env.TRUSTED_FORWARDERS = JSON.stringify([FUNCTIONS_ROLE, SCHEDULES_ROLE]);
  process.env.INTAKE_QUEUE_URL = intake.url;
  process.env.RELAY_RETRY_BASE_SECONDS ??= "1";
  process.env.RELAY_RETRY_MAX_SECONDS ??= "4";
  process.env.PARK_QUEUE_URL = park.url;
  process.env.PARK_THRESHOLD_SECONDS = String(options.parkThresholdSeconds ?? 900);
  process.env.POWERTOOLS_SERVICE_NAME = "relay-under-test";
  process.env.POWERTOOLS_METRICS_NAMESPACE = "CeleryEdge"; // as the construct sets it
  process.env.MAX_RECEIVE_COUNT = String(options.maxReceiveCount ?? 3);
  if (options.eventBus) {
    process.env.EVENT_BUS_NAME = options.eventBus.name;
    process.env.AWS_ENDPOINT_URL_EVENTBRIDGE = options.eventBus.endpoint;
  } else {
    delete process.env.EVENT_BUS_NAME;
    delete process.env.AWS_ENDPOINT_URL_EVENTBRIDGE;
  }
  const logs: string[] = [];
  type Handler = { handler: (e: SQSEvent, c: Context) => Promise<SQSBatchResponse> };
  // A bundle is imported under a fresh URL each time, so every harness gets a handler that read
  // this harness's environment; the TypeScript module is cached once per test file.
  const { handler } = (options.bundled ? await import(`${pathToFileURL(await bundleRelay()).href}?h=${suffix}`) : await import("../../functions/relay/handler.js")) as Handler;
  // Powertools logs JSON lines to stdout; keep the relay's for assertions about what was logged.
  const streams = [process.stdout, process.stderr] as const;
  const originals = streams.map((stream) => stream.write.bind(stream));
  streams.forEach((stream, i) => {
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
      if (text.includes('"service":"relay-under-test"')) {
        logs.push(text);
        return true;
      }
      return (originals[i] as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof stream.write;
  });
  const runner = startSqsEventSource({ client, queueUrl: intake.url, queueArn: intake.arn, handler, batchSize: 10, concurrency: 2, onError: () => {} });
  return {
    sqs,
    client,
    intake,
    park,
    runner,
    handler,
    logs,
    async stop() {
      await runner.stop();
      streams.forEach((stream, i) => {
        stream.write = originals[i] as typeof stream.write;
      });
      client.destroy();
      await sqs.stop();
    },
  };
}
