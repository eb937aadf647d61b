/**
 * @module
 * The relay's work for one SQS record. The intake queue is reachable with keys edge platforms hold,
 * so every record is hostile until shown otherwise: the envelope is decoded, the task is read from
 * the message as the worker will read it (its summary must agree), every property RabbitMQ could
 * choke on is checked, and the relay policy decides what may pass and what is declared. Then the
 * exact message is published on a confirm channel, or a far-ETA task is handed to the scheduler.
 * Throws on any failure so the batch processor reports this record, and only it, for redelivery.
 */
import type { SQSRecord } from "aws-lambda";
import { readEnvelope } from "../../sdk/wire/envelope.js";
import { CeleryError, EnvelopeError, PolicyError, PayloadTooLargeError, SerializationError } from "../../sdk/errors.js";
import type { TaskMessage } from "../../sdk/protocol/message.js";
import { isFarEta } from "../../sdk/wire/parking.js";
import { PIDBOX_DECLARATION } from "../../sdk/revoke.js";
import type { Transport } from "../../sdk/transport.js";
import { isControlEnvelope, readRevoke } from "../shared/control.js";
import { DEFAULT_RETRY_BACKOFF } from "../shared/environment.js";
import { taskFields, type LifecycleSink, type TaskFields } from "../shared/lifecycle-events.js";
import { checkTask, isPrincipal, mayRevoke, type ResolvedPolicy } from "../shared/policy.js";
import { publishSentEvent } from "../shared/sent-event.js";
import { agreeWithSummary, checkForBroker, clip, readTaskView } from "../shared/task-view.js";

export interface RelayLogger {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
  error(message: string, extra: Record<string, unknown>): void;
}

export interface RelayDeps {
  broker: Transport;
  policy: ResolvedPolicy;
  /** Role ids (the scheduler function's) whose records speak for the sender named in the envelope. */
  trustedForwarders: readonly string[];
  /** Where far-ETA tasks and revokes go (the scheduler function's queue). */
  park?: { transport: Transport; thresholdSeconds: number };
  forceMandatory: boolean;
  logger: RelayLogger;
  /** Sets how long until a failed record comes back (ChangeMessageVisibility). */
  backoff?: (record: SQSRecord, seconds: number) => Promise<void>;
  retry?: { baseSeconds: number; maxSeconds: number };
  /** Serializes retries after a channel error, so a record that breaks the channel breaks only itself. */
  solo?: Mutex;
  now?: () => number;
  /** This invocation's lifecycle events (only when an event bus is configured). */
  events?: LifecycleSink;
}

export type RelayAction = "published" | "parked" | "forwarded";

/** Longest attacker-influenced string a log line carries. */
export const LOG_FIELD_MAX = 256;

/** A one-at-a-time lock for the retries of one relay container. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/** Cuts an attacker-influenced string for a log field. */
export const cut = (s: string): string => (s.length > LOG_FIELD_MAX ? `${s.slice(0, LOG_FIELD_MAX)}…` : s);

/** Refusals of the record itself: it will never pass, so it should reach the DLQ without waiting. */
export function isPoison(err: unknown): boolean {
  return err instanceof EnvelopeError || err instanceof PolicyError || err instanceof PayloadTooLargeError || err instanceof SerializationError;
}

/** Visibility for a record that failed for the broker's sake: doubles per receive, capped. */
export function backoffSeconds(receiveCount: number, retry: { baseSeconds: number; maxSeconds: number }): number {
  const n = Math.max(1, Math.min(receiveCount, 32));
  return Math.min(Math.round(retry.baseSeconds * 2 ** (n - 1)), retry.maxSeconds);
}

/** The sender the policy judges: the record's own, or, from a trusted forwarder, the one it names. */
export function senderOf(record: SQSRecord, claimed: string | undefined, forwarders: readonly string[]): { sender: string | undefined; forwarded: boolean } {
  const senderId = record.attributes?.SenderId;
  if (forwarders.some((f) => isPrincipal(senderId, f))) {
    if (claimed === undefined) throw new EnvelopeError("invalid envelope: a forwarded envelope must name its sender");
    return { sender: claimed, forwarded: true };
  }
  return { sender: senderId, forwarded: false };
}

