/**
 * @module
 * Maps our message properties onto amqplib's publish options with py-amqp's field types: integers
 * are `I` (signed 32-bit) as py-amqp writes them, not the `b`/`s` amqplib would guess; beyond
 * 32 bits they are 64-bit (amqplib tags them `l`, py-amqp `L`: both decode to the same int).
 */
import type { Options } from "amqplib";
import type { HeaderValue, TaskMessage } from "../protocol/message.js";

type Typed = { "!": string; value: unknown };
type AmqpFieldValue = string | boolean | null | Typed | AmqpFieldValue[] | { [key: string]: AmqpFieldValue };

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

export function toFieldValue(v: HeaderValue): AmqpFieldValue {
  if (typeof v === "number") {
    if (!Number.isInteger(v)) return { "!": "double", value: v };
    return { "!": v >= INT32_MIN && v <= INT32_MAX ? "int" : "long", value: v };
  }
  if (Array.isArray(v)) return v.map(toFieldValue);
  if (v !== null && typeof v === "object") {
    return toTable(v);
  }
  return v;
}

// Called for every header of every message published: a keys loop, not Object.entries' pair arrays.
function toTable(record: { [key: string]: HeaderValue }): Record<string, AmqpFieldValue> {
  const table: Record<string, AmqpFieldValue> = {};
  for (const k of Object.keys(record)) {
    const value = toFieldValue(record[k]!);
    // A "__proto__" key (JSON.parse makes them, e.g. in a relayed envelope) stays an ordinary key:
    // assigned, it would become the table's prototype and amqplib would send what it holds as headers.
    if (k === "__proto__") Object.defineProperty(table, k, { value, enumerable: true, writable: true, configurable: true });
    else table[k] = value;
  }
  return table;
}

export function toPublishOptions(m: TaskMessage): Options.Publish {
  const p = m.properties;
  const headers = toTable(p.headers);
  const options: Options.Publish = {
    contentType: p.contentType,
    contentEncoding: p.contentEncoding,
    headers,
    deliveryMode: p.deliveryMode,
    correlationId: p.correlationId,
    replyTo: p.replyTo,
    // `immediate` is handled by the transport: RabbitMQ closes the connection on the real flag.
    mandatory: m.mandatory || m.immediate,
  };
  if (p.priority !== undefined) options.priority = p.priority;
  if (p.expiration !== undefined) options.expiration = p.expiration;
  return options;
}
