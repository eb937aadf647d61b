/**
 * @module
 * What the worker will see, read from the message itself: protocol 2 headers, or the protocol 1
 * body. The envelope's `task` summary is only a convenience of the writer; the relay and scheduler
 * park, authorize and log by this view, and refuse an envelope whose summary disagrees with it.
 * Also the checks that keep one record from closing the channel under its batch-mates.
 */
import { decompressAtMost } from "../../sdk/compression.js";
import { EnvelopeError } from "../../sdk/errors.js";
import { parseIso } from "../../sdk/protocol/isoformat.js";
import type { HeaderValue, MessageProperties, TaskMessage, TaskMeta } from "../../sdk/protocol/message.js";
import { decodeJson } from "../../sdk/serializers/json.js";
import type { DecodeLimits } from "../../sdk/serializers/limits.js";
import { decodeMsgpack } from "../../sdk/serializers/msgpack.js";
import { decodePickle } from "../../sdk/serializers/pickle.js";
import { decodeYaml } from "../../sdk/serializers/yaml-read.js";
import { PICKLE_CONTENT_TYPE, controlPlaneReason } from "./policy.js";

export interface TaskView {
  protocol: 1 | 2;
  id: string;
  name: string;
  eta: string | null;
  expires: string | null;
}

/**
 * RabbitMQ refuses a per-message TTL above this (ten years, in milliseconds; measured on 3.10 with
 * a confirm channel): a bad one closes the channel, failing everything in flight on it.
 */
export const MAX_EXPIRATION_MS = 315_360_000_000;
/** The encoded headers table must fit one content-header frame with room to spare. */
export const MAX_HEADER_TABLE_BYTES = 64 * 1024;
const MAX_SHORTSTR_BYTES = 255;
/** The protocol 1 body is decoded to read it; refuse bodies whose decoding could be expensive. */
const MAX_P1_BODY_BYTES = 256 * 1024;
/**
 * YAML is far slower to parse than the others (fuzzing found ~6 s per MiB of some shapes): at
 * 32 KiB that is ~0.2 s on a quiet core and under a second on a loaded one, where 64 KiB neared it.
 * Protocol 1 is for workers older than Celery 4, and YAML is rare there.
 */
const MAX_P1_YAML_BYTES = 32 * 1024;
/** Far below the result readers' defaults: a relay container has little memory and many records. */
const P1_LIMITS: DecodeLimits = { maxBytes: 4 * MAX_P1_BODY_BYTES, maxDepth: 64, maxItems: 100_000, pickleMaxWork: 4_000_000 };
const P1_DECODERS: Record<string, (bytes: Uint8Array, limits: DecodeLimits) => unknown> = {
  "application/json": decodeJson,
  "application/x-yaml": decodeYaml,
  "application/x-msgpack": decodeMsgpack,
  // A data-only reader with work and size caps: it builds values, it never calls what a pickle names.
  [PICKLE_CONTENT_TYPE]: decodePickle,
};

const ENCODING_OF: Record<string, string> = {
  "application/json": "utf-8",
  "application/x-yaml": "utf-8",
  "application/x-msgpack": "binary",
  [PICKLE_CONTENT_TYPE]: "binary",
};
const COMPRESSIONS = new Set(["application/x-gzip"]);

const utf8 = new TextEncoder();
const bytesOf = (s: string): number => utf8.encode(s).length;

/** Cuts attacker-controlled text for error messages and logs. */
export function clip(value: unknown, max = 64): string {
  if (typeof value !== "string") {
    let s: string;
    try {
      s = JSON.stringify(value) ?? String(value);
    } catch {
      // Nested deeper than JSON.stringify can recurse: a few KB of JSON in a revoke body do it.
      s = Array.isArray(value) ? "(a list nested too deep to show)" : "(an object nested too deep to show)";
    }
    return s.length > max ? `${s.slice(0, max)}… (${s.length} chars)` : s;
  }
  return value.length > max ? `${JSON.stringify(value.slice(0, max))}… (${value.length} chars)` : JSON.stringify(value);
}

