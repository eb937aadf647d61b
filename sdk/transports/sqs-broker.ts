/**
 * @module
 * SQS as the Celery broker (universal): tasks go straight into the queue a fleet with
 * `broker_url = "sqs://"` consumes, in kombu's SQS message format (`sqs-broker-wire.ts`), over
 * SigV4-signed `fetch` — no relay, no RabbitMQ. Runs on Node, Lambda, workerd and Vercel Edge.
 *
 * A message whose routing key the fleet does not know is refused before it leaves: a kombu 5.2.4
 * worker with `predefined_queues` runs such a task and then dies acking it. Queues are never
 * created here; without `predefinedQueues` their URLs are looked up once (GetQueueUrl) and cached.
 */
import { ConfigurationError, ConnectionError, PayloadTooLargeError, PublishError, TimeoutError, asCeleryError, redact, type CeleryError } from "../errors.js";
import type { PublishReceipt, TaskMessage } from "../protocol/message.js";
import type { PublishOptions, PublishOutcome, Transport } from "../transport.js";
import { SQS_MAX_BATCH_ENTRIES, SQS_MAX_DELAY_SECONDS, SQS_MAX_MESSAGE_BYTES } from "../wire/limits.js";
import { msUntilEta } from "../wire/parking.js";
import { sqsCaller, type SqsCall } from "./sqs-broker-client.js";
import { canonicalQueueName, isFifoQueueName, isSqsQueueName, kombuQueueFor, sqsMessageBody } from "./sqs-broker-wire.js";
import type { AwsCredentials } from "./sqs.js";

export interface SqsBrokerFifoOptions {
  /** `MessageGroupId` of every message to a FIFO queue, or a function of the message. @default "default" (kombu's) */
  messageGroupId?: string | ((message: TaskMessage) => string);
}

export interface SqsBrokerOptions {
  /** AWS region of the queues, e.g. "eu-west-1". */
  region: string;
  /** Static credentials or a provider (e.g. from @aws-sdk/credential-providers). @default AWS_* environment variables (as on Lambda) */
  credentials?: AwsCredentials | (() => Promise<AwsCredentials>);
  /** Service endpoint, for emulators or VPC endpoints. @default `AWS_ENDPOINT_URL_SQS`, else `https://sqs.<region>.amazonaws.com` */
  endpoint?: string;
  /** The workers' `queue_name_prefix` (kombu puts it before the queue name, then maps punctuation). @default "" */
  queueNamePrefix?: string;
  /**
   * The workers' `predefined_queues`: SQS queue name (as kombu maps it, prefix included) → queue URL
   * (or kombu's `{ url }`). When given, only these queues are sent to, and only with a routing key
   * that maps to one of them. @default none: URLs are looked up with GetQueueUrl
   */
  predefinedQueues?: Readonly<Record<string, string | { url: string }>>;
  /** FIFO queues (SQS name ending `.fifo`): how messages are grouped. `MessageDeduplicationId` is the task id. */
  fifo?: SqsBrokerFifoOptions;
  /** Tasks due within this many seconds are sent with SQS `DelaySeconds` (standard queues). @default 900 (SQS's maximum) */
  maxDelaySeconds?: number;
  /** `fetch` to use. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** SQS's rule for MessageGroupId and MessageDeduplicationId: 1–128 printable ASCII characters. */
const isFifoId = (s: unknown): s is string => typeof s === "string" && /^[\x21-\x7e]{1,128}$/.test(s);

interface Entry {
  index: number;
  size: number;
  request: Record<string, unknown>;
}

type Destination = { url: string } | { error: CeleryError };

export class SqsBrokerTransport implements Transport {
  readonly kind = "sqs-broker";
  readonly #call: SqsCall;
  readonly #prefix: string;
  readonly #predefined: ReadonlyMap<string, string> | null;
  readonly #maxDelay: number;
  readonly #groupId: NonNullable<SqsBrokerFifoOptions["messageGroupId"]>;
  readonly #endpoint: string;
  /** SQS name → its URL (or why there is none), looked up once. */
  readonly #urls = new Map<string, Promise<Destination>>();

