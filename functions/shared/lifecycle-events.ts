/**
 * @module
 * Lifecycle events on EventBridge: `Task Parked`, `Task Released`, `Task Revoked`, `Task Rejected`
 * and `Task Dead-Lettered` (source `celery-edge`), for AWS-native tooling to react to what the relay
 * and the scheduler did with a task. Opt-in: the functions build a publisher only when
 * `EVENT_BUS_NAME` is set, and the EventBridge client is loaded on the first put, so a relay without
 * a bus never pays for it at cold start.
 *
 * Events are collected per invocation in a {@link LifecycleBatch} while the records are handled and
 * put once the batch is done, so a publish never waits for EventBridge. A put is best effort: a
 * failed call, or entries EventBridge reports failed, are retried a bounded number of times within
 * a time budget and then logged; nothing here throws into the handler or fails a record.
 *
 * A detail carries the task's id, name, eta and destination, and why a record was refused, each
 * string cut to {@link DETAIL_FIELD_MAX}: never args, kwargs or anything else from the body.
 */
import type { EventBridgeClient, EventBridgeClientConfig, PutEventsRequestEntry, PutEventsResultEntry } from "@aws-sdk/client-eventbridge";
import { CeleryError, ConnectionError, EnvelopeError, PayloadTooLargeError, PolicyError, PublishError, TimeoutError } from "../../sdk/errors.js";
import type { TaskMessage } from "../../sdk/protocol/message.js";

/** `source` of every event. */
export const EVENT_SOURCE = "celery-edge";

export type LifecycleDetailType = "Task Parked" | "Task Released" | "Task Revoked" | "Task Rejected" | "Task Dead-Lettered";

/** Longest string an event's detail carries (as the relay's log fields). */
export const DETAIL_FIELD_MAX = 256;
/** Events one invocation keeps; more are counted as dropped (a batch of 10 revokes of 100 ids each fits). */
export const MAX_EVENTS_PER_INVOCATION = 1_000;
/** PutEvents limits: entries per call, and bytes per call as EventBridge counts them. */
export const PUT_EVENTS_MAX_ENTRIES = 10;
export const PUT_EVENTS_MAX_BYTES = 256 * 1024;
/** Entry error codes EventBridge documents as retryable; the others (AccessDenied, MalformedDetail…) are not. */
const RETRYABLE_ENTRY_CODES = new Set(["InternalFailure", "ThrottlingException"]);

/** What an event says about the task. All optional: a refused record may not name a task at all. */
export interface TaskFields {
  taskId?: string;
  taskName?: string;
  /** ISO 8601, or null when the task has no ETA. */
  eta?: string | null;
  /** The queue, when the message names it (its declaration, or the default exchange's routing key). */
  queue?: string;
  exchange?: string;
  routingKey?: string;
}

export interface LifecycleDetail extends TaskFields {
  /** The SQS message the event is about (to find the function's log lines). */
  messageId?: string;
  /** `ApproximateReceiveCount` of that message. */
  receiveCount?: number;
  /** The error's stable code (`ERR_POLICY`, `ERR_ENVELOPE`…). */
  code?: string;
  /** Why it was refused or failed, in the function's own words. */
  reason?: string;
  /** Task Parked: when the schedule fires (ISO 8601). */
  fireAt?: string;
  /** Task Revoked: true when a parked schedule was deleted, false when the revoke was broadcast to the workers. */
  parked?: boolean;
  /** Task Dead-Lettered: the queue's maxReceiveCount. */
  maxReceiveCount?: number;
}

/** The task fields of a message, from its (checked) summary and destination. */
export function taskFields(m: TaskMessage): TaskFields {
  const queue = m.declare?.queue ?? (m.exchange === "" ? m.routingKey : undefined);
  return { taskId: m.meta.id, taskName: m.meta.name, eta: m.meta.eta, exchange: m.exchange, routingKey: m.routingKey, ...(queue !== undefined ? { queue } : {}) };
}

/** A record the function failed (it will come back, or go to the dead-letter queue). */
export interface RecordFailure {
  err: unknown;
  /** Refused for its own content (it will never pass): the policy or the envelope checks. */
  poison: boolean;
  messageId: string;
  receiveCount: number;
  task: TaskFields;
}

/** Where the functions' record handlers report lifecycle events. */
export interface LifecycleSink {
  emit(type: LifecycleDetailType, detail: LifecycleDetail): void;
  /**
   * A record failed on this receive. A refusal is the same on every receive (and a refused record
   * comes back at once until it is dead-lettered), so `Task Rejected` is emitted on its first
   * receive only; `Task Dead-Lettered` on the receive that reaches the queue's maxReceiveCount,
   * whatever the failure, as SQS moves the record to the dead-letter queue after it.
   */
  failed(failure: RecordFailure): void;
}

