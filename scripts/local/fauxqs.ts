/**
 * @module
 * Local SQS for tests and `npm run demo`: fauxqs (an in-memory SQS/SNS/S3 emulator) started
 * in-process and bound to 127.0.0.1 only, plus a `createQueue` helper that goes through the real
 * `@aws-sdk/client-sqs` so queues are made exactly as the relay's infrastructure would make them.
 *
 * Queue URLs that fauxqs hands out look like `http://sqs.us-east-1.localhost:<port>/000000000000/<name>`.
 * They are identifiers only: always give `SQSClient` an explicit `endpoint` (see `sqsClientConfig`),
 * otherwise the SDK's `useQueueUrlAsEndpoint` would try to connect to that unresolvable host.
 */

import type { AddressInfo } from "node:net";
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  type SQSClient,
  type SQSClientConfig,
} from "@aws-sdk/client-sqs";
import { buildApp } from "fauxqs";

/** Region every local stand-in uses; fauxqs builds ARNs with it. */
export const LOCAL_REGION = "us-east-1";

/** Dummy static credentials: fauxqs accepts any and never validates them. */
export const LOCAL_CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" } as const;

export interface SqsEmulator {
  /** `http://127.0.0.1:<port>`: the value for `SQSClient`'s `endpoint`. */
  readonly endpoint: string;
  readonly port: number;
  /** Closes the server; pending long polls are released first. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartSqsEmulatorOptions {
  /** TCP port on 127.0.0.1. @default a free port chosen by the OS */
  readonly port?: number;
}

/** Starts fauxqs in this process, listening on 127.0.0.1 only. */
export async function startSqsEmulator(options: StartSqsEmulatorOptions = {}): Promise<SqsEmulator> {
  // `buildApp` rather than `startFauxqs`: the latter always listens on 0.0.0.0.
  const app = buildApp({ logger: false, defaultRegion: LOCAL_REGION });
  try {
    await app.listen({ port: options.port ?? 0, host: "127.0.0.1" });
  } catch (error) {
    await app.close().catch(() => undefined);
    throw new Error(`fauxqs could not listen on 127.0.0.1:${options.port ?? 0}`, { cause: error });
  }
  const port = (app.server.address() as AddressInfo).port;
  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    stop() {
      stopping ??= app.close().then(() => undefined);
      return stopping;
    },
  };
}

/** `SQSClient` settings for the emulator at `endpoint`: region us-east-1, dummy credentials. */
export function sqsClientConfig(endpoint: string): SQSClientConfig {
  return { endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS };
}

export interface CreateQueueOptions {
  /** Queue `VisibilityTimeout`, in seconds. @default 30 (the SQS default) */
  readonly visibilityTimeout?: number;
  /** Queue `DelaySeconds`, in seconds. @default 0 */
  readonly delaySeconds?: number;
  /** Also create a dead-letter queue and attach it with a `RedrivePolicy`. @default no DLQ */
  readonly dlq?: {
    /** Receives after which SQS moves a message to the DLQ (`RedrivePolicy.maxReceiveCount`). */
    readonly maxReceiveCount: number;
    /** Name of the DLQ. @default `<name>-dlq` (`<base>-dlq.fifo` for a FIFO queue) */
    readonly name?: string;
  };
  /** Any further queue attributes, passed through as-is (e.g. `FifoQueue`). @default none */
  readonly attributes?: Readonly<Record<string, string>>;
}

export interface CreatedQueue {
  readonly url: string;
  readonly arn: string;
  readonly dlqUrl?: string;
  readonly dlqArn?: string;
}

/** Creates `name` (and its DLQ when asked) with the real SQS API; idempotent like CreateQueue. */
export async function createQueue(
  client: SQSClient,
  name: string,
  options: CreateQueueOptions = {},
): Promise<CreatedQueue> {
  const fifo = name.endsWith(".fifo");
  const attributes: Record<string, string> = { ...options.attributes };
  if (options.visibilityTimeout !== undefined) attributes["VisibilityTimeout"] = String(options.visibilityTimeout);
  if (options.delaySeconds !== undefined) attributes["DelaySeconds"] = String(options.delaySeconds);
  if (fifo) attributes["FifoQueue"] = "true";

  let dlq: { url: string; arn: string } | undefined;
  if (options.dlq) {
    const dlqName = options.dlq.name ?? (fifo ? `${name.slice(0, -".fifo".length)}-dlq.fifo` : `${name}-dlq`);
    // A FIFO queue's DLQ must itself be FIFO.
    dlq = await createOne(client, dlqName, fifo ? { FifoQueue: "true" } : {});
    attributes["RedrivePolicy"] = JSON.stringify({
      deadLetterTargetArn: dlq.arn,
      maxReceiveCount: options.dlq.maxReceiveCount,
    });
  }
  const queue = await createOne(client, name, attributes);
  return dlq ? { ...queue, dlqUrl: dlq.url, dlqArn: dlq.arn } : queue;
}

async function createOne(
  client: SQSClient,
  name: string,
  attributes: Record<string, string>,
): Promise<{ url: string; arn: string }> {
  const created = await client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
  const url = created.QueueUrl;
  if (!url) throw new Error(`CreateQueue for ${name} returned no QueueUrl`);
  const described = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }),
  );
  const arn = described.Attributes?.["QueueArn"];
  if (!arn) throw new Error(`GetQueueAttributes for ${name} returned no QueueArn`);
  return { url, arn };
}
