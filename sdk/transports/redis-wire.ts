/**
 * @module
 * kombu's Redis transport, as data (universal: no Node built-ins, so the relay and an edge REST
 * client share it). What goes on the wire is kombu 5.2's (`transport/redis.py`,
 * `transport/virtual/base.py`), checked against Python's own writes in
 * `test/fixtures/redis-vectors/`:
 *
 * - a queue is a list; a message is `LPUSH`ed as JSON, one list per priority step: `<queue>` for
 *   the step 0, `<queue><sep><step>` for the others (`_q_for_pri`);
 * - exchanges live in sets `_kombu.binding.<exchange>` of `<routing key><sep><pattern><sep><queue>`;
 *   fanout goes over `PUBLISH` on `/<db>.<exchange>[/<routing key>]`;
 * - `global_keyprefix` goes in front of every key and channel.
 */
import { toBase64 } from "../base64.js";
import { ConfigurationError } from "../errors.js";
import type { TaskMessage } from "../protocol/message.js";

/** kombu's `Channel.sep`. */
export const KOMBU_SEP = "\x06\x16";
/** kombu's `PRIORITY_STEPS`. */
export const KOMBU_PRIORITY_STEPS: readonly number[] = Object.freeze([0, 3, 6, 9]);
/** kombu's `Channel.visibility_timeout`, in seconds. */
export const KOMBU_VISIBILITY_TIMEOUT = 3600;

/**
 * The workers' `broker_transport_options` that decide where a producer writes. Names are kombu's
 * (snake_case) so a Python config can be pasted as is; options that only matter to a consumer
 * (`queue_order_strategy`, `unacked_*`, …) are accepted and ignored.
 */
export interface RedisTransportOptions {
  /** Prefix of every key and channel, e.g. `"celery:"`. Must equal the workers'. @default "" */
  global_keyprefix?: string;
  /** Separator inside binding members and priority queue names. Must equal the workers'. @default "\x06\x16" */
  sep?: string;
  /** The priority steps: one list per step. Must equal the workers'. @default [0, 3, 6, 9] */
  priority_steps?: readonly number[];
  /**
   * Seconds a worker may hold a task before Redis gives it to another worker: a task whose ETA or
   * countdown is further away than this may run twice (kombu's `visibility_timeout`). The producer
   * writes nothing with it; it is kept so far-ETA parking can take it as its threshold. @default 3600
   */
  visibility_timeout?: number;
  /** `true`: fanout channels start `/<db>.`; a string replaces that prefix; `false`: none. @default true */
  fanout_prefix?: boolean | string;
  /** Append `/<routing key>` to fanout channels (workers psubscribe to patterns). @default true */
  fanout_patterns?: boolean;
  /** Seconds a command may wait for its answer (the transport's `publishTimeout`). @default none */
  socket_timeout?: number;
  /** Seconds connecting may take (the transport's `connectTimeout`). @default none */
  socket_connect_timeout?: number;
  [option: string]: unknown;
}

/** kombu's Redis key layout, resolved once per transport. */
export interface RedisLayout {
  readonly prefix: string;
  readonly sep: string;
  readonly steps: readonly number[];
  /** Fanout channel prefix after `global_keyprefix` (`/<db>.`), or "" */
  readonly fanoutPrefix: string;
  readonly fanoutPatterns: boolean;
  readonly visibilityTimeout: number;
}

const isSeconds = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v > 0;

/** Checks `brokerTransportOptions` for a Redis broker on database `db`; a bad value is a `ConfigurationError` naming it. */
export function redisLayout(options: RedisTransportOptions | undefined, db: number): RedisLayout {
  const o = options ?? {};
  const bad = (name: string, want: string): never => {
    throw new ConfigurationError(`brokerTransportOptions.${name} must be ${want}, got ${JSON.stringify(o[name])?.slice(0, 80)}`, { code: "ERR_INVALID_OPTION" });
  };
  if (o.global_keyprefix !== undefined && typeof o.global_keyprefix !== "string") bad("global_keyprefix", "a string");
  if (o.sep !== undefined && (typeof o.sep !== "string" || o.sep === "")) bad("sep", "a non-empty string");
  const steps = o.priority_steps ?? KOMBU_PRIORITY_STEPS;
  if (!Array.isArray(steps) || steps.length === 0 || steps.length > 256 || !steps.every((s) => Number.isSafeInteger(s))) bad("priority_steps", "a non-empty list of integers");
  for (let i = 1; i < steps.length; i++) if (steps[i]! <= steps[i - 1]!) bad("priority_steps", "in ascending order");
  if (o.visibility_timeout !== undefined && !isSeconds(o.visibility_timeout)) bad("visibility_timeout", "a number of seconds above 0");
  if (o.fanout_prefix !== undefined && typeof o.fanout_prefix !== "boolean" && typeof o.fanout_prefix !== "string") bad("fanout_prefix", "a boolean or a string");
  if (o.fanout_patterns !== undefined && typeof o.fanout_patterns !== "boolean") bad("fanout_patterns", "a boolean");
  for (const name of ["socket_timeout", "socket_connect_timeout"] as const) if (o[name] !== undefined && !isSeconds(o[name])) bad(name, "a number of seconds above 0");
  // kombu formats `{db}` into the prefix once the connection's database is known (`_get_pool`).
  const fanout = o.fanout_prefix === false ? "" : typeof o.fanout_prefix === "string" ? o.fanout_prefix : "/{db}.";
  return Object.freeze({
    prefix: o.global_keyprefix ?? "",
    sep: o.sep ?? KOMBU_SEP,
    steps: Object.freeze([...steps]),
    fanoutPrefix: fanout.split("{db}").join(String(db)),
    fanoutPatterns: o.fanout_patterns ?? true,
    visibilityTimeout: o.visibility_timeout ?? KOMBU_VISIBILITY_TIMEOUT,
  });
}