interface PendingEvent {
  type: LifecycleDetailType;
  detail: string;
  time: Date;
}

/** One invocation's events, oldest first, at most {@link MAX_EVENTS_PER_INVOCATION}. */
export class LifecycleBatch implements LifecycleSink {
  readonly events: PendingEvent[] = [];
  /** Events over the cap, not kept. */
  dropped = 0;

  constructor(private readonly options: { emitter: "relay" | "scheduler"; maxReceiveCount: number }) {}

  emit(type: LifecycleDetailType, detail: LifecycleDetail): void {
    if (this.events.length >= MAX_EVENTS_PER_INVOCATION) {
      this.dropped++;
      return;
    }
    this.events.push({ type, detail: JSON.stringify(bounded({ ...detail, emitter: this.options.emitter })), time: new Date() });
  }

  failed(f: RecordFailure): void {
    const receiveCount = Number.isFinite(f.receiveCount) && f.receiveCount >= 1 ? Math.floor(f.receiveCount) : 1;
    const detail: LifecycleDetail = { ...f.task, messageId: f.messageId, receiveCount, ...reasonOf(f.err) };
    if (f.poison && receiveCount === 1) this.emit("Task Rejected", detail);
    if (receiveCount >= this.options.maxReceiveCount) this.emit("Task Dead-Lettered", { ...detail, maxReceiveCount: this.options.maxReceiveCount });
  }
}

/**
 * The code, and the message only of errors whose wording is the functions' own: refusals quote
 * header fields (clipped) at most, and broker failures name the destination. A decoder's message
 * may quote the body, and an AWS error's may echo a request member, so those give their code only.
 */
export function reasonOf(err: unknown): { code?: string; reason?: string } {
  const code = err instanceof CeleryError ? err.code : undefined;
  const ours = [PolicyError, EnvelopeError, PayloadTooLargeError, PublishError, ConnectionError, TimeoutError].some((c) => err instanceof c);
  return { ...(code !== undefined ? { code } : {}), ...(ours ? { reason: (err as Error).message } : {}) };
}

const cutField = (s: string): string => (s.length > DETAIL_FIELD_MAX ? `${s.slice(0, DETAIL_FIELD_MAX)}…` : s);

/** Every string cut; only the known fields, whatever a caller spread in. */
function bounded(d: LifecycleDetail & { emitter: string }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const keys = ["emitter", "taskId", "taskName", "eta", "queue", "exchange", "routingKey", "messageId", "receiveCount", "maxReceiveCount", "code", "reason", "fireAt", "parked"] as const;
  for (const k of keys) {
    const v = d[k];
    if (typeof v === "string") out[k] = cutField(v);
    else if (typeof v === "number" || typeof v === "boolean" || v === null) out[k] = v;
  }
  return out;
}

export interface EventBusLogger {
  warn(message: string, extra: Record<string, unknown>): void;
}

export interface EventBusPublisherOptions {
  /** Name or ARN of the bus (`EVENT_BUS_NAME`). */
  eventBusName: string;
  logger: EventBusLogger;
  /** PutEvents calls per group of entries, the first included. @default 3 */
  attempts?: number;
  /** Wait before the first retry, in ms; doubled for each next one. @default 100 */
  backoffMs?: number;
  /** Longest one PutEvents call may take, in ms. @default 2000 */
  callTimeoutMs?: number;
  /** Client settings (tests point `endpoint` at a stand-in); the region and credentials come from the environment otherwise. */
  clientConfig?: EventBridgeClientConfig;
}

/** What one `put` did. */
export interface PutReport {
  put: number;
  /** Entries not put after the retries (or not tried for lack of time), dropped ones included. */
  failed: number;
  /** PutEvents calls made. */
  calls: number;
}

interface SizedEntry {
  entry: PutEventsRequestEntry;
  bytes: number;
}

const utf8Bytes = (s: string | undefined): number => (s === undefined ? 0 : new TextEncoder().encode(s).length);

/** Puts batches of lifecycle events on one bus with the real EventBridge client, loaded on first use. */
export class EventBusPublisher {
  private client: Promise<{ client: EventBridgeClient; command: typeof import("@aws-sdk/client-eventbridge").PutEventsCommand }> | undefined;

  constructor(private readonly options: EventBusPublisherOptions) {}

