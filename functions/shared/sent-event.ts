/**
 * @module
 * The relay's `task-sent` event (Celery's `task_send_sent_event`) for a task whose envelope asked
 * for it (`sendSentEvent`). The envelope only asks; the event is made here from the message the
 * relay checked and just published (task id, name, eta and expires from the task view; args, kwargs,
 * retries, root and parent ids from the headers, or the protocol 1 body; the destination the policy
 * allowed), never from anything the sender wrote as event content. It is published after the task
 * is confirmed (or parked), only when the policy allows `sentEvents`; a failed event is logged and
 * never fails the record, whose task is already delivered.
 */
import { hostname } from "node:os";
import { taskSentEvent, type TaskSentFields } from "../../sdk/events/task-sent.js";
import { pyRepr } from "../../sdk/protocol/python-repr.js";
import type { TaskMessage } from "../../sdk/protocol/message.js";
import type { QueueDeclaration } from "../../sdk/routing.js";
import type { Transport } from "../../sdk/transport.js";
import type { ResolvedPolicy } from "./policy.js";
import { protocol1Body, type TaskView } from "./task-view.js";

/** Celery's `argsrepr_maxsize`: also the bound on any header text the event repeats. */
const MAX_REPR = 1024;
/** Longest root/parent id repeated (a Celery id is 36 characters; the task id is held to 255). */
const MAX_ID = 255;
/** The event is an extra: it may not hold a record up for long. */
const EVENT_TIMEOUT_MS = 5_000;

export interface SentEventDeps {
  broker: Transport;
  policy: ResolvedPolicy;
  logger: { warn(message: string, extra: Record<string, unknown>): void };
}

/**
 * Celery's `anon_nodename()` for this process: the event's `hostname` and `pid` name the relay that
 * published it, as Python's name the process that did. The task's `origin` header is the sender's
 * own unverified text, so it is not repeated as if the relay vouched for it.
 */
const nodename = (): string => `gen${process.pid}@${hostname()}`;

/** Lamport clock of this container's events (receivers replace it for `task-sent` anyway). */
let clock = 0;

/** Header text cut as saferepr cuts (`...`); anything not a string reads as absent. */
const text = (v: unknown, max: number): string | null => (typeof v === "string" ? (v.length > max ? `${v.slice(0, max - 3)}...` : v) : null);
/** An id is repeated whole or not at all: a cut id would name another task. */
const id = (v: unknown): string | null => (typeof v === "string" && v.length <= MAX_ID ? v : null);
const count = (v: unknown): number => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : 0);

/**
 * The event's fields, from the checked message: what the worker will itself report for the task
 * (its `task-received` event repeats `argsrepr`/`kwargsrepr` from the headers, or `saferepr` of the
 * protocol 1 body's args). Values of the wrong type read as the worker's defaults.
 */
export async function relayedSentFields(message: TaskMessage, view: TaskView, declare: QueueDeclaration | null): Promise<TaskSentFields> {
  const destination = {
    // The default exchange routes by queue name; otherwise the queue the policy declares, if any.
    queue: message.exchange === "" ? message.routingKey : (declare?.queue ?? null),
    exchange: message.exchange,
    routingKey: message.routingKey,
  };
  const task = { uuid: view.id, name: view.name, eta: view.eta, expires: view.expires };
  if (view.protocol === 2) {
    const h = message.properties.headers;
    return {
      ...task,
      args: text(h.argsrepr, MAX_REPR) ?? "",
      kwargs: text(h.kwargsrepr, MAX_REPR) ?? "",
      retries: count(h.retries),
      rootId: id(h.root_id),
      parentId: id(h.parent_id),
      ...destination,
    };
  }
  const body = await protocol1Body(message);
  return { ...task, args: pyRepr(body.args ?? [], MAX_REPR), kwargs: pyRepr(body.kwargs ?? {}, MAX_REPR), retries: count(body.retries), ...destination };
}

/**
 * Publishes the task's `task-sent` event when the envelope asked and the policy allows, and notes
 * the outcome in `log.sentEvent` ("published", "not allowed", "failed") for the record's log line.
 * Never throws.
 */
export async function publishSentEvent(
  message: TaskMessage,
  view: TaskView,
  declare: QueueDeclaration | null,
  deps: SentEventDeps,
  log: Record<string, unknown>,
): Promise<void> {
  if (message.meta.sentEvent === undefined) return;
  if (!deps.policy.sentEvents) {
    log.sentEvent = "not allowed";
    return;
  }
  try {
    const fields = await relayedSentFields(message, view, declare);
    const built = taskSentEvent(fields, { hostname: nodename(), pid: process.pid, clock: ++clock });
    // Celery's event exchange is fanout on Redis (celery/events/event.py, get_exchange): receivers
    // subscribe to it and bind nothing, so as a topic exchange the event would match no binding.
    const event = deps.broker.kind === "redis" && built.declare ? { ...built, declare: { ...built.declare, exchangeType: "fanout" as const } } : built;
    // On the events' own channel where the transport has one: a refused event cannot close the
    // channel other records' tasks are confirmed on.
    const [outcome] = deps.broker.publishEvents
      ? await deps.broker.publishEvents([event], { timeout: EVENT_TIMEOUT_MS })
      : await deps.broker.publishMany([event], { timeout: EVENT_TIMEOUT_MS });
    if (!outcome!.ok) throw outcome!.error;
    log.sentEvent = "published";
  } catch (err) {
    log.sentEvent = "failed";
    const reason = err instanceof Error ? err.message : String(err);
    deps.logger.warn("task-sent event failed (the task itself was published)", { ...log, code: (err as { code?: string }).code, reason: reason.slice(0, 256) });
  }
}
