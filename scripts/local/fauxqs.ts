/**
 * @module
 * Local SQS for tests and `npm run demo`: fauxqs (an in-memory SQS/SNS/S3 emulator) started
 * in-process and bound to 127.0.0.1 only, plus a `createQueue` helper that goes through the real
 * `@aws-sdk/client-sqs` so queues are made exactly as the relay's infrastructure would make them.
 *
 * Queue URLs that fauxqs hands out look like `http://sqs.us-east-1.localhost:<port>/000000000000/<name>`.
 * They are identifiers only: always give `SQSClient` an explicit `endpoint` (see `sqsClientConfig`),
 * otherwise the SDK's `useQueueUrlAsEndpoint` would try to connect to that unresolvable host.
 *
 * fauxqs reports `SenderId: "000000000000"` for every message; real SQS reports the sending
 * principal. The `senderIds` option restores that per sender, keyed by the access key a client signs
 * with, so tests can tell senders apart (see `credentialsFor`).
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

export interface LocalCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** Dummy credentials signing as `accessKeyId`: the key `senderIds` maps to a SenderId. */
export function credentialsFor(accessKeyId: string): LocalCredentials {
  return { accessKeyId, secretAccessKey: LOCAL_CREDENTIALS.secretAccessKey };
}

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
  /**
   * SenderId that received messages report, keyed by the SigV4 access key id their sender signed
   * with, as real SQS reports the sending principal (`AIDA…`, or `AROA…:session-name` for a role
   * session). Messages from keys not listed keep fauxqs's `"000000000000"`.
   * @default none: every message reports `"000000000000"`
   */
  readonly senderIds?: Readonly<Record<string, string>>;
}

/** Starts fauxqs in this process, listening on 127.0.0.1 only. */
export async function startSqsEmulator(options: StartSqsEmulatorOptions = {}): Promise<SqsEmulator> {
  // `buildApp` rather than `startFauxqs`: the latter always listens on 0.0.0.0.
  const senderIds = options.senderIds ? checkSenderIds(options.senderIds) : undefined;
  const app = buildApp({ logger: false, defaultRegion: LOCAL_REGION });
  if (senderIds) reportSenderIds(app, senderIds);
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

/** Most sent messages whose sender is remembered; the oldest are forgotten first. */
const SENDER_MEMORY = 100_000;

/**
 * Rewrites `Attributes.SenderId` in ReceiveMessage responses for messages sent with a mapped key.
 * Done with Fastify hooks on the HTTP exchange because fauxqs hardcodes the value. Only the JSON
 * protocol is covered: fauxqs hands every form-encoded (Query protocol) request to its SNS router,
 * so SQS over the Query protocol does not reach its SQS actions at all.
 *
 * A message keeps its MessageId when fauxqs redrives it to a DLQ, so its sender carries over.
 */
function reportSenderIds(app: ReturnType<typeof buildApp>, byKey: ReadonlyMap<string, string>): void {
  // MessageId → SenderId; null for a sender whose key is not mapped, so that a FIFO duplicate
  // (answered with the original MessageId) cannot relabel a message someone else sent first.
  const senders = new Map<string, string | null>();
  const remember = (messageId: unknown, senderId: string | null): void => {
    if (typeof messageId !== "string" || senders.has(messageId)) return;
    senders.set(messageId, senderId);
    if (senders.size > SENDER_MEMORY) {
      const oldest = senders.keys().next();
      if (!oldest.done) senders.delete(oldest.value);
    }
  };

  app.addHook("onSend", async (request, reply, payload) => {
    const target = request.headers["x-amz-target"];
    if (typeof target !== "string" || reply.statusCode !== 200) return payload;
    const action = target.replace(/^AmazonSQS\./, "");
    if (action !== "SendMessage" && action !== "SendMessageBatch" && action !== "ReceiveMessage") return payload;
    const text = typeof payload === "string" ? payload : Buffer.isBuffer(payload) ? payload.toString("utf8") : undefined;
    if (text === undefined) return payload;
    const body = JSON.parse(text) as SqsResponseBody;

    if (action === "ReceiveMessage") {
      let changed = false;
      for (const message of body.Messages ?? []) {
        const senderId = senders.get(message.MessageId ?? "");
        // Only where the caller asked for SenderId (fauxqs then put its placeholder there).
        if (senderId && message.Attributes?.SenderId !== undefined) {
          message.Attributes.SenderId = senderId;
          changed = true;
        }
      }
      return changed ? JSON.stringify(body) : payload;
    }

    const accessKeyId = /Credential=([^/,\s]+)\//.exec(request.headers.authorization ?? "")?.[1];
    const senderId = (accessKeyId !== undefined ? byKey.get(accessKeyId) : undefined) ?? null;
    if (action === "SendMessage") remember(body.MessageId, senderId);
    else for (const entry of body.Successful ?? []) remember(entry.MessageId, senderId);
    return payload;
  });
}

/** `senderIds` as a map (no inherited keys such as `constructor`), each SenderId non-empty. */
function checkSenderIds(senderIds: Readonly<Record<string, string>>): ReadonlyMap<string, string> {
  const byKey = new Map(Object.entries(senderIds));
  for (const [key, senderId] of byKey) {
    if (typeof senderId !== "string" || senderId === "") {
      throw new TypeError(`senderIds[${JSON.stringify(key)}] must be a non-empty string, got ${JSON.stringify(senderId)}`);
    }
  }
  return byKey;
}

/** The parts of fauxqs's JSON responses that `reportSenderIds` reads. */
interface SqsResponseBody {
  MessageId?: string;
  Successful?: Array<{ MessageId?: string }>;
  Messages?: Array<{ MessageId?: string; Attributes?: Record<string, string> }>;
}

/**
 * `SQSClient` settings for the emulator at `endpoint`: region us-east-1 and dummy credentials,
 * `LOCAL_CREDENTIALS` unless given (`credentialsFor(key)` to send as a mapped sender).
 */
export function sqsClientConfig(endpoint: string, credentials: LocalCredentials = LOCAL_CREDENTIALS): SQSClientConfig {
  return { endpoint, region: LOCAL_REGION, credentials };
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
