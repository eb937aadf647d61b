/**
 * @module
 * The SQS envelope: the exact AMQP message a producer would have published, written as JSON so the
 * relay can publish it byte for byte. Shared by the SDK (writer) and the relay (reader). The format
 * is specified in docs/envelope.md.
 */
import { fromBase64, toBase64 } from "../base64.js";
import { EnvelopeError } from "../errors.js";
import { strictUtf8, utf8Encoder } from "../serializers/utf8.js";
import type { EnvelopeStage, HeaderValue, MessageProperties, TaskMessage } from "../protocol/message.js";
import type { QueueDeclaration } from "../routing.js";

export const ENVELOPE_VERSION = 1;

/** An SQS SenderId (role id, ":", session name of up to 64) fits with room to spare. */
export const MAX_SENDER_CHARS = 128;

export interface Envelope {
  /** Format version; readers refuse versions they do not know. */
  celeryEdgeEnvelope: typeof ENVELOPE_VERSION;
  /** A summary for logs; readers must agree it with the headers (or protocol 1 body) before use. */
  task: { id: string; name: string; eta: string | null; expires?: string | null };
  exchange: string;
  routingKey: string;
  mandatory: boolean;
  immediate: boolean;
  properties: MessageProperties;
  declare: QueueDeclaration | null;
  /** "utf-8": `body` is the text itself; "base64": binary bodies (msgpack, pickle, compressed). */
  bodyEncoding: "utf-8" | "base64";
  body: string;
  /** Relay ↔ scheduler only: the original SQS SenderId, trusted only from a configured forwarder. */
  sender?: string;
  /** Scheduler only: `release` (a fired schedule), `broadcast` (a revoke for the broker). */
  stage?: EnvelopeStage;
  /**
   * Celery's `task_send_sent_event`: asks the relay to publish the task's `task-sent` event, which
   * it makes from the message itself (only when its policy allows `sentEvents`). Absent = false.
   */
  sendSentEvent?: boolean;
}

function bodyAsText(m: TaskMessage): string | null {
  if (m.properties.contentEncoding !== "utf-8" || m.properties.headers.compression !== undefined) return null;
  try {
    // Strict and BOM-keeping: the text re-encodes to the very same bytes, so the relay's bytes match.
    return strictUtf8.decode(m.body);
  } catch {
    return null;
  }
}

export function toEnvelope(m: TaskMessage): Envelope {
  const text = bodyAsText(m);
  return {
    celeryEdgeEnvelope: ENVELOPE_VERSION,
    task: { id: m.meta.id, name: m.meta.name, eta: m.meta.eta, ...(m.meta.expires !== undefined ? { expires: m.meta.expires } : {}) },
    exchange: m.exchange,
    routingKey: m.routingKey,
    mandatory: m.mandatory,
    immediate: m.immediate,
    properties: m.properties,
    declare: m.declare,
    bodyEncoding: text === null ? "base64" : "utf-8",
    body: text ?? toBase64(m.body),
    ...(m.meta.sender !== undefined ? { sender: m.meta.sender } : {}),
    ...(m.meta.stage !== undefined ? { stage: m.meta.stage } : {}),
    ...(m.meta.sentEvent ? { sendSentEvent: true } : {}),
  };
}

/**
 * SQS refuses U+FFFE and U+FFFF anywhere in a message; JSON.stringify leaves them raw (it escapes
 * only controls and lone surrogates), so they are escaped here: anything the direct path can
 * publish, the relay path can carry.
 */