function refuse(why: string): never {
  throw new EnvelopeError(`invalid envelope: ${why}`);
}

function optionalString(v: unknown, what: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") refuse(`${what} must be a string or null`);
  return v;
}

function instant(v: string | null, what: string): void {
  if (v === null) return;
  try {
    parseIso(v, what);
  } catch {
    refuse(`${what} ${clip(v)} is not an ISO 8601 date-time`);
  }
}

/** Encoded size of an AMQP field value, as amqplib writes it (type tag included). */
function fieldBytes(v: HeaderValue): number {
  if (v === null) return 1;
  if (typeof v === "boolean") return 2;
  if (typeof v === "number") return 9;
  if (typeof v === "string") return 5 + bytesOf(v);
  if (Array.isArray(v)) return v.reduce<number>((n, x) => n + fieldBytes(x), 5);
  return 1 + tableBytes(v);
}

function tableBytes(t: Record<string, HeaderValue>): number {
  let n = 4;
  for (const [k, v] of Object.entries(t)) {
    const kb = bytesOf(k);
    if (kb === 0 || kb > MAX_SHORTSTR_BYTES) refuse(`header name ${clip(k)} must be 1-255 bytes`);
    if (k === "__proto__") refuse("header name __proto__ is not allowed");
    n += 1 + kb + fieldBytes(v);
  }
  return n;
}

/**
 * Everything RabbitMQ could answer with a channel error (which would fail every record in flight on
 * that channel) is checked here first, so a bad record fails alone.
 *
 * A Redis broker gets the same checks. It has no channel to close, but each rule still bounds what
 * reaches the workers: names and property strings stay within what Python's producers can send
 * (255 bytes; they become Redis keys and channels), the headers stay a bounded JSON document for
 * every worker to parse, and the content type, compression and `replyTo` checks are the worker's,
 * not the broker's. Two AMQP properties mean less on Redis and pass unchanged, as kombu's Redis
 * producer stores them: `expiration` (kombu's Redis transport enforces no TTL; the task's `expires`
 * header is what every worker honours) and `priority` (kombu takes 0-9 onto its priority steps,
 * lower numbers first, the same numbers Python's producer sends).
 */
export function checkForBroker(m: TaskMessage): void {
  const p: MessageProperties = m.properties;
  if (bytesOf(m.exchange) > MAX_SHORTSTR_BYTES || bytesOf(m.routingKey) > MAX_SHORTSTR_BYTES) refuse("exchange and routing key must be at most 255 bytes");
  for (const k of ["contentType", "contentEncoding", "correlationId", "replyTo", "expiration"] as const) {
    const v = p[k];
    if (v !== undefined && bytesOf(v) > MAX_SHORTSTR_BYTES) refuse(`properties.${k} must be at most 255 bytes`);
  }
  // Own keys only: "constructor" or "__proto__" must read as unknown, not as Object.prototype's.
  const expected = Object.hasOwn(ENCODING_OF, p.contentType) ? ENCODING_OF[p.contentType] : undefined;
  if (expected === undefined) refuse(`content type ${clip(p.contentType)} is not a Celery serializer's`);
  if (p.contentEncoding !== expected) refuse(`content encoding ${clip(p.contentEncoding)} does not match ${p.contentType} (${expected})`);
  if (p.expiration !== undefined && (!/^(0|[1-9][0-9]{0,11})$/.test(p.expiration) || Number(p.expiration) > MAX_EXPIRATION_MS)) {
    refuse(`properties.expiration ${clip(p.expiration)} must be a decimal number of milliseconds up to ${MAX_EXPIRATION_MS}`);
  }
  if (p.replyTo !== undefined && controlPlaneReason("", p.replyTo)) refuse(`properties.replyTo ${clip(p.replyTo)} names a control queue`);
  const compression = p.headers.compression;
  if (compression !== undefined && !(typeof compression === "string" && COMPRESSIONS.has(compression))) {
    refuse(`compression ${clip(compression)} is not one the relay passes (application/x-gzip)`);
  }
  const size = tableBytes(p.headers);
  if (size > MAX_HEADER_TABLE_BYTES) refuse(`headers table is ${size} bytes encoded, over ${MAX_HEADER_TABLE_BYTES}`);
}