  /**
   * Puts the batch's events in calls of at most 10 entries and 256 KB, retrying failed calls and
   * failed entries with backoff, within `budgetMs`. Never throws; what could not be put is logged.
   */
  async put(batch: LifecycleBatch, budgetMs: number): Promise<PutReport> {
    const report: PutReport = { put: 0, failed: batch.dropped, calls: 0 };
    const codes = new Set<string>();
    if (batch.events.length === 0) return this.logged(report, codes);
    const deadline = Date.now() + Math.max(0, budgetMs);
    const entries = batch.events.map((e) => this.sized(e));
    for (const group of groups(entries)) {
      let todo = group;
      for (let attempt = 1; todo.length > 0 && attempt <= (this.options.attempts ?? 3); attempt++) {
        if (attempt > 1) await sleep(Math.min((this.options.backoffMs ?? 100) * 2 ** (attempt - 2), deadline - Date.now()));
        const left = deadline - Date.now();
        if (left <= 0) break;
        report.calls++;
        const outcome = await this.call(
          todo.map((t) => t.entry),
          Math.min(left, this.options.callTimeoutMs ?? 2_000),
        );
        if ("error" in outcome) {
          codes.add(outcome.error);
          if (!outcome.retryable) break;
          continue;
        }
        const retry: SizedEntry[] = [];
        todo.forEach((t, i) => {
          const code = outcome.failed.get(i);
          if (code === undefined) report.put++;
          else {
            codes.add(code);
            if (RETRYABLE_ENTRY_CODES.has(code)) retry.push(t);
            else report.failed++;
          }
        });
        todo = retry;
      }
      report.failed += todo.length;
    }
    return this.logged(report, codes);
  }

  private logged(report: PutReport, codes: Set<string>): PutReport {
    if (report.failed > 0) {
      this.options.logger.warn("lifecycle events not put", { failed: report.failed, put: report.put, calls: report.calls, codes: [...codes].slice(0, 10).map(cutField) });
    }
    return report;
  }

  private sized(e: PendingEvent): SizedEntry {
    const entry: PutEventsRequestEntry = { Source: EVENT_SOURCE, DetailType: e.type, Detail: e.detail, EventBusName: this.options.eventBusName, Time: e.time };
    // As EventBridge counts an entry: Time is 14 bytes, the strings their UTF-8 bytes.
    return { entry, bytes: 14 + utf8Bytes(entry.Source) + utf8Bytes(entry.DetailType) + utf8Bytes(entry.Detail) };
  }

  /** One PutEvents call: entry index → error code for the failed entries, or why the call failed. */
  private async call(entries: PutEventsRequestEntry[], timeoutMs: number): Promise<{ failed: Map<number, string> } | { error: string; retryable: boolean }> {
    try {
      this.client ??= import("@aws-sdk/client-eventbridge").then((m) => ({
        // Retries are this module's (for failed entries too), so the SDK's own are off.
        client: new m.EventBridgeClient({ maxAttempts: 1, ...this.options.clientConfig }),
        command: m.PutEventsCommand,
      }));
      const { client, command } = await this.client;
      const out = await client.send(new command({ Entries: entries }), { abortSignal: AbortSignal.timeout(timeoutMs) });
      const failed = new Map<number, string>();
      const results: Array<PutEventsResultEntry | undefined> = out.Entries ?? [];
      entries.forEach((_, i) => {
        const r = results[i];
        if (r?.ErrorCode) failed.set(i, r.ErrorCode);
        // A response that does not account for an entry while reporting failures: try it again.
        else if (r === undefined && (out.FailedEntryCount ?? 0) > 0) failed.set(i, "InternalFailure");
      });
      return { failed };
    } catch (err) {
      return { error: errorName(err), retryable: isRetryable(err) };
    }
  }
}

/** Groups of at most 10 entries and 256 KB, in order. */
function groups(entries: SizedEntry[]): SizedEntry[][] {
  const out: SizedEntry[][] = [];
  let current: SizedEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (current.length === PUT_EVENTS_MAX_ENTRIES || (current.length > 0 && bytes + e.bytes > PUT_EVENTS_MAX_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(e);
    bytes += e.bytes;
  }
  if (current.length > 0) out.push(current);
  return out;
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : "Error";
}

/** Throttling, a server error or no answer (network, timeout) may pass later; a 4xx refusal will not. */
function isRetryable(err: unknown): boolean {
  const e = err as { name?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  if (e.$retryable || e.name === "ThrottlingException") return true;
  const status = e.$metadata?.httpStatusCode;
  return status === undefined || status === 429 || status >= 500;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
