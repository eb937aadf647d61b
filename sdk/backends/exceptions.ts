/**
 * @module
 * Reading what Celery's workers store: the task meta (`{status, result, traceback, children,
 * date_done, task_id}`) and, for failures, the exception. With json/yaml/msgpack the exception is
 * the dict `{exc_type, exc_message, exc_module}` (`Backend.prepare_exception`); with pickle it is
 * the pickled exception object itself. Runtime-neutral: no Node built-ins.
 */
import type { ResultMeta } from "./backend.js";

/** A Python exception as Celery stored it. */
export interface ExceptionInfo {
  /** Qualified class name, e.g. `ValueError` or `Outer.Inner`. */
  excType: string;
  /** What Python's `str(exc)` prints. */
  excMessage: string;
  /** `exc.args`. */
  excArgs: unknown[];
  /** Defining module, e.g. `builtins`; null when Celery did not store one. */
  excModule: string | null;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Decoders may give a `Map` (pickle, msgpack with non-string keys); meta keys are always strings. */
function asRecord(v: unknown): Record<string, unknown> | null {
  if (v instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, val] of v) out[typeof k === "string" ? k : String(k)] = val;
    return out;
  }
  return isRecord(v) ? v : null;
}

const asText = (v: unknown): string | null => {
  if (typeof v === "string") return v;
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  return null;
};

/**
 * Turns a decoded stored meta into `ResultMeta`. `taskId` is the id the caller asked for (the rpc
 * backend's correlation id); a meta without `status` is not Celery's and is rejected.
 */
export function metaFromStored(raw: unknown, taskId: string): ResultMeta {
  const m = asRecord(raw);
  const status = m ? asText(m.status) : null;
  if (!m || status === null) {
    throw new TypeError(`stored result of task ${taskId} is not a Celery task meta (no "status")`);
  }
  const dateDone = m.date_done;
  const meta: ResultMeta = {
    taskId: asText(m.task_id) ?? taskId,
    status,
    result: m.result ?? null,
    traceback: asText(m.traceback),
    dateDone: dateDone instanceof Date ? dateDone.toISOString() : asText(dateDone),
  };
  if (status !== "SUCCESS" && meta.result !== null) {
    const { excType, excMessage } = exceptionInfo(meta.result);
    meta.exception = { excType, excMessage };
  }
  return meta;
}

/** The PENDING meta Celery reports for an id it knows nothing of. */
export function pendingMeta(taskId: string): ResultMeta {
  return { taskId, status: "PENDING", result: null, traceback: null, dateDone: null };
}

/**
 * Exception info from a failed meta's `result`: Celery's exception dict, or a pickled exception as
 * the pickle serializer decodes it (a reduced object naming `module`/`name` with `args`).
 */
export function exceptionInfo(result: unknown): ExceptionInfo {
  const r = asRecord(result);
  if (r && r.exc_type !== undefined) {
    const args = r.exc_message;
    const excArgs = Array.isArray(args) ? [...args] : args === undefined || args === null ? [] : [args];
    const excType = asText(r.exc_type) ?? String(r.exc_type);
    return {
      excType,
      excMessage: Array.isArray(args) ? pyStr(excArgs, excType) : args === undefined || args === null ? "" : strOf(args),
      excArgs,
      excModule: asText(r.exc_module),
    };
  }
  const reduced = reducedException(result);
  if (reduced) return reduced;
  if (result instanceof Error) {
    return { excType: result.name, excMessage: result.message, excArgs: [result.message], excModule: null };
  }
  return { excType: "Exception", excMessage: result === null || result === undefined ? "" : strOf(result), excArgs: [], excModule: null };
}

/**
 * A pickled exception (`builtins.ValueError('boom')` is `STACK_GLOBAL builtins ValueError; REDUCE ('boom',)`)
 * as the pickle decoder represents a reduced object it does not construct. Celery's
 * `UnpickleableExceptionWrapper(exc_module, exc_cls_name, exc_args, text)` is unwrapped as Celery does.
 */
function reducedException(value: unknown): ExceptionInfo | null {
  const r = asRecord(value);
  if (!r) return null;
  const cls = asRecord(r.callable ?? r.global ?? r.class ?? r.cls ?? null);
  const module = asText(cls?.module ?? r.module);
  const name = asText(cls?.name ?? cls?.qualname ?? r.name ?? r.qualname);
  if (module === null || name === null) return null;
  const rawArgs = r.args;
  const args = Array.isArray(rawArgs) ? [...rawArgs] : rawArgs === undefined || rawArgs === null ? [] : [rawArgs];
  if (module === "celery.utils.serialization" && name === "UnpickleableExceptionWrapper" && args.length >= 3) {
    const inner = Array.isArray(args[2]) ? [...(args[2] as unknown[])] : [];
    return {
      excType: asText(args[1]) ?? "Exception",
      excMessage: asText(args[3]) ?? pyStr(inner),
      excArgs: inner,
      excModule: asText(args[0]),
    };
  }
  return { excType: name, excMessage: pyStr(args, name), excArgs: args, excModule: module };
}

/**
 * Python's `str(BaseException(*args))`: "" for none, `str(arg)` for one (`repr(arg)` for KeyError,
 * whose `__str__` quotes the key), the tuple's repr otherwise.
 */
export function pyStr(args: readonly unknown[], excType = "Exception"): string {
  if (args.length === 0) return "";
  if (args.length === 1) return excType === "KeyError" ? reprOf(args[0]) : strOf(args[0]);
  const budget = { left: MAX_REPR };
  return `(${args.map((a) => reprOf(a, budget)).join(", ")})`;
}

/**
 * Characters a repr may take before it ends in "...": a stored failure's arguments come from
 * whoever wrote the result, and a value with many shared references (pickle) would otherwise be
 * written out in full at every place it appears.
 */
const MAX_REPR = 64 * 1024;

function strOf(v: unknown): string {
  return typeof v === "string" ? v : reprOf(v);
}

/** Close to Python's `repr` for the JSON-like values results carry; cut at `budget` characters. */
function reprOf(v: unknown, budget = { left: MAX_REPR }): string {
  if (budget.left <= 0) return "...";
  const out = reprParts(v, budget);
  // A container's parts were charged as they were written; only its brackets are left.
  budget.left -= typeof v === "object" && v !== null ? 2 : out.length;
  return out;
}

function reprParts(v: unknown, budget: { left: number }): string {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "string") {
    const quote = v.includes("'") && !v.includes('"') ? '"' : "'";
    const body = v
      .replace(/\\/g, "\\\\")
      .replace(/\n/g, "\\n")
      .replace(/\r/g, "\\r")
      .replace(/\t/g, "\\t")
      .replace(quote === "'" ? /'/g : /"/g, `\\${quote}`);
    return `${quote}${body}${quote}`;
  }
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (Array.isArray(v)) return `[${items(v, (item) => reprOf(item, budget), budget)}]`;
  const r = asRecord(v);
  if (r) return `{${items(Object.entries(r), ([k, val]) => `${reprOf(k, budget)}: ${reprOf(val, budget)}`, budget)}}`;
  return String(v);
}

/** The reprs of `list` joined by ", ", up to the budget. */
function items<T>(list: readonly T[], repr: (item: T) => string, budget: { left: number }): string {
  const parts: string[] = [];
  for (const item of list) {
    if (budget.left <= 0) {
      parts.push("...");
      break;
    }
    parts.push(repr(item));
  }
  return parts.join(", ");
}