/** The priority a kombu consumer reads off a message: the property as an integer in 0..9, else 0 (`_get_message_priority`). */
export function messagePriority(m: TaskMessage): number {
  const p = m.properties.priority;
  if (p === undefined || !Number.isFinite(p)) return 0;
  return Math.max(0, Math.min(9, Math.trunc(p)));
}

/** The step a priority lands on (`Channel.priority`: the last step at or below it; below the first step, the last step, as Python's `steps[-1]`). */
export function priorityStep(layout: RedisLayout, priority: number): number {
  const steps = layout.steps;
  let i = 0;
  while (i < steps.length && steps[i]! <= priority) i++;
  return i === 0 ? steps[steps.length - 1]! : steps[i - 1]!;
}

/** The list key a message to `queue` is pushed on, prefix included (`_q_for_pri`). */
export function queueKey(layout: RedisLayout, queue: string, priority: number): string {
  const step = priorityStep(layout, priority);
  return layout.prefix + (step ? `${queue}${layout.sep}${step}` : queue);
}

/** The set holding an exchange's bindings, prefix included (`keyprefix_queue`). */
export const bindingKey = (layout: RedisLayout, exchange: string): string => `${layout.prefix}_kombu.binding.${exchange}`;

/** The channel a fanout message is published on, prefix included (`_get_publish_topic`). */
export function fanoutChannel(layout: RedisLayout, exchange: string, routingKey: string): string {
  return layout.prefix + layout.fanoutPrefix + exchange + (routingKey && layout.fanoutPatterns ? `/${routingKey}` : "");
}

/** One binding as kombu stores it. `pattern` is the regex kombu derived for a topic binding, else "". */
export interface Binding {
  routingKey: string;
  pattern: string;
  queue: string;
}

export const bindingMember = (layout: RedisLayout, b: Binding): string => [b.routingKey, b.pattern, b.queue].join(layout.sep);

/** A stored member as a binding; null when it does not have kombu's three fields. */
export function parseBindingMember(layout: RedisLayout, member: string): Binding | null {
  const parts = member.split(layout.sep);
  if (parts.length !== 3) return null;
  return { routingKey: parts[0]!, pattern: parts[1]!, queue: parts[2]! };
}

/** kombu's `escape_regex(key, '.#*')`: every character but letters, digits and `.#*` escaped. */
function escapeRegex(text: string): string {
  let out = "";
  for (const c of text) out += /[\p{L}\p{N}.#*]/u.test(c) ? c : c === "\0" ? "\\000" : `\\${c}`;
  return out;
}

/** kombu's `TopicExchange.key_to_pattern`: the regex a topic binding is stored with. */
export function topicPattern(routingKey: string): string {
  const words = escapeRegex(routingKey)
    .split(".")
    .map((w) => (w === "*" ? ".*?[^\\.]" : w === "#" ? ".*?" : w));
  return `^${words.join("\\.")}$`;
}

/** The binding a queue declaration records (`queue_bind` → `_queue_bind`). */
export function declaredBinding(exchangeType: string, routingKey: string, queue: string): Binding {
  return { routingKey, pattern: exchangeType === "topic" ? topicPattern(routingKey) : "", queue };
}

/** Encodes the bytes of a message body as base64 (the Node adapter passes Buffer's, which is faster). */
export type Base64Encoder = (bytes: Uint8Array) => string;

/**
 * The JSON kombu's virtual transport stores for `m` published to `exchange`/`routingKey`: the
 * message from `prepare_message`, augmented as `basic_publish` does (base64 body, `body_encoding`,
 * `delivery_tag`, `delivery_info`). Keys in kombu's order; `priority` is always there (0 unset).
 */
export function kombuMessage(m: TaskMessage, deliveryTag: string, base64: Base64Encoder = toBase64): string {
  const p = m.properties;
  const properties: Record<string, unknown> = {};
  if (p.correlationId !== undefined) properties.correlation_id = p.correlationId;
  if (p.replyTo !== undefined) properties.reply_to = p.replyTo;
  properties.delivery_mode = p.deliveryMode;
  if (p.expiration !== undefined) properties.expiration = p.expiration;
  properties.delivery_info = { exchange: m.exchange, routing_key: m.routingKey };
  properties.priority = p.priority ?? 0;
  properties.body_encoding = "base64";
  properties.delivery_tag = deliveryTag;
  return JSON.stringify({
    body: base64(m.body),
    "content-encoding": p.contentEncoding,
    "content-type": p.contentType,
    headers: p.headers,
    properties,
  });
}