  constructor(options: SqsBrokerOptions) {
    if (typeof options?.region !== "string" || !/^[a-z]+(-[a-z]+)+-\d+$/.test(options.region)) {
      throw new ConfigurationError(`sqsBroker: region must be an AWS region such as "us-east-1", got ${JSON.stringify(options?.region)?.slice(0, 40)}`, { code: "ERR_INVALID_OPTION" });
    }
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
    this.#endpoint = options.endpoint ?? env?.AWS_ENDPOINT_URL_SQS ?? `https://sqs.${options.region}.amazonaws.com`;
    try {
      new URL(this.#endpoint);
    } catch {
      throw new ConfigurationError(`sqsBroker: endpoint must be a URL, got ${JSON.stringify(redact(this.#endpoint))}`, { code: "ERR_INVALID_OPTION" });
    }
    this.#prefix = options.queueNamePrefix ?? "";
    if (typeof this.#prefix !== "string") throw new ConfigurationError("sqsBroker: queueNamePrefix must be a string", { code: "ERR_INVALID_OPTION" });
    if (options.predefinedQueues) {
      const map = new Map<string, string>();
      for (const [name, q] of Object.entries(options.predefinedQueues)) {
        const url = typeof q === "string" ? q : q?.url;
        // kombu refuses the same mismatch at start (`_validate_predifined_queues`).
        if (typeof url !== "string" || !isSqsQueueName(name) || isFifoQueueName(name) !== url.endsWith(".fifo")) {
          throw new ConfigurationError(`sqsBroker: predefinedQueues[${JSON.stringify(name).slice(0, 90)}] must map an SQS queue name to its URL, both FIFO or neither`, { code: "ERR_INVALID_OPTION" });
        }
        map.set(name, url);
      }
      this.#predefined = map;
    } else this.#predefined = null;
    const maxDelay = options.maxDelaySeconds ?? SQS_MAX_DELAY_SECONDS;
    if (!(maxDelay >= 0)) throw new ConfigurationError("sqsBroker: maxDelaySeconds must be 0 or more seconds", { code: "ERR_INVALID_OPTION" });
    this.#maxDelay = Math.floor(Math.min(maxDelay, SQS_MAX_DELAY_SECONDS));
    this.#groupId = options.fifo?.messageGroupId ?? "default";
    this.#call = sqsCaller({ endpoint: this.#endpoint, region: options.region, credentials: options.credentials, fetch: options.fetch ?? ((...a) => globalThis.fetch(...a)) });
  }

  async publish(message: TaskMessage, options?: PublishOptions): Promise<PublishReceipt> {
    const [outcome] = await this.publishMany([message], options);
    if (!outcome!.ok) throw outcome!.error;
    return outcome!.receipt;
  }

  async publishMany(messages: readonly TaskMessage[], options: PublishOptions = {}): Promise<PublishOutcome[]> {
    const ms = options.timeout ?? (options.connectTimeout ?? 0) + (options.publishTimeout ?? 30_000);
    const signal = AbortSignal.timeout(ms);
    const outcomes: PublishOutcome[] = new Array(messages.length);
    const byUrl = new Map<string, Entry[]>();
    await Promise.all(
      messages.map(async (m, index) => {
        const entry = this.#entry(m, index);
        if ("error" in entry) return void (outcomes[index] = { ok: false, error: entry.error });
        const destination = await this.#destination(entry.name, signal, ms);
        if ("error" in destination) return void (outcomes[index] = { ok: false, error: destination.error });
        const list = byUrl.get(destination.url) ?? [];
        byUrl.set(destination.url, list);
        list[index] = entry.entry; // sparse by index: batches keep send order
      }),
    );
    const sends: Promise<void>[] = [];
    for (const [url, sparse] of byUrl) {
      const batches = batchesOf(sparse.filter(Boolean));
      const send = (batch: Entry[]): Promise<void> => this.#sendBatch(url, batch, messages, outcomes, signal, ms);
      // A FIFO queue keeps the order SQS receives in: its batches go one after another.
      if (url.endsWith(".fifo")) sends.push(batches.reduce((before, batch) => before.then(() => send(batch)), Promise.resolve()));
      else sends.push(...batches.map(send));
    }
    await Promise.all(sends);
    return outcomes;
  }

  /** Celery events travel on a fanout exchange, which kombu's SQS transport does not have. */
  async publishEvents(events: readonly TaskMessage[]): Promise<PublishOutcome[]> {
    return events.map(() => ({ ok: false, error: new PublishError("ERR_UNROUTABLE", "an SQS broker has no fanout exchange: Celery events are not sent") }));
  }

  /** The SQS request for `m`, or why it cannot be sent; every check SQS would make, before sending. */
  #entry(m: TaskMessage, index: number): { name: string; entry: Entry } | { error: CeleryError } {
    const what = `task ${m.meta.id} (${m.meta.name})`;
    const queue = kombuQueueFor(m);
    if (queue === null) {
      return { error: new PublishError("ERR_UNROUTABLE", `${what}: an SQS broker routes by queue only (default exchange, or a direct exchange with its queue declared); exchange ${JSON.stringify(m.exchange).slice(0, 90)} with routing key ${JSON.stringify(m.routingKey).slice(0, 90)} names none`) };
    }
    const name = canonicalQueueName(this.#prefix, queue);
    if (!isSqsQueueName(name)) return { error: new PublishError("ERR_UNROUTABLE", `${what}: ${JSON.stringify(name).slice(0, 90)} is not an SQS queue name`) };
    if (this.#predefined) {
      // The worker acks through the queue its routing key names (`basic_ack`): unknown there, it dies.
      const ackQueue = canonicalQueueName(this.#prefix, m.routingKey);
      for (const n of [name, ackQueue]) {
        if (!this.#predefined.has(n)) return { error: new PublishError("ERR_UNROUTABLE", `${what}: queue ${JSON.stringify(n).slice(0, 90)} is not in predefinedQueues; the tasks were not sent`) };
      }
    }
    const body = sqsMessageBody(m, crypto.randomUUID());
    // Base64 is ASCII: its length is its size; no attributes are sent.
    if (body.length > SQS_MAX_MESSAGE_BYTES) return { error: new PayloadTooLargeError(`${what} as an SQS message`, body.length, SQS_MAX_MESSAGE_BYTES) };
    const request: Record<string, unknown> = { MessageBody: body };
    if (isFifoQueueName(name)) {
      // FIFO queues take no per-message delay: the worker holds the task until its `eta` header.
      let group: unknown;
      try {
        group = typeof this.#groupId === "function" ? this.#groupId(m) : this.#groupId;
      } catch (err) {
        return { error: asCeleryError(err, (msg, cause) => new ConfigurationError(`${what}: fifo.messageGroupId threw: ${msg.slice(0, 200)}`, { code: "ERR_INVALID_OPTION", cause })) };
      }
      if (!isFifoId(group)) return { error: new ConfigurationError(`${what}: MessageGroupId must be 1-128 printable ASCII characters, got ${JSON.stringify(group)?.slice(0, 40)}`, { code: "ERR_INVALID_OPTION" }) };
      // The task id deduplicates: a send retried within SQS's 5-minute window is not a second task.
      if (!isFifoId(m.meta.id)) return { error: new ConfigurationError(`${what}: a FIFO queue's MessageDeduplicationId is the task id, which must be 1-128 printable ASCII characters`, { code: "ERR_INVALID_OPTION" }) };
      request.MessageGroupId = group as string;
      request.MessageDeduplicationId = m.meta.id;
    } else {
      // Whole seconds, rounded down: the worker waits out the rest to the exact `eta` header.
      const toEta = Math.floor(msUntilEta(m.meta) / 1000);
      if (toEta > 0) request.DelaySeconds = Math.min(toEta, this.#maxDelay);
      if (request.DelaySeconds === 0) delete request.DelaySeconds;
    }
    return { name, entry: { index, size: body.length, request } };
  }

  #destination(name: string, signal: AbortSignal, ms: number): Promise<Destination> {
    if (this.#predefined) return Promise.resolve({ url: this.#predefined.get(name)! });
    let found = this.#urls.get(name);
    if (!found) {
      // Bounded: queue names come from routing, which a caller may vary.
      if (this.#urls.size >= 1000) this.#urls.clear();
      found = this.#lookUp(name, signal, ms);
      this.#urls.set(name, found);
      // Only a URL is kept: a queue missing now may be created by a worker starting later.
      void found.then((d) => {
        if ("error" in d) this.#urls.delete(name);
      });
    }
    return found;
  }

  async #lookUp(name: string, signal: AbortSignal, ms: number): Promise<Destination> {
    const call = `SQS GetQueueUrl for ${JSON.stringify(name)} at ${redact(this.#endpoint)}`;
    try {
      const answer = await this.#call("GetQueueUrl", { QueueName: name }, signal);
      if (answer.ok && typeof answer.json.QueueUrl === "string") return { url: answer.json.QueueUrl };
      if (/QueueDoesNotExist|NonExistentQueue/.test(answer.errorType)) {
        return { error: new PublishError("ERR_UNROUTABLE", `queue ${JSON.stringify(name)} does not exist (the workers create it; this transport never does); the tasks were not sent`) };
      }
      return { error: new PublishError("ERR_PUBLISH", `${call} failed (${answer.errorType || `HTTP ${answer.status}`}); the tasks were not sent`) };
    } catch (err) {
      if (signal.aborted) return { error: new TimeoutError(`${call} got no answer within ${ms} ms; the tasks were not sent`) };
      return { error: asCeleryError(err, (m, cause) => new ConnectionError(`${call} failed: ${m}; the tasks were not sent`, { cause })) };
    }
  }

  async #sendBatch(url: string, batch: Entry[], messages: readonly TaskMessage[], outcomes: PublishOutcome[], signal: AbortSignal, ms: number): Promise<void> {
    const fail = (error: CeleryError): void => batch.forEach((e) => void (outcomes[e.index] = { ok: false, error }));
    const call = `SQS SendMessageBatch to ${redact(url)}`;
    let answer;
    try {
      answer = await this.#call("SendMessageBatch", { QueueUrl: url, Entries: batch.map((e, i) => ({ Id: String(i), ...e.request })) }, signal);
    } catch (err) {
      // A timeout is told by the signal, not by the runtime's abort error; SQS may have taken the batch by then.
      return fail(
        signal.aborted
          ? new TimeoutError(`${call} got no answer within ${ms} ms; the tasks may have been sent`)
          : asCeleryError(err, (m, cause) => new ConnectionError(`${call} failed: ${m}; the tasks were not sent`, { cause })),
      );
    }
    if (!answer.ok) {
      const code = /QueueDoesNotExist|NonExistentQueue/.test(answer.errorType) ? "ERR_UNROUTABLE" : "ERR_PUBLISH";
      const said = typeof answer.json.message === "string" ? answer.json.message : answer.text;
      return fail(new PublishError(code, `SQS refused SendMessageBatch (${answer.errorType || `HTTP ${answer.status}`}): ${said.slice(0, 200)}; the tasks were not sent`));
    }
    const successful = Array.isArray(answer.json.Successful) ? (answer.json.Successful as Array<{ Id?: unknown; MessageId?: unknown }>) : [];
    const failed = Array.isArray(answer.json.Failed) ? (answer.json.Failed as Array<{ Id?: unknown; Code?: unknown; Message?: unknown }>) : [];
    for (const s of successful) {
      const e = batch[Number(s.Id)];
      if (e) outcomes[e.index] = { ok: true, receipt: { id: messages[e.index]!.meta.id, ...(typeof s.MessageId === "string" ? { ref: s.MessageId } : {}) } };
    }
    for (const f of failed) {
      const e = batch[Number(f.Id)];
      const why = `${typeof f.Code === "string" ? f.Code : "error"} ${typeof f.Message === "string" ? f.Message.slice(0, 200) : ""}`.trim();
      if (e) outcomes[e.index] = { ok: false, error: new PublishError("ERR_PUBLISH", `SQS did not take task ${messages[e.index]!.meta.id}: ${why}`) };
    }
    for (const e of batch) {
      outcomes[e.index] ??= { ok: false, error: new PublishError("ERR_PUBLISH", `SQS answered without a result for task ${messages[e.index]!.meta.id}; treat it as not sent`) };
    }
  }

  async close(): Promise<void> {
    // Stateless: every call is one HTTPS request.
  }
}

/** Splits entries into SendMessageBatch calls: at most ten, and at most SQS's message limit in all. */
export function batchesOf<T extends { size: number }>(entries: readonly T[]): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (current.length === SQS_MAX_BATCH_ENTRIES || (current.length && bytes + e.size > SQS_MAX_MESSAGE_BYTES)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(e);
    bytes += e.size;
  }
  if (current.length) batches.push(current);
  return batches;
}

/** `new Celery({ broker: sqsBroker({ region, predefinedQueues }) })` for a fleet whose broker is SQS. */
export function sqsBroker(options: SqsBrokerOptions): SqsBrokerTransport {
  return new SqsBrokerTransport(options);
}
