/**
 * @module
 * Turns task fields plus send settings into the exact `TaskMessage` Celery would publish: the one
 * code path behind every transport, so the relay can republish what the direct path sends.
 */
import { COMPRESSION_CONTENT_TYPE, compress } from "../compression.js";
import type { CompressionName, ProtocolVersion } from "../options.js";
import type { QueueDeclaration } from "../routing.js";
import { SerializationError } from "../errors.js";
import type { Serializer } from "../serializers/serializer.js";
import type { TaskFields } from "./fields.js";
import type { HeaderValue, MessageProperties, TaskMessage } from "./message.js";
import { bodyV1 } from "./v1.js";
import { bodyV2, headersV2 } from "./v2.js";

export interface SendSettings {
  protocol: ProtocolVersion;
  /** The body's serializer (the app's, by the name the options give). */
  serializer: Serializer;
  compression: CompressionName | undefined;
  exchange: string;
  routingKey: string;
  priority: number | undefined;
  /** Milliseconds until `expires`, clamped at 0 like Celery; undefined when no `expires`. */
  expirationMs: number | undefined;
  replyTo: string;
  headers: Record<string, HeaderValue> | undefined;
  mandatory: boolean;
  immediate: boolean;
  declare: QueueDeclaration | null;
  /** Celery's `task_send_sent_event`: keep the fields in `meta.sentEvent` for the `task-sent` event. */
  sentEvent?: boolean;
}

/** Errors name the caller's path (`args[1].when`), not where args sit in the body (v2 `body[0]`, v1 `body.args`). */
function encodeBody(serializer: Serializer, body: unknown): Uint8Array {
  try {
    return serializer.encode(body);
  } catch (err) {
    if (!(err instanceof SerializationError)) throw err;
    const path = err.path.replace(/^body(\[0\]|\.args)/, "args").replace(/^body(\[1\]|\.kwargs)/, "kwargs");
    throw new SerializationError(err.message.split(err.path).join(path), path);
  }
}

/**
 * The message for `fields`. Synchronous, so a batch of thousands is built without a promise each;
 * only compression (CompressionStream) is asynchronous, and only messages that ask for it pay.
 */
export function encodeTaskMessage(fields: TaskFields, s: SendSettings): TaskMessage | Promise<TaskMessage> {
  const serializer = s.serializer;
  const headers: Record<string, HeaderValue> = s.protocol === 2 ? headersV2(fields) : {};
  if (s.headers) Object.assign(headers, s.headers);
  const body = encodeBody(serializer, s.protocol === 2 ? bodyV2(fields) : bodyV1(fields));
  const properties: MessageProperties = {
    contentType: serializer.contentType,
    contentEncoding: serializer.contentEncoding,
    deliveryMode: 2,
    correlationId: fields.id,
    replyTo: s.replyTo,
    headers,
  };
  if (s.priority !== undefined) properties.priority = s.priority;
  // kombu: str(int(seconds * 1000)).
  if (s.expirationMs !== undefined) properties.expiration = String(Math.trunc(Math.max(0, s.expirationMs)));
  const message: TaskMessage = {
    exchange: s.exchange,
    routingKey: s.routingKey,
    mandatory: s.mandatory,
    immediate: s.immediate,
    properties,
    body,
    declare: s.declare,
    meta: { id: fields.id, name: fields.name, eta: fields.eta, expires: fields.expires },
  };
  if (s.sentEvent) message.meta.sentEvent = fields;
  const compression = s.compression;
  if (!compression) return message;
  headers.compression = COMPRESSION_CONTENT_TYPE[compression];
  return compress(body).then((compressed) => ({ ...message, body: compressed }));
}