async function decide(record: SQSRecord, deps: RelayDeps, log: Record<string, unknown>, task: TaskFields): Promise<RelayAction> {
  const { message: raw, sender: claimed, stage } = readEnvelope(record.body);
  // The summary as claimed, for a Task Rejected event should a check below refuse the record.
  Object.assign(task, taskFields(raw));
  const { sender, forwarded } = senderOf(record, claimed, deps.trustedForwarders);
  log.sender = sender === undefined ? undefined : cut(sender);

  if (isControlEnvelope(raw)) {
    const ids = readRevoke(raw);
    log.taskId = cut(ids.join(","));
    log.taskName = "celery.control.revoke";
    if (!mayRevoke(deps.policy, sender)) throw new PolicyError("revokes are not allowed for this sender by the policy");
    const message: TaskMessage = { ...raw, declare: PIDBOX_DECLARATION, mandatory: false, immediate: false, meta: { ...raw.meta, sender: sender ?? "" } };
    // A parked task may be cancelled only by whoever parked it; the scheduler knows who did, so it
    // sees every revoke first and hands back (as `broadcast`) what should reach the workers.
    const viaScheduler = deps.park && deps.trustedForwarders.length > 0 && !(forwarded && stage === "broadcast");
    if (viaScheduler) {
      const { stage: _stage, ...meta } = message.meta;
      await deps.park!.transport.publish({ ...message, meta });
      deps.logger.info("revoke handed to the scheduler", log);
      return "forwarded";
    }
    await deps.broker.publish(message);
    // Without trusted forwarders the scheduler's hand-back (marked broadcast) cannot be told from
    // a sender's claim; either way it has been broadcast now, and sending it to the scheduler again
    // would bounce it back for ever. An untrusted claim only skips deleting the sender's own schedules.
    if (deps.park && !forwarded && stage !== "broadcast") await deps.park.transport.publish(message);
    deps.logger.info("revoke broadcast", log);
    // Revoked where it takes effect: here once broadcast to the workers; a revoke handed to the
    // scheduler is reported by it (a deleted schedule) or comes back here to be broadcast.
    for (const id of ids) deps.events?.emit("Task Revoked", { taskId: id, parked: false });
    return "published";
  }

  checkForBroker(raw);
  const ask = { exchange: raw.exchange, routingKey: raw.routingKey, task: "", contentType: raw.properties.contentType, senderId: sender };
  const refused = (why: string): PolicyError =>
    new PolicyError(`${why}: exchange ${clip(raw.exchange)}, routing key ${clip(raw.routingKey)}, content type ${clip(raw.properties.contentType)}`);
  // Control plane, destination and content type before the body: a body the policy would refuse
  // anyway is never decoded.
  const early = checkTask(deps.policy, ask, { anyTask: true });
  if ("refused" in early) throw refused(early.refused);
  const view = await readTaskView(raw);
  const meta = agreeWithSummary(view, raw.meta);
  log.taskId = cut(meta.id);
  log.taskName = cut(meta.name);
  const verdict = checkTask(deps.policy, { ...ask, task: meta.name });
  if ("refused" in verdict) throw refused(verdict.refused);

  const now = deps.now?.() ?? Date.now();
  if (deps.park && isFarEta(meta, deps.park.thresholdSeconds, now)) {
    const { stage: _ignored, ...rest } = meta;
    await deps.park.transport.publish({ ...raw, declare: null, meta: { ...rest, sender: sender ?? "" } });
    // Sent, as far as the sender can tell: Celery too sends task-sent when a task with an ETA leaves.
    await publishSentEvent(raw, view, verdict.declare, deps, log);
    deps.logger.info("parked far-ETA task", { ...log, eta: meta.eta });
    // No Task Parked here: the scheduler emits it once the schedule exists (SDK-parked tasks too).
    return "parked";
  }
  const message: TaskMessage = { ...raw, declare: verdict.declare, mandatory: deps.forceMandatory || raw.mandatory, meta };
  await publishIsolated(message, deps);
  await publishSentEvent(raw, view, verdict.declare, deps, log);
  deps.logger.info("published", { ...log, exchange: cut(raw.exchange), routingKey: cut(raw.routingKey) });
  return "published";
}

/**
 * A channel error fails every publish in flight on that channel. Records that lost their channel
 * that way are retried here, one at a time, so the record that caused it fails alone and the
 * others are published in this invocation rather than reported failed.
 */
async function publishIsolated(message: TaskMessage, deps: RelayDeps): Promise<void> {
  try {
    await deps.broker.publish(message);
  } catch (err) {
    if (!deps.solo || !(err instanceof CeleryError) || err.code !== "ERR_CHANNEL_CLOSED") throw err;
    await deps.solo.run(() => deps.broker.publish(message));
  }
}

export async function relayRecord(record: SQSRecord, deps: RelayDeps): Promise<RelayAction> {
  const log: Record<string, unknown> = { messageId: record.messageId, receiveCount: record.attributes?.ApproximateReceiveCount };
  const task: TaskFields = {};
  try {
    return await decide(record, deps, log, task);
  } catch (err) {
    const poison = isPoison(err);
    deps.events?.failed({ err, poison, messageId: record.messageId, receiveCount: Number(record.attributes?.ApproximateReceiveCount ?? 1), task });
    const code = (err as { code?: string }).code;
    const reason = cut(err instanceof Error ? err.message : String(err));
    deps.logger.error(poison ? "rejected envelope" : "publish failed", { ...log, code, reason });
    if (deps.backoff) {
      const seconds = poison ? 0 : backoffSeconds(Number(record.attributes?.ApproximateReceiveCount ?? 1), deps.retry ?? DEFAULT_RETRY_BACKOFF);
      await deps.backoff(record, seconds).catch((e: unknown) => deps.logger.warn("could not change the record's visibility", { ...log, reason: cut(String(e)) }));
    }
    throw err;
  }
}
