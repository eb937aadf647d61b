/**
 * @module
 * The message builder: a task call's options, the task's own and the app's defaults → the exact
 * `TaskMessage` Celery would publish. No I/O and no app: what it needs comes in as arguments, so
 * the app, a batch and the tests build messages the same way. Resolution order, as in Celery: call
 * options > task options > routes > app defaults > Celery's defaults.
 */
import { encodeTaskMessage } from "./protocol/encode.js";
import type { TaskFields } from "./protocol/fields.js";
import { instantFromDate, instantFromMillis, isoformat, millisOf, parseIso, type Instant } from "./protocol/isoformat.js";
import type { TaskMessage } from "./protocol/message.js";
import { checkApplyOptions, checkTaskName, type ApplyOptions, type CompressionName, type ProtocolVersion, type SendOptions, type Signature } from "./options.js";
import type { Router } from "./routing.js";
import { serializerNamed, type Serializers } from "./serializers/registry.js";

/** What the app contributes to every message it builds. */
export interface MessageDefaults {
  /** The app's routes and queues. */
  readonly router: Router;
  /** The app's serializers, by name. */
  readonly serializers: Serializers;
  /** `reply_to`: the app's oid. */
  readonly replyTo: string;
  /** The `origin` header. */
  readonly origin: string;
  /** `task_serializer`. @default "json" */
  readonly serializer?: string;
  /** `task_compression`. @default none */
  readonly compression?: CompressionName;
  /** `task_protocol`. @default 2 */
  readonly protocol?: ProtocolVersion;
  /** `task_default_priority`. @default unset */
  readonly defaultPriority?: number;
  /** `task_send_sent_event`. @default false */
  readonly taskSendSentEvent?: boolean;
}

const toInstant = (value: Date | string, field: string): Instant => (value instanceof Date ? instantFromDate(value) : parseIso(value, field));

const asList = (s: Signature | Signature[] | undefined): Signature[] | null => (s === undefined ? null : Array.isArray(s) ? s : [s]);

function definedOf<T extends object>(o: T): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out as Partial<T>;
}

/**
 * The message for one call of task `name`. Checks the name and the call's options first (the
 * task's were checked when it was declared). A promise only when compression needs one.
 */
export function buildTaskMessage(name: string, call: ApplyOptions, task: SendOptions, app: MessageDefaults): TaskMessage | Promise<TaskMessage> {
  checkTaskName(name);
  checkApplyOptions(call);
  const o: ApplyOptions = { ...task, ...definedOf(call) } as ApplyOptions;
  const now = Date.now();
  const args = o.args ?? [];
  const kwargs = o.kwargs ?? {};
  const id = o.taskId ?? crypto.randomUUID();

  let eta: Instant | null = null;
  if (o.countdown) eta = instantFromMillis(now + o.countdown * 1000);
  else if (o.eta !== undefined) eta = toInstant(o.eta, "eta");

  let expires: Instant | null = null;
  let expirationMs: number | undefined;
  if (o.expires !== undefined) {
    if (typeof o.expires === "number") {
      expires = instantFromMillis(now + o.expires * 1000);
      expirationMs = o.expires * 1000;
    } else {
      expires = toInstant(o.expires, "expires");
      expirationMs = millisOf(expires) - now;
    }
  }

  const dest = app.router.resolve(name, args, kwargs, { queue: o.queue, exchange: o.exchange, routingKey: o.routingKey, priority: o.priority });

  const fields: TaskFields = {
    id,
    name,
    args,
    kwargs,
    eta: eta ? isoformat(eta) : null,
    expires: expires ? isoformat(expires) : null,
    retries: o.retries ?? 0,
    timeLimit: o.timeLimit ?? null,
    softTimeLimit: o.softTimeLimit ?? null,
    rootId: o.rootId ?? id,
    parentId: o.parentId ?? null,
    groupId: null,
    groupIndex: null,
    shadow: o.shadow ?? null,
    ignoreResult: o.ignoreResult ?? false,
    origin: app.origin,
    callbacks: asList(o.link),
    errbacks: asList(o.linkError),
  };
  return encodeTaskMessage(fields, {
    protocol: o.protocol ?? app.protocol ?? 2,
    serializer: serializerNamed(app.serializers, o.serializer ?? app.serializer ?? "json"),
    compression: o.compression ?? app.compression,
    exchange: dest.exchange,
    routingKey: dest.routingKey,
    priority: dest.priority ?? app.defaultPriority ?? dest.defaultPriority,
    expirationMs,
    replyTo: app.replyTo,
    headers: o.headers,
    mandatory: o.mandatory ?? false,
    immediate: o.immediate ?? false,
    declare: dest.declare,
    sentEvent: app.taskSendSentEvent,
  });
}
