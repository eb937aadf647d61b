/**
 * @module
 * A local stand-in for Lambda's SQS event source mapping, for tests and `npm run demo`: it long-polls
 * a queue, hands batches of Lambda-shaped `SQSRecord`s to a handler, and deletes what the handler
 * did not report as failed — the same contract as an event source mapping with
 * `ReportBatchItemFailures` turned on.
 *
 * Failed records are simply left in flight; they come back after the queue's visibility timeout,
 * and the queue's own `RedrivePolicy` (which fauxqs enforces on receive) moves them to the DLQ.
 *
 * Not modelled: the function timeout (only `getRemainingTimeInMillis` reflects it; a slow handler is
 * not cut off), the 6 MB invocation payload cap, and Lambda's automatic scaling of pollers.
 */

import { randomBytes, randomUUID } from "node:crypto";
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type {
  Context,
  SQSBatchResponse,
  SQSEvent,
  SQSMessageAttributes,
  SQSRecord,
  SQSRecordAttributes,
} from "aws-lambda";

export type SqsBatchHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;

/** Where in the poll → invoke → delete cycle an error happened. */
export type SqsEventSourcePhase = "receive" | "handler" | "delete" | "release";

export interface SqsEventSourceOptions {
  readonly client: SQSClient;
  readonly queueUrl: string;
  /** Becomes each record's `eventSourceARN`; its region and account feed `awsRegion` and the context. */
  readonly queueArn: string;
  readonly handler: SqsBatchHandler;
  /** Most records per invocation (over 10 needs a batching window, as in Lambda). @default 10 */
  readonly batchSize?: number;
  /** How long to keep gathering records after the first one arrives, in ms. @default 0 */
  readonly maxBatchingWindowMs?: number;
  /** ReceiveMessage long-poll time, in seconds (0–20); also bounds how long `stop()` waits. @default 1 */
  readonly waitTimeSeconds?: number;
  /** Pollers running side by side, each with its own batch in flight. @default 1 */
  readonly concurrency?: number;
  /** Honour `batchItemFailures` in the handler's response; when false any resolved call deletes all. @default true */
  readonly reportBatchItemFailures?: boolean;
  /** `context.functionName`. @default "local-sqs-consumer" */
  readonly functionName?: string;
  /** Function timeout that `context.getRemainingTimeInMillis()` counts down from, in ms. @default 30000 */
  readonly timeoutMs?: number;
  /** Receives every error, including handler throws (which Lambda would log). @default console.error */
  readonly onError?: (error: unknown, phase: SqsEventSourcePhase) => void;
}

export interface SqsEventSourceStats {
  /** Handler invocations. */
  readonly batches: number;
  /** Records handed to the handler, redeliveries included. */
  readonly records: number;
  /** Records left on the queue for redelivery (reported failures, or every record of a failed batch). */
  readonly failures: number;
}

export interface SqsEventSource {
  /** Live counters. */
  readonly stats: SqsEventSourceStats;
  /**
   * Stops polling and resolves once every in-flight batch has been handled and deleted. Messages
   * received after the stop request are released (visibility 0) without invoking the handler.
   */
  stop(): Promise<void>;
}

const RECEIVE_LIMIT = 10;
const MAX_BACKOFF_MS = 5_000;

