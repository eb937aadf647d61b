/**
 * @module
 * Public option types, named after Celery's `apply_async` arguments, and the checks that run before
 * anything is built or sent.
 */
import { ConfigurationError } from "./errors.js";
import { isPlainObject as isPlainDict, isPythonDate } from "./serializers/check.js";
import type { HeaderValue } from "./protocol/message.js";

export type SerializerName = "json" | "yaml" | "msgpack" | "pickle" | (string & {});
export type CompressionName = "zlib" | "gzip";
export type ProtocolVersion = 1 | 2;

/** A task call's signature, for `link`/`linkError` (Celery's `add.s(10)` / `echo.si("x")`). */
export interface Signature {
  task: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  options?: Record<string, unknown>;
  /** `si()`: the callback ignores the parent's result. @default false */
  immutable?: boolean;
}

/** Options a task can carry as defaults and any call can override. */
export interface SendOptions {
  /** Queue name; resolved like Celery's `queue=` (configured queues, else an auto-created direct queue). */
  queue?: string;
  /** Exchange name. With a direct queue and no routing key, Celery publishes to the default exchange `""`. */
  exchange?: string;
  /** Routing key. */
  routingKey?: string;
  /** AMQP priority, integer 0–255 (RabbitMQ honours up to the queue's `x-max-priority`). @default unset */
  priority?: number;
  /** Body format. @default the app's `serializer`, else "json" */
  serializer?: SerializerName;
  /** Compress the body as kombu does (zlib stream, header `compression: application/x-gzip`). @default none */
  compression?: CompressionName;
  /** Celery message protocol; 1 only for workers older than Celery 4. @default 2 */
  protocol?: ProtocolVersion;
  /** Fail with `ERR_UNROUTABLE` when no queue is bound for the routing key. @default false */
  mandatory?: boolean;
  /** RabbitMQ dropped AMQP `immediate`; we refuse to publish when no consumer is attached (see README). @default false */
  immediate?: boolean;
  /** Milliseconds to wait for the broker connection. @default the app's `connectTimeout` (10 000) */
  connectTimeout?: number;
  /** Hard time limit in seconds (`timelimit[0]`). @default unset */
  timeLimit?: number;
  /** Soft time limit in seconds (`timelimit[1]`). @default unset */
  softTimeLimit?: number;
  /** Ask the worker not to store the result. @default false */
  ignoreResult?: boolean;
  /** Extra application headers; they may not replace Celery's own. @default none */
  headers?: Record<string, HeaderValue>;
}

type Timing =
  | {
      /** Seconds from now before the task may run. @default none */
      countdown?: number;
      eta?: never;
    }
  | {
      countdown?: never;
      /** Earliest run time: a Date or an ISO 8601 string with offset. @default none */
      eta?: Date | string;
    };

export type ApplyOptions<A extends unknown[] = unknown[], K extends Record<string, unknown> = Record<string, unknown>> = SendOptions &
  Timing & {
    /** Positional arguments. @default [] */
    args?: A;
    /** Keyword arguments. @default {} */
    kwargs?: K;
    /** After this the worker discards the task: a Date, an ISO string, or seconds from now. @default none */
    expires?: Date | string | number;
    /** Task id. @default a random UUID v4 */
    taskId?: string;
    /** Retry count the worker sees. @default 0 */
    retries?: number;
    /** Id of the task that sent this one. @default none */
    parentId?: string;
    /** Id of the first task of the workflow. @default this task's id */
    rootId?: string;
    /** Task name shown in logs instead of the real one. @default none */
    shadow?: string;
    /** Callbacks run with this task's result. @default none */
    link?: Signature | Signature[];
    /** Callbacks run when this task fails. @default none */
    linkError?: Signature | Signature[];
  };

/** Celery's own header names: a caller's `headers` may not overwrite them. */
export const PROTOCOL_HEADERS: ReadonlySet<string> = new Set([
  "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
  "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result", "compression",
]);

const invalid = (message: string): ConfigurationError => new ConfigurationError(message, { code: "ERR_INVALID_OPTION" });
const show = (v: unknown): string => {
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "string") return JSON.stringify(v);
  if (v instanceof Date) return `Date(${Number.isNaN(v.getTime()) ? "Invalid" : v.toISOString()})`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
};

export function checkTaskName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.trim() === "") throw invalid(`task name must be a non-empty string, got ${show(name)}`);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && isPlainDict(v);

function checkNonNegative(field: string, v: unknown, integer = false): void {
  if (v === undefined) return;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (integer && !Number.isInteger(v))) {
    throw invalid(`${field} must be a ${integer ? "non-negative integer" : "finite number ≥ 0"}, got ${show(v)}`);
  }
}

function checkOptionalString(field: string, v: unknown): void {
  if (v !== undefined && (typeof v !== "string" || (field !== "exchange" && v === ""))) {
    throw invalid(`${field} must be a ${field === "exchange" ? "" : "non-empty "}string, got ${show(v)}`);
  }
}