export function encodeEnvelope(m: TaskMessage): string {
  return JSON.stringify(toEnvelope(m)).replace(/[\uFFFE\uFFFF]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function need<T>(ok: boolean, value: T, what: string): T {
  if (!ok) throw new EnvelopeError(`invalid envelope: ${what}`);
  return value;
}

function str(o: Record<string, unknown>, key: string, where: string, optional = false): string | undefined {
  const v = o[key];
  if (v === undefined && optional) return undefined;
  return need(typeof v === "string", v as string, `${where}${key} must be a string`);
}

function isHeaderValue(v: unknown, depth = 0): v is HeaderValue {
  if (depth > 32) return false;
  if (v === null || typeof v === "string" || typeof v === "boolean") return true;
  if (typeof v === "number") return Number.isFinite(v);
  if (Array.isArray(v)) return v.every((x) => isHeaderValue(x, depth + 1));
  if (isObject(v)) return Object.values(v).every((x) => isHeaderValue(x, depth + 1));
  return false;
}

function parseProperties(p: unknown): MessageProperties {
  need(isObject(p), null, "properties must be an object");
  const o = p as Record<string, unknown>;
  const headers = o.headers;
  need(isObject(headers) && isHeaderValue(headers), null, "properties.headers must be an object of JSON values");
  const deliveryMode = o.deliveryMode;
  need(deliveryMode === 1 || deliveryMode === 2, null, "properties.deliveryMode must be 1 or 2");
  const out: MessageProperties = {
    contentType: str(o, "contentType", "properties.")!,
    contentEncoding: str(o, "contentEncoding", "properties.")!,
    deliveryMode: deliveryMode as 1 | 2,
    headers: headers as Record<string, HeaderValue>,
  };
  for (const k of ["correlationId", "replyTo", "expiration"] as const) {
    const v = str(o, k, "properties.", true);
    if (v !== undefined) out[k] = v;
  }
  if (o.priority !== undefined) {
    const pr = o.priority;
    need(typeof pr === "number" && Number.isInteger(pr) && pr >= 0 && pr <= 255, null, "properties.priority must be an integer 0-255");
    out.priority = pr as number;
  }
  return out;
}

function parseDeclare(d: unknown): QueueDeclaration | null {
  if (d === null || d === undefined) return null;
  need(isObject(d), null, "declare must be an object or null");
  const o = d as Record<string, unknown>;
  const type = str(o, "exchangeType", "declare.")!;
  need(["direct", "topic", "fanout", "headers"].includes(type), null, "declare.exchangeType must be direct, topic, fanout or headers");
  const out: QueueDeclaration = {
    exchange: str(o, "exchange", "declare.")!,
    exchangeType: type as QueueDeclaration["exchangeType"],
    routingKey: str(o, "routingKey", "declare.")!,
  };
  const queue = str(o, "queue", "declare.", true);
  if (queue !== undefined) out.queue = queue;
  if (o.durable !== undefined) out.durable = need(typeof o.durable === "boolean", o.durable as boolean, "declare.durable must be a boolean");
  if (o.arguments !== undefined) {
    need(isObject(o.arguments) && isHeaderValue(o.arguments), null, "declare.arguments must be an object of JSON values");
    out.arguments = o.arguments as Record<string, HeaderValue>;
  }
  return out;
}

/** Parses and validates an SQS message body; throws `EnvelopeError` naming what is wrong. */
export function decodeEnvelope(text: string): TaskMessage {
  return readEnvelope(text).message;
}

/**
 * Parses and validates an envelope. `message.meta` is the envelope's own summary (plus `sender` and
 * `stage` when present): the relay and scheduler check it against the headers before trusting it.
 */
export function readEnvelope(text: string): { message: TaskMessage; stage: EnvelopeStage | undefined; sender: string | undefined } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new EnvelopeError("invalid envelope: body is not JSON");
  }
  need(isObject(raw), null, "top level must be an object");
  const e = raw as Record<string, unknown>;
  const version = e.celeryEdgeEnvelope;
  // Only a scalar is written out: a list or object may nest deeper than JSON.stringify can recurse.
  const shown = typeof version === "object" && version !== null ? (Array.isArray(version) ? "(a list)" : "(an object)") : JSON.stringify(version);
  need(version === ENVELOPE_VERSION, null, `unsupported version ${shown} (this reader knows ${ENVELOPE_VERSION})`);
  need(isObject(e.task), null, "task must be an object");
  const task = e.task as Record<string, unknown>;
  const eta = task.eta;
  need(eta === null || eta === undefined || typeof eta === "string", null, "task.eta must be a string or null");
  const expires = task.expires;
  need(expires === null || expires === undefined || typeof expires === "string", null, "task.expires must be a string or null");
  const stage = e.stage;
  need(stage === undefined || stage === "release" || stage === "broadcast", null, 'stage must be "release" or "broadcast"');
  const sendSentEvent = e.sendSentEvent;
  need(sendSentEvent === undefined || typeof sendSentEvent === "boolean", null, "sendSentEvent must be true or false");
  const sender = str(e, "sender", "", true);
  need(sender === undefined || sender.length <= MAX_SENDER_CHARS, null, `sender must be at most ${MAX_SENDER_CHARS} characters`);
  need(typeof e.mandatory === "boolean" && typeof e.immediate === "boolean", null, "mandatory and immediate must be booleans");
  const encoding = e.bodyEncoding;
  need(encoding === "utf-8" || encoding === "base64", null, 'bodyEncoding must be "utf-8" or "base64"');
  const bodyText = str(e, "body", "")!;
  const body = encoding === "utf-8" ? utf8Encoder.encode(bodyText) : fromBase64(bodyText);
  need(body !== null, null, "body is not valid base64");
  const message: TaskMessage = {
    exchange: str(e, "exchange", "")!,
    routingKey: str(e, "routingKey", "")!,
    mandatory: e.mandatory as boolean,
    immediate: e.immediate as boolean,
    properties: parseProperties(e.properties),
    declare: parseDeclare(e.declare),
    body: body!,
    meta: {
      id: str(task, "id", "task.")!,
      name: str(task, "name", "task.")!,
      eta: (eta as string | null | undefined) ?? null,
      ...(expires !== undefined ? { expires: expires as string | null } : {}),
      ...(sender !== undefined ? { sender } : {}),
      ...(stage !== undefined ? { stage: stage as EnvelopeStage } : {}),
      ...(sendSentEvent === true ? { sentEvent: true as const } : {}),
    },
  };
  return { message, stage: stage as EnvelopeStage | undefined, sender };
}