/** A 256 KiB body can inflate to ~260 MB, which must never be allocated just to be refused. */
async function inflateAtMost(bytes: Uint8Array, limit: number): Promise<Uint8Array> {
  const out = await decompressAtMost(bytes, limit).catch(() => refuse("compressed body does not decompress"));
  return out ?? refuse("protocol 1 body decompresses too large to check");
}

/** A protocol 1 body, decoded within the relay's limits (the task view, and the relay's `task-sent` event, read it). */
export async function protocol1Body(m: TaskMessage): Promise<Record<string, unknown>> {
  const ct = m.properties.contentType;
  if (m.body.length > MAX_P1_BODY_BYTES) refuse(`a protocol 1 body over ${MAX_P1_BODY_BYTES} bytes cannot be checked; send protocol 2`);
  let bytes = m.body;
  if (m.properties.headers.compression !== undefined) bytes = await inflateAtMost(bytes, 4 * MAX_P1_BODY_BYTES);
  // The yaml library parses some shapes (runs of blank lines, comments) at several seconds per MiB.
  if (ct === "application/x-yaml" && bytes.length > MAX_P1_YAML_BYTES) {
    refuse(`a protocol 1 YAML body over ${MAX_P1_YAML_BYTES} bytes cannot be checked; send protocol 2 or JSON`);
  }
  let body: unknown;
  try {
    body = P1_DECODERS[ct]!(bytes, P1_LIMITS);
  } catch {
    refuse(`protocol 1 body is not valid ${ct} within the relay's decoding limits`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) refuse("protocol 1 body must be a mapping");
  return body as Record<string, unknown>;
}

/** The task as the worker will read it. Protocol 2 when the headers name the task, else protocol 1. */
export async function readTaskView(m: TaskMessage): Promise<TaskView> {
  const h = m.properties.headers;
  let protocol: 1 | 2;
  let src: Record<string, unknown>;
  let nameKey: string;
  if (h.task !== undefined || h.id !== undefined) {
    protocol = 2;
    src = h as Record<string, unknown>;
    nameKey = "task";
  } else {
    protocol = 1;
    src = await protocol1Body(m);
    nameKey = "task";
  }
  const id = src.id;
  const name = src[nameKey];
  if (typeof id !== "string" || id.length === 0 || id.length > 255) refuse(`the message's task id must be a string of 1-255 characters`);
  if (typeof name !== "string" || name.length === 0 || name.length > 255) refuse(`the message's task name must be a string of 1-255 characters`);
  const eta = optionalString(src.eta, "eta");
  const expires = optionalString(src.expires, "expires");
  instant(eta, "eta");
  instant(expires, "expires");
  return { protocol, id, name, eta, expires };
}

/** Refuses an envelope whose summary disagrees with the message; returns meta built from the message. */
export function agreeWithSummary(view: TaskView, summary: TaskMeta): TaskMeta {
  const differs = (what: string, claimed: unknown, actual: unknown): never =>
    refuse(`task.${what} ${clip(claimed)} disagrees with the message's ${clip(actual)}`);
  if (summary.id !== view.id) differs("id", summary.id, view.id);
  if (summary.name !== view.name) differs("name", summary.name, view.name);
  if ((summary.eta ?? null) !== view.eta) differs("eta", summary.eta, view.eta);
  if (summary.expires !== undefined && (summary.expires ?? null) !== view.expires) differs("expires", summary.expires, view.expires);
  return {
    id: view.id,
    name: view.name,
    eta: view.eta,
    expires: view.expires,
    ...(summary.sender !== undefined ? { sender: summary.sender } : {}),
    ...(summary.stage !== undefined ? { stage: summary.stage } : {}),
  };
}