export function startSqsEventSource(options: SqsEventSourceOptions): SqsEventSource {
  const settings = checkOptions(options);
  const { region, account } = parseQueueArn(options.queueArn);
  const onError =
    options.onError ??
    ((error: unknown, phase: SqsEventSourcePhase) => console.error(`[sqs-event-source] ${phase} failed:`, error));
  const stats = { batches: 0, records: 0, failures: 0 };

  let stopped = false;
  const sleepers = new Set<() => void>();

  /** Sleeps `ms`, waking early on stop. */
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      sleepers.add(wake);
    });

  const receive = async (max: number, waitTimeSeconds: number): Promise<Message[]> => {
    const out = await options.client.send(
      new ReceiveMessageCommand({
        QueueUrl: options.queueUrl,
        MaxNumberOfMessages: Math.min(max, RECEIVE_LIMIT),
        WaitTimeSeconds: waitTimeSeconds,
        MessageSystemAttributeNames: ["All"],
        MessageAttributeNames: ["All"],
      }),
    );
    return out.Messages ?? [];
  };

  /** One batch as Lambda would gather it: a long poll, then top-ups until full or the window closes. */
  const collect = async (): Promise<Message[]> => {
    const batch = await receive(settings.batchSize, settings.waitTimeSeconds);
    if (batch.length === 0 || settings.maxBatchingWindowMs === 0) return batch;
    const deadline = Date.now() + settings.maxBatchingWindowMs;
    while (!stopped && batch.length < settings.batchSize && Date.now() < deadline) {
      const more = await receive(settings.batchSize - batch.length, 0);
      batch.push(...more);
      if (more.length === 0) await pause(Math.min(50, deadline - Date.now()));
    }
    return batch;
  };

  const changeVisibilityToZero = async (messages: readonly Message[]): Promise<void> => {
    for (const chunk of chunks(messages, RECEIVE_LIMIT)) {
      try {
        const out = await options.client.send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: options.queueUrl,
            Entries: chunk.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 })),
          }),
        );
        if (out.Failed?.length) onError(new Error(`ChangeMessageVisibilityBatch failed: ${JSON.stringify(out.Failed)}`), "release");
      } catch (error) {
        onError(error, "release");
      }
    }
  };

  const deleteMessages = async (messages: readonly Message[]): Promise<void> => {
    for (const chunk of chunks(messages, RECEIVE_LIMIT)) {
      try {
        const out = await options.client.send(
          new DeleteMessageBatchCommand({
            QueueUrl: options.queueUrl,
            Entries: chunk.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
          }),
        );
        if (out.Failed?.length) onError(new Error(`DeleteMessageBatch failed: ${JSON.stringify(out.Failed)}`), "delete");
      } catch (error) {
        onError(error, "delete");
      }
    }
  };

  const invoke = async (messages: readonly Message[]): Promise<void> => {
    const records = messages.map((m) => toRecord(m, options.queueArn, region));
    stats.batches += 1;
    stats.records += records.length;
    let failed: ReadonlySet<string>;
    try {
      const response = await options.handler(
        { Records: records },
        makeContext(settings.functionName, region, account, settings.timeoutMs),
      );
      failed = settings.reportBatchItemFailures ? failedIds(response, records) : new Set();
    } catch (error) {
      onError(error, "handler");
      failed = new Set(records.map((r) => r.messageId));
    }
    stats.failures += failed.size;
    await deleteMessages(messages.filter((m) => !failed.has(m.MessageId ?? "")));
  };

  const poll = async (): Promise<void> => {
    let backoffMs = 0;
    while (!stopped) {
      let messages: Message[];
      try {
        messages = await collect();
        backoffMs = 0;
      } catch (error) {
        if (stopped) break;
        onError(error, "receive");
        backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(100, backoffMs * 2));
        await pause(backoffMs);
        continue;
      }
      if (messages.length === 0) continue;
      if (stopped) {
        await changeVisibilityToZero(messages);
        break;
      }
      await invoke(messages);
    }
  };

  // `poll` catches everything it awaits, but a throwing `onError` must still not become an
  // unhandled rejection.
  const pollers = Array.from({ length: settings.concurrency }, () =>
    poll().catch((error: unknown) => console.error("[sqs-event-source] poller crashed:", error)),
  );
  let stopping: Promise<void> | undefined;

  return {
    stats,
    stop() {
      stopped = true;
      for (const wake of [...sleepers]) wake();
      stopping ??= Promise.all(pollers).then(() => undefined);
      return stopping;
    },
  };
}

