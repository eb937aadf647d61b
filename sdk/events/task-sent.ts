/**
 * @module
 * Celery's `task-sent` event (`task_send_sent_event`), as Celery 5.2's producer publishes it
 * (celery/app/amqp.py `send_task_message`, celery/events/dispatcher.py `EventDispatcher.publish`):
 * a JSON body to the `celeryev` topic exchange with routing key `task.sent`, transient
 * (delivery mode 1), priority 0, header `hostname`, the exchange declared first. Flower and
 * `celery events` read it to show a task as SENT before a worker has it.
 *
 * Pure: no I/O, no Node built-ins. Only the direct AMQP transport and the relay import it, so an
 * edge bundle that publishes through the SQS relay never carries it.
 */
import { dumpsJson } from "../serializers/json.js";
import { formatPyFloat, pyRepr } from "../protocol/python-repr.js";
import type { TaskFields } from "../protocol/fields.js";
import type { TaskMessage } from "../protocol/message.js";
import type { QueueDeclaration } from "../routing.js";

/** Celery's `event_exchange` default. */
export const EVENT_EXCHANGE = "celeryev";

/** kombu's `Exchange("celeryev", type="topic")`: durable, not auto-deleted, declared before each publish. */
export const EVENT_EXCHANGE_DECLARATION: QueueDeclaration = Object.freeze({ exchange: EVENT_EXCHANGE, exchangeType: "topic", routingKey: "", durable: true });

/** Celery's `argsrepr_maxsize` / `kwargsrepr_maxsize` (protocol 2). */
const REPR_MAXSIZE = 1024;

/** The task's part of the event: Celery's `sent_event` dict plus where the task went. */
export interface TaskSentFields {
  uuid: string;
  name: string;
  /** `argsrepr` (protocol 2) or `saferepr(args)` (protocol 1): text, never the values. */
  args: string;
  kwargs: string;
  retries: number;
  eta: string | null;
  expires: string | null;
  /** Protocol 2 only: Celery's protocol 1 event has no `root_id`/`parent_id` keys at all. */
  rootId?: string | null;
  parentId?: string | null;
  /** The queue's name; null when only an exchange was given, as in Celery. */
  queue: string | null;
  exchange: string;
  routingKey: string;
}

/** Who sends the event: the dispatcher's part of it. */
export interface EventSender {
  /** Celery's `anon_nodename()`, `gen<pid>@<host>`: the `origin` of the tasks this process sends. */
  hostname: string;
  /** The publishing process's id (Celery's `os.getpid()`). */
  pid: number;
  /** Lamport clock value; receivers replace it for `task-sent` (clients never sync clocks). */
  clock: number;
  /** When the event is made. @default now */
  now?: Date;
}

/**
 * Celery's `utcoffset()`: the local zone's offset in whole hours, positive west of UTC (Python's
 * `time.timezone // 3600`, floor division). Receivers shift `timestamp` by the difference to
 * theirs; edge runtimes and Lambda run in UTC, so 0 there.
 */
export function utcOffsetHours(at: Date): number {
  return Math.floor(at.getTimezoneOffset() / 60);
}

/** The event's fields for a call the SDK built (`meta.sentEvent`), published as `message`. */
export function sentFieldsOfCall(call: TaskFields, message: TaskMessage): TaskSentFields {
  // Protocol 2 carries the task name in the headers; protocol 1 in the body only.
  const v2 = message.properties.headers.task !== undefined;
  return {
    uuid: call.id,
    name: call.name,
    args: pyRepr(call.args, v2 ? REPR_MAXSIZE : undefined),
    kwargs: pyRepr(call.kwargs, v2 ? REPR_MAXSIZE : undefined),
    retries: call.retries,
    eta: call.eta,
    expires: call.expires,
    ...(v2 ? { rootId: call.rootId, parentId: call.parentId } : {}),
    // The router always names the queue it resolved, as Celery's router always expands one.
    queue: message.declare?.queue ?? null,
    exchange: message.exchange,
    routingKey: message.routingKey,
  };
}

/** The event body as kombu's json serializer writes Celery's `Event(...)` dict, key for key. */
function eventBody(f: TaskSentFields, from: EventSender, at: Date): string {
  const entries: Array<[string, string]> = [
    ["hostname", dumpsJson(from.hostname)],
    ["utcoffset", dumpsJson(utcOffsetHours(at))],
    ["pid", dumpsJson(from.pid)],
    ["clock", dumpsJson(from.clock)],
    ["uuid", dumpsJson(f.uuid)],
  ];
  if (f.rootId !== undefined) entries.push(["root_id", dumpsJson(f.rootId)], ["parent_id", dumpsJson(f.parentId ?? null)]);
  entries.push(
    ["name", dumpsJson(f.name)],
    ["args", dumpsJson(f.args)],
    ["kwargs", dumpsJson(f.kwargs)],
    ["retries", dumpsJson(f.retries)],
    ["eta", dumpsJson(f.eta)],
    ["expires", dumpsJson(f.expires)],
    ["queue", dumpsJson(f.queue)],
    ["exchange", dumpsJson(f.exchange)],
    ["routing_key", dumpsJson(f.routingKey)],
    // time.time(): always a float on the wire, even on a whole second.
    ["timestamp", formatPyFloat(at.getTime() / 1000)],
    ["type", '"task-sent"'],
  );
  return `{${entries.map(([k, v]) => `"${k}": ${v}`).join(", ")}}`;
}

/** The `task-sent` event for one task, as a message any transport can publish. */
export function taskSentEvent(fields: TaskSentFields, from: EventSender): TaskMessage {
  const at = from.now ?? new Date();
  return {
    exchange: EVENT_EXCHANGE,
    routingKey: "task.sent",
    mandatory: false,
    immediate: false,
    properties: {
      contentType: "application/json",
      contentEncoding: "utf-8",
      deliveryMode: 1,
      priority: 0,
      headers: { hostname: from.hostname },
    },
    body: new TextEncoder().encode(eventBody(fields, from, at)),
    declare: EVENT_EXCHANGE_DECLARATION,
    meta: { id: fields.uuid, name: fields.name, eta: null },
  };
}

/**
 * The events to publish after a batch: one for each message that asked for it (`meta.sentEvent`
 * holding the call's fields) and was accepted, in order. The hostname is the call's `origin`
 * (Celery's `anon_nodename()` for both); `next` gives the process id and clock for each event.
 */
export function sentEventsAfter(messages: readonly TaskMessage[], accepted: (i: number) => boolean, next: () => Omit<EventSender, "hostname">): TaskMessage[] {
  const events: TaskMessage[] = [];
  messages.forEach((m, i) => {
    const call = m.meta.sentEvent;
    if (typeof call === "object" && accepted(i)) events.push(taskSentEvent(sentFieldsOfCall(call, m), { ...next(), hostname: call.origin }));
  });
  return events;
}