/** Checks options shared by tasks and calls. */
export function checkSendOptions(o: SendOptions): void {
  for (const f of ["queue", "exchange", "routingKey", "serializer"] as const) checkOptionalString(f, o[f]);
  if (o.priority !== undefined && (typeof o.priority !== "number" || !Number.isInteger(o.priority) || o.priority < 0 || o.priority > 255)) {
    throw invalid(`priority must be an integer from 0 to 255, got ${show(o.priority)}`);
  }
  if (o.compression !== undefined && o.compression !== "zlib" && o.compression !== "gzip") {
    throw invalid(`compression must be "zlib" or "gzip", got ${show(o.compression)}`);
  }
  if (o.protocol !== undefined && o.protocol !== 1 && o.protocol !== 2) throw invalid(`protocol must be 1 or 2, got ${show(o.protocol)}`);
  for (const f of ["mandatory", "immediate", "ignoreResult"] as const) {
    if (o[f] !== undefined && typeof o[f] !== "boolean") throw invalid(`${f} must be a boolean, got ${show(o[f])}`);
  }
  if (o.connectTimeout !== undefined && (typeof o.connectTimeout !== "number" || !(o.connectTimeout > 0))) {
    throw invalid(`connectTimeout must be a positive number of milliseconds, got ${show(o.connectTimeout)}`);
  }
  checkNonNegative("timeLimit", o.timeLimit);
  checkNonNegative("softTimeLimit", o.softTimeLimit);
  if (o.headers !== undefined) {
    if (!isPlainObject(o.headers)) throw invalid(`headers must be a plain object, got ${show(o.headers)}`);
    for (const key of Object.keys(o.headers)) {
      if (PROTOCOL_HEADERS.has(key)) throw invalid(`headers.${key} would overwrite Celery's own "${key}" header; use the matching option instead`);
    }
    checkHeaderValue(o.headers, "headers", new Set());
  }
}

/**
 * AMQP header tables carry strings, finite numbers, booleans, null, arrays and tables; anything
 * else would be silently changed on the way (or make RabbitMQ close the connection, as NaN does).
 */
function checkHeaderValue(v: unknown, path: string, seen: Set<object>): void {
  if (typeof v === "number" ? Number.isFinite(v) : v === null || typeof v === "string" || typeof v === "boolean") return;
  if (!(Array.isArray(v) || isPlainObject(v)) || seen.has(v)) {
    throw invalid(`${path} must be a string, finite number, boolean, null, array or plain object (no cycles), got ${show(v)}`);
  }
  seen.add(v);
  for (const [k, x] of Object.entries(v)) {
    // A "__proto__" key (JSON.parse makes them) is refused at any depth: a top-level one would become
    // the header table's prototype when the message's headers are merged.
    if (k === "__proto__") throw invalid(`${path} has a "__proto__" key`);
    checkHeaderValue(x, `${path}.${k}`, seen);
  }
  seen.delete(v);
}

function checkDate(field: string, v: unknown): void {
  if (v instanceof Date) {
    if (!isPythonDate(v)) throw invalid(`${field} is an invalid Date or outside Python's years 1-9999, got ${show(v)}`);
  } else if (typeof v !== "string") {
    throw invalid(`${field} must be a Date or an ISO 8601 string, got ${show(v)}`);
  }
}

/** Checks one call's options (after the task's defaults were merged in). */
export function checkApplyOptions(o: ApplyOptions): void {
  if (!isPlainObject(o)) throw invalid(`options must be a plain object, got ${show(o)}`);
  checkSendOptions(o);
  if (o.args !== undefined && !Array.isArray(o.args)) throw invalid(`args must be an array, got ${show(o.args)}`);
  if (o.kwargs !== undefined && !isPlainObject(o.kwargs)) throw invalid(`kwargs must be a plain object, got ${show(o.kwargs)}`);
  if (o.countdown !== undefined && o.eta !== undefined) throw invalid("countdown and eta are mutually exclusive: pass one");
  checkNonNegative("countdown", o.countdown);
  if (o.countdown !== undefined && !isPythonDate(new Date(Date.now() + (o.countdown as number) * 1000))) throw invalid(`countdown ${show(o.countdown)} puts the eta past Python's year 9999`);
  if (o.eta !== undefined) checkDate("eta", o.eta);
  if (o.expires !== undefined) {
    if (typeof o.expires === "number") {
      if (!Number.isFinite(o.expires)) throw invalid(`expires must be finite seconds, got ${show(o.expires)}`);
      if (!isPythonDate(new Date(Date.now() + o.expires * 1000))) throw invalid(`expires ${show(o.expires)} seconds from now is outside Python's years 1-9999`);
    } else checkDate("expires", o.expires);
  }
  for (const f of ["taskId", "parentId", "rootId", "shadow"] as const) checkOptionalString(f, o[f]);
  checkNonNegative("retries", o.retries, true);
  if (o.link !== undefined) checkSignatures("link", o.link);
  if (o.linkError !== undefined) checkSignatures("linkError", o.linkError);
}

function checkSignatures(field: string, given: unknown): void {
  for (const s of Array.isArray(given) ? (given as unknown[]) : [given]) {
    if (!isPlainObject(s) || typeof s.task !== "string" || s.task.trim() === "") throw invalid(`${field} must be signatures with a non-empty task name, got ${show(s)}`);
  }
}
