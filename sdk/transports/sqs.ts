/**
 * @module
 * SQS relay transport (universal): each task becomes an envelope (see `envelope.ts`) sent to the
 * relay's intake queue with a SigV4-signed `fetch`, so the same code runs on Node,
 * Lambda, workerd and Vercel Edge (SigV4 on WebCrypto, see `sigv4.ts`). Near ETAs use SQS `DelaySeconds`; far ones go without delay and
 * the relay hands them to the scheduler.
 */
import { encodeEnvelope } from "../envelope.js";
import { ConfigurationError, ConnectionError, PayloadTooLargeError, PublishError, asCeleryError, redact, type CeleryError } from "../errors.js";
import { signPost } from "./sigv4.js";
import { msUntilEta, type PublishReceipt, type TaskMessage } from "../protocol/message.js";
import type { PublishOptions, PublishOutcome, Transport } from "../transport.js";

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SqsRelayOptions {
  /** The relay's intake queue URL (`CeleryRelay.intakeQueue.queueUrl`). */
  queueUrl: string;
  /** @default parsed from the queue URL, else `AWS_REGION`, else "us-east-1" */
  region?: string;
  /** Service endpoint, for emulators or VPC endpoints. @default `AWS_ENDPOINT_URL_SQS`, else the queue URL's origin */
  endpoint?: string;
  /** Static credentials or a provider (e.g. from @aws-sdk/credential-providers). @default AWS_* environment variables (as on Lambda) */
  credentials?: AwsCredentials | (() => Promise<AwsCredentials>);
  /** Tasks due within this many seconds use SQS `DelaySeconds`. @default 900 (SQS's maximum) */
  maxDelaySeconds?: number;
  /** Delay near-ETA tasks with SQS `DelaySeconds`; off for the scheduler's own queue. @default true */
  useDelaySeconds?: boolean;
  /** `fetch` to use. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** SQS quotas: 1 MiB per message (body + attributes), 10 entries and 1 MiB per batch. */
export const SQS_MAX_MESSAGE_BYTES = 1_048_576;
export const SQS_MAX_BATCH_ENTRIES = 10;
export const SQS_MAX_DELAY_SECONDS = 900;
/** EventBridge Scheduler's limit on a schedule's Input, which carries a parked task's envelope. */
export const SCHEDULER_MAX_INPUT_BYTES = 262_144;
/** What the scheduler adds to an envelope when it parks it (`,"stage":"release"`). */
const PARK_MARK_BYTES = 20;

interface Entry {
  index: number;
  size: number;
  request: Record<string, unknown>;
}

const encoder = new TextEncoder();
const SEND_BATCH_HEADERS = { "content-type": "application/x-amz-json-1.0", "x-amz-target": "AmazonSQS.SendMessageBatch" };

function attributesFor(m: TaskMessage): Record<string, { DataType: string; StringValue: string }> {
  return {
    "celery.task_id": { DataType: "String", StringValue: m.meta.id },
    "celery.task_name": { DataType: "String", StringValue: m.meta.name },
  };
}

function attributeBytes(attrs: Record<string, { DataType: string; StringValue: string }>): number {
  let n = 0;
  for (const [k, v] of Object.entries(attrs)) n += encoder.encode(k).length + encoder.encode(v.DataType).length + encoder.encode(v.StringValue).length;
  return n;
}

function envCredentials(): AwsCredentials | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  if (!env?.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) return undefined;
  return { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
}

export class SqsTransport implements Transport {
  readonly kind = "sqs";
  readonly queueUrl: string;
  private readonly region: string;
  private readonly endpoint: string;
  private readonly maxDelaySeconds: number;
  private readonly credentials: SqsRelayOptions["credentials"];
  private readonly fetchFn: typeof fetch;

  constructor(options: SqsRelayOptions) {
    let url: URL;
    try {
      url = new URL(options.queueUrl);
    } catch {
      throw new ConfigurationError(`sqsRelay: queueUrl must be an SQS queue URL, got ${JSON.stringify(redact(options.queueUrl))}`);
    }
    this.queueUrl = options.queueUrl;
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
    this.region = options.region ?? /^sqs\.([a-z0-9-]+)\./.exec(url.hostname)?.[1] ?? env?.AWS_REGION ?? "us-east-1";
    this.endpoint = options.endpoint ?? env?.AWS_ENDPOINT_URL_SQS ?? url.origin;
    this.maxDelaySeconds = options.useDelaySeconds === false ? 0 : Math.min(options.maxDelaySeconds ?? SQS_MAX_DELAY_SECONDS, SQS_MAX_DELAY_SECONDS);
    this.credentials = options.credentials;
    this.fetchFn = options.fetch ?? ((...a) => globalThis.fetch(...a));
  }

  async publish(message: TaskMessage, options?: PublishOptions): Promise<PublishReceipt> {
    const [outcome] = await this.publishMany([message], options);
    if (!outcome!.ok) throw outcome!.error;
    return outcome!.receipt;
  }

  async publishMany(messages: readonly TaskMessage[], options: PublishOptions = {}): Promise<PublishOutcome[]> {
    const outcomes: PublishOutcome[] = new Array(messages.length);
    const entries: Entry[] = [];
    messages.forEach((m, index) => {
      const body = encodeEnvelope(m);
      const attrs = attributesFor(m);
      const size = encoder.encode(body).length + attributeBytes(attrs);
      if (size > SQS_MAX_MESSAGE_BYTES) {
        outcomes[index] = { ok: false, error: new PayloadTooLargeError(`task ${m.meta.id} (${m.meta.name}) as an SQS message`, size, SQS_MAX_MESSAGE_BYTES) };
        return;
      }
      const toEta = Math.floor(msUntilEta(m.meta) / 1000);
      // A task beyond SQS's delay will be parked in Scheduler: refuse now what Scheduler would refuse later.
      if (toEta > this.maxDelaySeconds && size + PARK_MARK_BYTES > SCHEDULER_MAX_INPUT_BYTES) {
        outcomes[index] = {
          ok: false,
          error: new PayloadTooLargeError(`far-ETA task ${m.meta.id} (${m.meta.name}) as a Scheduler Input`, size + PARK_MARK_BYTES, SCHEDULER_MAX_INPUT_BYTES),
        };
        return;
      }
      // Up to the ETA (the relay then publishes about a second early and the worker waits the rest).
      const delay = toEta > 0 && toEta <= this.maxDelaySeconds ? toEta : 0;
      entries.push({ index, size, request: { MessageBody: body, MessageAttributes: attrs, ...(delay ? { DelaySeconds: delay } : {}) } });
    });
    const batches: Entry[][] = [];
    let current: Entry[] = [];
    let bytes = 0;
    for (const e of entries) {
      if (current.length === SQS_MAX_BATCH_ENTRIES || bytes + e.size > SQS_MAX_MESSAGE_BYTES) {
        batches.push(current);
        current = [];
        bytes = 0;
      }
      current.push(e);
      bytes += e.size;
    }
    if (current.length) batches.push(current);
    await Promise.all(batches.map((b) => this.sendBatch(b, messages, outcomes, options)));
    return outcomes;
  }

  private async resolveCredentials(): Promise<AwsCredentials> {
    const creds = typeof this.credentials === "function" ? await this.credentials() : (this.credentials ?? envCredentials());
    if (!creds) throw new ConfigurationError("sqsRelay: no AWS credentials (pass `credentials`, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)");
    return creds;
  }

  private async sendBatch(batch: Entry[], messages: readonly TaskMessage[], outcomes: PublishOutcome[], options: PublishOptions): Promise<void> {
    const fail = (error: CeleryError): void => {
      for (const e of batch) outcomes[e.index] = { ok: false, error };
    };
    let response: Response;
    try {
      const credentials = await this.resolveCredentials();
      const signal = options.connectTimeout ? AbortSignal.timeout(options.connectTimeout + (options.publishTimeout ?? 30_000)) : null;
      const body = JSON.stringify({ QueueUrl: this.queueUrl, Entries: batch.map((e, i) => ({ Id: String(i), ...e.request })) });
      response = await this.send(credentials, body, signal);
    } catch (err) {
      fail(asCeleryError(err, (m, cause) => new ConnectionError(`SQS SendMessageBatch to ${redact(this.queueUrl)} failed: ${m}; the tasks were not sent`, { cause })));
      return;
    }
    const text = await response.text();
    let json: { Successful?: Array<{ Id: string; MessageId: string }>; Failed?: Array<{ Id: string; Code?: string; Message?: string }>; __type?: string; message?: string };
    try {
      json = JSON.parse(text);
    } catch {
      json = {};
    }
    if (!response.ok) {
      const code = (json.__type ?? "").split("#").pop() || `HTTP ${response.status}`;
      fail(new PublishError("ERR_PUBLISH", `SQS refused SendMessageBatch (${code}): ${json.message ?? text.slice(0, 200)}; the tasks were not sent`));
      return;
    }
    for (const s of json.Successful ?? []) {
      const e = batch[Number(s.Id)];
      if (e) outcomes[e.index] = { ok: true, receipt: { id: messages[e.index]!.meta.id, ref: s.MessageId } };
    }
    for (const f of json.Failed ?? []) {
      const e = batch[Number(f.Id)];
      if (e) outcomes[e.index] = { ok: false, error: new PublishError("ERR_PUBLISH", `SQS did not take task ${messages[e.index]!.meta.id}: ${f.Code ?? "error"} ${f.Message ?? ""}`.trim()) };
    }
    batch.forEach((e) => {
      outcomes[e.index] ??= { ok: false, error: new PublishError("ERR_PUBLISH", `SQS answered without a result for task ${messages[e.index]!.meta.id}; treat it as not sent`) };
    });
  }

  /** Signs and sends, retrying throttling and 5xx (SQS is at-least-once; a retry cannot lose a task). */
  private async send(credentials: AwsCredentials, body: string, signal: AbortSignal | null): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const headers = await signPost(this.endpoint, SEND_BATCH_HEADERS, body, credentials, this.region, "sqs");
      const response = await this.fetchFn(this.endpoint, { method: "POST", headers, body, ...(signal ? { signal } : {}) });
      if ((response.status !== 429 && response.status < 500) || attempt >= 2) return response;
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
  }

  async close(): Promise<void> {
    // Stateless: every call is one HTTPS request.
  }
}

/** `new Celery({ broker: sqsRelay({ queueUrl }) })`. */
export function sqsRelay(options: SqsRelayOptions): SqsTransport {
  return new SqsTransport(options);
}
