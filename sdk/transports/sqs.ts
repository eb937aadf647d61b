/**
 * @module
 * SQS relay transport (universal): each task becomes an envelope (see `envelope.ts`) sent to the
 * relay's intake queue with a SigV4-signed `fetch`, so the same code runs on Node,
 * Lambda, workerd and Vercel Edge (SigV4 on WebCrypto, see `sigv4.ts`). Near ETAs use SQS `DelaySeconds`; far ones go without delay and
 * the relay hands them to the scheduler.
 */
import { encodeEnvelope } from "../wire/envelope.js";
import { ConfigurationError, ConnectionError, PayloadTooLargeError, PublishError, TimeoutError, asCeleryError, redact, type CeleryError } from "../errors.js";
import { utf8Encoder } from "../serializers/utf8.js";
import { signPost } from "./sigv4.js";
import type { PublishReceipt, TaskMessage } from "../protocol/message.js";
import { PARK_MARK_BYTES, SCHEDULER_MAX_INPUT_BYTES, SQS_MAX_BATCH_ENTRIES, SQS_MAX_DELAY_SECONDS, SQS_MAX_MESSAGE_BYTES } from "../wire/limits.js";
import { msUntilEta } from "../wire/parking.js";
import type { PublishOptions, PublishOutcome, Transport } from "../transport.js";

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SqsRelayOptions {
  /** The relay's intake queue URL (`CeleryRelay.intakeQueue.queueUrl`). */
  queueUrl: string;
  /** @default read from the endpoint or queue URL, else `AWS_REGION`, else "us-east-1" for a plain-http emulator; else construction fails asking for it */
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

interface Entry {
  index: number;
  size: number;
  request: Record<string, unknown>;
}

const SEND_BATCH_HEADERS = { "content-type": "application/x-amz-json-1.0", "x-amz-target": "AmazonSQS.SendMessageBatch" };

/** What SQS counts of `attributesFor`'s names and types ("celery.task_id", "celery.task_name", "String" twice). */
const ATTRIBUTE_NAME_BYTES = 42;

/** SQS refuses controls, U+FFFE/U+FFFF and lone surrogates in attributes; these are only labels. */
// With the `u` flag a surrogate pair is one code point, so only a lone surrogate matches \uD800-\uDFFF.
const sqsText = (s: string): string => s.replace(/[\0-\x08\v\f\x0e-\x1f\uD800-\uDFFF\uFFFE\uFFFF]/gu, "\uFFFD");

function attributesFor(m: TaskMessage): Record<string, { DataType: string; StringValue: string }> {
  return {
    "celery.task_id": { DataType: "String", StringValue: sqsText(m.meta.id) },
    "celery.task_name": { DataType: "String", StringValue: sqsText(m.meta.name) },
  };
}

/** AWS_* environment credentials (as on Lambda), else undefined. */
export function envCredentials(): AwsCredentials | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  if (!env?.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) return undefined;
  return { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
}

export class SqsTransport implements Transport {
  readonly kind = "sqs";
  // `declare`: assigned in the constructor, no class-field definition. The rest is `#private`,
  // which a minifier renames (a TypeScript `private` keeps its name in every edge bundle).
  declare readonly queueUrl: string;
  readonly #region: string;
  readonly #endpoint: string;
  readonly #maxDelaySeconds: number;
  readonly #credentials: SqsRelayOptions["credentials"];
  readonly #fetch: typeof fetch;
  /** Server clock minus ours, learnt from a clock-skew answer (the AWS SDK's `systemClockOffset`). */
  #skew = 0;

  constructor(options: SqsRelayOptions) {
    let url: URL;
    try {
      url = new URL(options.queueUrl);
    } catch {
      throw new ConfigurationError(`sqsRelay: queueUrl must be an SQS queue URL, got ${JSON.stringify(redact(options.queueUrl))}`);
    }
    this.queueUrl = options.queueUrl;
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
    this.#endpoint = options.endpoint ?? env?.AWS_ENDPOINT_URL_SQS ?? url.origin;
    // The region label of an AWS hostname (`sqs.<r>.amazonaws.com`, `sqs-fips.<r>…`, legacy
    // `<r>.queue.amazonaws.com`, `vpce-….sqs.<r>.vpce.amazonaws.com`, `….amazonaws.com.cn`,
    // `sqs.<r>.api.aws`), endpoint first. A plain-http endpoint is an emulator, which takes any
    // region. Signing for a guessed region fails every send with a 403, so anything else asks now.
    const region =
      options.region ??
      /([a-z]+-[a-z-]+-\d+)\.[\w.]*aws\b/.exec(this.#endpoint + " " + options.queueUrl)?.[1] ??
      env?.AWS_REGION ??
      (/^http:/.test(this.#endpoint) ? "us-east-1" : "");
    if (!region) throw new ConfigurationError(`sqsRelay: no region in ${redact(this.#endpoint)}; pass \`region\``);
    this.#region = region;
    this.#maxDelaySeconds = options.useDelaySeconds === false ? 0 : Math.min(options.maxDelaySeconds ?? SQS_MAX_DELAY_SECONDS, SQS_MAX_DELAY_SECONDS);
    this.#credentials = options.credentials;
    this.#fetch = options.fetch ?? ((...a) => globalThis.fetch(...a));
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
      // The body and attribute values, UTF-8, as SQS counts them.
      const size = utf8Encoder.encode(body + m.meta.id + m.meta.name).length + ATTRIBUTE_NAME_BYTES;
      if (size > SQS_MAX_MESSAGE_BYTES) {
        outcomes[index] = { ok: false, error: new PayloadTooLargeError(`task ${m.meta.id} (${m.meta.name}) as an SQS message`, size, SQS_MAX_MESSAGE_BYTES) };
        return;
      }
      const toEta = Math.floor(msUntilEta(m.meta) / 1000);
      // A task beyond SQS's delay will be parked in Scheduler: refuse now what Scheduler would refuse later.
      if (toEta > this.#maxDelaySeconds && size + PARK_MARK_BYTES > SCHEDULER_MAX_INPUT_BYTES) {
        outcomes[index] = {
          ok: false,
          error: new PayloadTooLargeError(`far-ETA task ${m.meta.id} (${m.meta.name}) as a Scheduler Input`, size + PARK_MARK_BYTES, SCHEDULER_MAX_INPUT_BYTES),
        };
        return;
      }
      // Up to the ETA (the relay then publishes about a second early and the worker waits the rest).
      const delay = toEta > 0 && toEta <= this.#maxDelaySeconds ? toEta : 0;
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
    // One deadline for the whole call (30 s unless given); the deprecated pair still adds up as it used to.
    const ms = options.timeout ?? (options.connectTimeout ?? 0) + (options.publishTimeout ?? 30_000);
    await Promise.all(batches.map((b) => this.#sendBatch(b, messages, outcomes, ms)));
    return outcomes;
  }

  async #resolveCredentials(): Promise<AwsCredentials> {
    const creds = typeof this.#credentials === "function" ? await this.#credentials() : (this.#credentials ?? envCredentials());
    if (!creds) throw new ConfigurationError("sqsRelay: no AWS credentials (pass `credentials`, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)");
    return creds;
  }

  async #sendBatch(batch: Entry[], messages: readonly TaskMessage[], outcomes: PublishOutcome[], ms: number): Promise<void> {
    const fail = (error: CeleryError): void => {
      for (const e of batch) outcomes[e.index] = { ok: false, error };
    };
    let sent: [Response, string];
    const signal = AbortSignal.timeout(ms);
    try {
      const credentials = await this.#resolveCredentials();
      const body = JSON.stringify({ QueueUrl: this.queueUrl, Entries: batch.map((e, i) => ({ Id: String(i), ...e.request })) });
      sent = await this.#send(credentials, body, signal);
    } catch (err) {
      const call = `SQS SendMessageBatch to ${redact(this.queueUrl)}`;
      // A timeout is told by the signal, not by the runtime's abort error; SQS may have taken the batch by then.
      fail(
        signal.aborted
          ? new TimeoutError(`${call} got no answer within ${ms} ms; the tasks may have been sent`)
          : asCeleryError(err, (m, cause) => new ConnectionError(`${call} failed: ${m}; the tasks were not sent`, { cause })),
      );
      return;
    }
    const [response, text] = sent;
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

  /**
   * Signs and sends, retrying throttling and 5xx (SQS is at-least-once; a retry cannot lose a task),
   * and once when the first answer says the signature is outside SQS's time window ("Signature
   * expired", "Signature not yet current", "RequestTimeTooSkewed"): signed again on the clock of
   * the answer's `Date`, which later sends keep using.
   */
  async #send(credentials: AwsCredentials, body: string, signal: AbortSignal): Promise<[Response, string]> {
    for (let attempt = 0, skewed = 0; ; attempt++) {
      const headers = await signPost(this.#endpoint, SEND_BATCH_HEADERS, body, credentials, this.#region, "sqs", new Date(Date.now() + this.#skew));
      const response = await this.#fetch(this.#endpoint, { method: "POST", headers, body, signal });
      const text = await response.text();
      if (!skewed++ && /Signature [en]|Skew/.test(text)) {
        this.#skew = Date.parse(response.headers.get("date")!) - Date.now() || 0;
        continue;
      }
      if ((response.status !== 429 && response.status < 500) || attempt >= 2) return [response, text];
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