/** Lambda's rules for a partial batch response: anything malformed fails the whole batch. */
function failedIds(response: unknown, records: readonly SQSRecord[]): ReadonlySet<string> {
  const all = new Set(records.map((r) => r.messageId));
  if (response === undefined || response === null) return new Set();
  if (typeof response !== "object") return all;
  const failures = (response as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return new Set();
  if (!Array.isArray(failures)) return all;
  const failed = new Set<string>();
  for (const item of failures as unknown[]) {
    const id = typeof item === "object" && item !== null ? (item as { itemIdentifier?: unknown }).itemIdentifier : undefined;
    if (typeof id !== "string" || id === "" || !all.has(id)) return all;
    failed.add(id);
  }
  return failed;
}

function toRecord(message: Message, queueArn: string, region: string): SQSRecord {
  const messageAttributes: SQSMessageAttributes = {};
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    // Key order as Lambda writes it; the list fields are always present and always empty.
    messageAttributes[name] = {
      ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
      ...(value.BinaryValue !== undefined ? { binaryValue: Buffer.from(value.BinaryValue).toString("base64") } : {}),
      stringListValues: [],
      binaryListValues: [],
      dataType: value.DataType ?? "String",
    };
  }
  return {
    messageId: message.MessageId ?? "",
    receiptHandle: message.ReceiptHandle ?? "",
    body: message.Body ?? "",
    attributes: { ...message.Attributes } as SQSRecordAttributes,
    messageAttributes,
    md5OfBody: message.MD5OfBody ?? "",
    ...(message.MD5OfMessageAttributes ? { md5OfMessageAttributes: message.MD5OfMessageAttributes } : {}),
    eventSource: "aws:sqs",
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

function makeContext(functionName: string, region: string, account: string, timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  const day = new Date().toISOString().slice(0, 10).replaceAll("-", "/");
  const callbackStyle = (): never => {
    throw new Error("context.done/fail/succeed are not supported by the local SQS event source; return a promise");
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:${region}:${account}:function:${functionName}`,
    memoryLimitInMB: "128",
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `${day}/[$LATEST]${randomBytes(16).toString("hex")}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: callbackStyle,
    fail: callbackStyle,
    succeed: callbackStyle,
  };
}

function parseQueueArn(arn: string): { region: string; account: string } {
  const match = /^arn:aws[a-z-]*:sqs:([a-z0-9-]+):(\d{12}):[\w.-]+$/.exec(arn);
  if (!match?.[1] || !match[2]) throw new TypeError(`queueArn is not an SQS queue ARN: ${JSON.stringify(arn)}`);
  return { region: match[1], account: match[2] };
}

interface Settings {
  readonly batchSize: number;
  readonly maxBatchingWindowMs: number;
  readonly waitTimeSeconds: number;
  readonly concurrency: number;
  readonly reportBatchItemFailures: boolean;
  readonly functionName: string;
  readonly timeoutMs: number;
}

function checkOptions(options: SqsEventSourceOptions): Settings {
  const settings: Settings = {
    batchSize: options.batchSize ?? 10,
    maxBatchingWindowMs: options.maxBatchingWindowMs ?? 0,
    waitTimeSeconds: options.waitTimeSeconds ?? 1,
    concurrency: options.concurrency ?? 1,
    reportBatchItemFailures: options.reportBatchItemFailures ?? true,
    functionName: options.functionName ?? "local-sqs-consumer",
    timeoutMs: options.timeoutMs ?? 30_000,
  };
  const intIn = (name: string, value: number, min: number, max: number): void => {
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
    }
  };
  intIn("batchSize", settings.batchSize, 1, 10_000);
  intIn("maxBatchingWindowMs", settings.maxBatchingWindowMs, 0, 300_000);
  intIn("waitTimeSeconds", settings.waitTimeSeconds, 0, 20);
  intIn("concurrency", settings.concurrency, 1, 1_000);
  intIn("timeoutMs", settings.timeoutMs, 1, 900_000);
  if (settings.batchSize > RECEIVE_LIMIT && settings.maxBatchingWindowMs === 0) {
    // Lambda's CreateEventSourceMapping rejects this combination too.
    throw new RangeError(`batchSize ${settings.batchSize} > 10 needs maxBatchingWindowMs > 0`);
  }
  return settings;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
