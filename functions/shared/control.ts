/**
 * @module
 * The one control message a sender may reach workers with: Celery's broadcast `revoke`, in exactly
 * the shape `app.control.revoke()` sends (kombu Mailbox on `celery.pidbox`). `terminate`, other
 * signals, replies, pattern matching and every other method (`shutdown`, `pool_restart`,
 * `add_consumer`, `rate_limit`…) are refused: they would let an intake sender steer the fleet.
 */
import { EnvelopeError, PolicyError } from "../../sdk/errors.js";
import type { TaskMessage } from "../../sdk/protocol/message.js";
import { PIDBOX_EXCHANGE, REVOKE_TASK_NAME } from "../../sdk/revoke.js";
import { clip } from "./task-view.js";

/** Task ids one revoke may name. */
export const MAX_REVOKE_IDS = 100;

const BODY_KEYS = new Set(["method", "arguments", "destination", "pattern", "matcher"]);
const ARGUMENT_KEYS = new Set(["task_id", "terminate", "signal"]);
const HEADER_KEYS = new Set(["clock", "expires"]);

/** Whether the envelope is addressed to Celery's broadcast mailbox (and so must be a revoke). */
export function isControlEnvelope(m: TaskMessage): boolean {
  return m.exchange === PIDBOX_EXCHANGE || m.meta.name === REVOKE_TASK_NAME;
}

function refuse(why: string): never {
  throw new PolicyError(`control message refused: ${why}`);
}

/** The task ids of a well-formed revoke; throws `PolicyError` for anything else on the control plane. */
export function readRevoke(m: TaskMessage): string[] {
  if (m.exchange !== PIDBOX_EXCHANGE || m.routingKey !== "") refuse(`only a broadcast to ${PIDBOX_EXCHANGE} with routing key "" may carry a revoke`);
  const p = m.properties;
  if (p.contentType !== "application/json" || p.contentEncoding !== "utf-8") refuse("a revoke must be JSON");
  for (const [k, v] of Object.entries(p.headers)) {
    if (!HEADER_KEYS.has(k) || typeof v !== "number") refuse(`header ${clip(k)} is not one kombu's mailbox sends`);
  }
  if (p.replyTo !== undefined || p.correlationId !== undefined) refuse("a revoke takes no reply");
  // kombu's mailbox sets no TTL, and the relay publishes revokes unchecked by checkForBroker: a bad
  // expiration would close the channel under the record's batch-mates.
  if (p.expiration !== undefined) refuse("a revoke takes no expiration");
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(m.body));
  } catch {
    throw new EnvelopeError("invalid envelope: revoke body is not JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) refuse("body must be a mapping");
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!BODY_KEYS.has(k)) refuse(`body field ${clip(k)} is not allowed`);
  if (b.method !== "revoke") refuse(`method ${clip(b.method)} is not allowed (only "revoke")`);
  if (b.pattern != null || b.matcher != null) refuse("pattern matching of destinations is not allowed");
  if (b.destination != null && !(Array.isArray(b.destination) && b.destination.every((d) => typeof d === "string" && d.length <= 255))) {
    refuse("destination must be null or a list of worker names");
  }
  const a = b.arguments;
  if (typeof a !== "object" || a === null || Array.isArray(a)) refuse("arguments must be a mapping");
  const args = a as Record<string, unknown>;
  for (const k of Object.keys(args)) if (!ARGUMENT_KEYS.has(k)) refuse(`argument ${clip(k)} is not allowed`);
  if (args.terminate !== undefined && args.terminate !== false) refuse("terminate is not allowed");
  // Celery sends its default signal name even when not terminating; it is inert then.
  if (args.signal !== undefined && args.signal !== null && args.signal !== "SIGTERM") refuse("a signal is not allowed");
  const raw = args.task_id;
  const ids = typeof raw === "string" ? [raw] : raw;
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_REVOKE_IDS) refuse(`task_id must be a task id or a list of 1-${MAX_REVOKE_IDS} of them`);
  for (const id of ids) if (typeof id !== "string" || id.length === 0 || id.length > 255) refuse("every task id must be a string of 1-255 characters");
  if (!ids.includes(m.meta.id)) throw new EnvelopeError(`invalid envelope: task.id ${clip(m.meta.id)} is not among the revoked ids`);
  return ids as string[];
}
