/**
 * The SQS path as it runs in AWS, on real local parts: fauxqs (real SQS API), the real relay
 * handler invoked by a Lambda-style event source, the real RabbitMQ.
 */
import { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent, Context } from "aws-lambda";
import { createQueue, LOCAL_CREDENTIALS, LOCAL_REGION, sqsClientConfig, startSqsEmulator, type SqsEmulator, type CreatedQueue } from "../../scripts/local/fauxqs.js";
import { startSqsEventSource, type SqsEventSource } from "../../scripts/local/sqs-event-source.js";

export interface RelayHarness {
  sqs: SqsEmulator;
  client: SQSClient;
  intake: CreatedQueue;
  park: CreatedQueue;
  runner: SqsEventSource;
  /** JSON lines the relay logged (Powertools writes INFO to stdout, ERROR to stderr). */
  logs: string[];
  stop(): Promise<void>;
}

export interface RelayHarnessOptions {
  brokerUrl: string;
  allowedExchanges?: string[];
  maxReceiveCount?: number;
  visibilityTimeout?: number;
  parkThresholdSeconds?: number;
}

/** Points the AWS SDK and our SQS transport at the emulator (the relay reads env at import). */
export function useLocalAwsEnv(): void {
  process.env.AWS_ACCESS_KEY_ID = LOCAL_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = LOCAL_CREDENTIALS.secretAccessKey;
  process.env.AWS_REGION = LOCAL_REGION;
}

export async function startRelayHarness(options: RelayHarnessOptions): Promise<RelayHarness> {
  useLocalAwsEnv();
  const sqs = await startSqsEmulator();
  const client = new SQSClient(sqsClientConfig(sqs.endpoint));
  process.env.AWS_ENDPOINT_URL_SQS = sqs.endpoint;
  const suffix = Math.random().toString(36).slice(2, 8);
  const intake = await createQueue(client, `intake-${suffix}`, {
    visibilityTimeout: options.visibilityTimeout ?? 2,
    dlq: { maxReceiveCount: options.maxReceiveCount ?? 3 },
  });
  const park = await createQueue(client, `park-${suffix}`, { visibilityTimeout: 2 });
  process.env.BROKER_URL = options.brokerUrl;
  process.env.ALLOWED_EXCHANGES = JSON.stringify(options.allowedExchanges ?? ["", "celery_edge.topic", "celery.pidbox"]);
  process.env.PARK_QUEUE_URL = park.url;
  process.env.PARK_THRESHOLD_SECONDS = String(options.parkThresholdSeconds ?? 900);
  process.env.POWERTOOLS_SERVICE_NAME = "relay-under-test";
  const logs: string[] = [];
  const { handler } = (await import("../../functions/relay/handler.js")) as { handler: (e: SQSEvent, c: Context) => Promise<SQSBatchResponse> };
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
