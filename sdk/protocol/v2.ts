/**
 * @module
 * Celery message protocol 2: task metadata in AMQP headers (in Celery's order, unset ones present
 * as null), body `[args, kwargs, embed]`. A 2-element body crashes the worker, so embed is always there.
 */
import type { HeaderValue } from "./message.js";
import { pyRepr } from "./python-repr.js";
import { PyTuple } from "../serializers/python-values.js";
import { signatureDict, type TaskFields } from "./fields.js";

/** Celery's `argsrepr_maxsize` / `kwargsrepr_maxsize`. */
const REPR_MAXSIZE = 1024;

export function headersV2(f: TaskFields): Record<string, HeaderValue> {
  return {
    lang: "py",
    task: f.name,
    id: f.id,
    shadow: f.shadow,
    eta: f.eta,
    expires: f.expires,
    group: f.groupId,
    group_index: f.groupIndex,
    retries: f.retries,
    timelimit: [f.timeLimit, f.softTimeLimit],
    root_id: f.rootId,
    parent_id: f.parentId,
    argsrepr: pyRepr(f.args, REPR_MAXSIZE),
    kwargsrepr: pyRepr(f.kwargs, REPR_MAXSIZE),
    origin: f.origin,
    ignore_result: f.ignoreResult,
  };
}

export function bodyV2(f: TaskFields): unknown {
  return PyTuple.of<unknown>(f.args, f.kwargs, {
    callbacks: f.callbacks?.map(signatureDict) ?? null,
    errbacks: f.errbacks?.map(signatureDict) ?? null,
    chain: null,
    chord: null,
  });
}
