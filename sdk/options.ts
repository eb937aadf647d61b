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
/** The one shape of an option error: `<field> must be <what>, got <value>`. */
const wrong = (field: string, what: string, v: unknown): ConfigurationError => invalid(`${field} must be ${what}, got ${show(v)}`);

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && isPlainDict(v);
const isNonEmptyString = (v: unknown): boolean => typeof v === "string" && v !== "";
const isTaskName = (v: unknown): v is string => typeof v === "string" && v.trim() !== "";
// Comparisons are false for NaN and for non-numbers that do not convert, so these need no isFinite.
const isNonNegative = (v: unknown): boolean => typeof v === "number" && v >= 0 && v < Infinity;

/** An optional field: unset, or passing `ok`, which wants `what`. */
type Rule = readonly [field: string, ok: (v: any) => boolean, what: string];

const NON_EMPTY_STRING = "a non-empty string";
const FINITE_NON_NEGATIVE = "a finite number ≥ 0";
const BOOLEAN: Rule[1] = (v) => typeof v === "boolean";

const SEND_RULES: readonly Rule[] = [
  ["queue", isNonEmptyString, NON_EMPTY_STRING],
  ["exchange", (v) => typeof v === "string", "a string"],
  ["routingKey", isNonEmptyString, NON_EMPTY_STRING],
  ["serializer", isNonEmptyString, NON_EMPTY_STRING],
  ["priority", (v) => Number.isInteger(v) && v >= 0 && v <= 255, "an integer from 0 to 255"],
  ["compression", (v) => v === "zlib" || v === "gzip", '"zlib" or "gzip"'],
  ["protocol", (v) => v === 1 || v === 2, "1 or 2"],
  ["mandatory", BOOLEAN, "a boolean"],
  ["immediate", BOOLEAN, "a boolean"],
  ["ignoreResult", BOOLEAN, "a boolean"],
  ["connectTimeout", (v) => typeof v === "number" && v > 0, "a positive number of milliseconds"],
  ["timeLimit", isNonNegative, FINITE_NON_NEGATIVE],
  ["softTimeLimit", isNonNegative, FINITE_NON_NEGATIVE],
  ["headers", isPlainObject, "a plain object"],
  // App-wide only (Celery has no per-call switch); checked with the app's options.
  ["taskSendSentEvent", BOOLEAN, "a boolean"],
];

const DATE_OR_ISO: Rule[1] = (v) => v instanceof Date || typeof v === "string";

const APPLY_RULES: readonly Rule[] = [
  ["args", Array.isArray, "an array"],
  ["kwargs", isPlainObject, "a plain object"],
  ["countdown", isNonNegative, FINITE_NON_NEGATIVE],
  ["eta", DATE_OR_ISO, "a Date or an ISO 8601 string"],
  ["expires", (v) => DATE_OR_ISO(v) || Number.isFinite(v), "finite seconds, a Date or an ISO 8601 string"],
  ["taskId", isNonEmptyString, NON_EMPTY_STRING],
  ["parentId", isNonEmptyString, NON_EMPTY_STRING],
  ["rootId", isNonEmptyString, NON_EMPTY_STRING],
  ["shadow", isNonEmptyString, NON_EMPTY_STRING],
  ["retries", (v) => isNonNegative(v) && Number.isInteger(v), "a non-negative integer"],
];

function checkRules(o: Record<string, unknown>, rules: readonly Rule[]): void {
  for (const [field, ok, what] of rules) {
    const v = o[field];
    if (v !== undefined && !ok(v)) throw wrong(field, what, v);
  }
}

export function checkTaskName(name: unknown): asserts name is string {
  if (!isTaskName(name)) throw wrong("task name", NON_EMPTY_STRING, name);
}

/** Checks options shared by tasks and calls (and, from the app, `taskSendSentEvent`). */
export function checkSendOptions(o: SendOptions & { taskSendSentEvent?: boolean }): void {
  checkRules(o as Record<string, unknown>, SEND_RULES);
  if (o.headers !== undefined) {
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
    throw wrong(path, "a string, finite number, boolean, null, array or plain object (no cycles)", v);
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

/** Refuses a time (a Date, or seconds from now) that Python's datetime cannot hold. */
function checkPythonDate(field: string, v: unknown): void {
  const seconds = typeof v === "number";
  const date = seconds ? new Date(Date.now() + v * 1000) : v;
  if (date instanceof Date && !isPythonDate(date)) {
    throw invalid(`${field} is ${seconds ? "" : "an invalid Date or "}outside Python's years 1-9999, got ${show(v)}${seconds ? " seconds from now" : ""}`);
  }
}

/** Checks one call's options (after the task's defaults were merged in). */
export function checkApplyOptions(o: ApplyOptions): void {
  if (!isPlainObject(o)) throw wrong("options", "a plain object", o);
  checkSendOptions(o);
  if (o.countdown !== undefined && o.eta !== undefined) throw invalid("countdown and eta are mutually exclusive: pass one");
  checkRules(o, APPLY_RULES);
  for (const field of ["countdown", "eta", "expires"] as const) checkPythonDate(field, o[field]);
  for (const field of ["link", "linkError"] as const) {
    const given: unknown = o[field];
    if (given === undefined) continue;
    for (const s of Array.isArray(given) ? (given as unknown[]) : [given]) {
      if (!isPlainObject(s) || !isTaskName(s.task)) throw wrong(field, "signatures with a non-empty task name", s);
    }
  }
}
