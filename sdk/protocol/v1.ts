/**
 * @module
 * Celery message protocol 1, for workers older than Celery 4: an empty headers table and
 * everything in a dict body, keys in Celery's order.
 */
import { PyTuple } from "../serializers/python-values.js";
import { signatureDict, type TaskFields } from "./fields.js";

export function bodyV1(f: TaskFields): Record<string, unknown> {
  return {
    task: f.name,
    id: f.id,
    args: f.args,
    kwargs: f.kwargs,
    group: f.groupId,
    group_index: f.groupIndex,
    retries: f.retries,
    eta: f.eta,
    expires: f.expires,
    utc: true,
    callbacks: f.callbacks?.map(signatureDict) ?? null,
    errbacks: f.errbacks?.map(signatureDict) ?? null,
    timelimit: PyTuple.of(f.timeLimit, f.softTimeLimit),
    taskset: f.groupId,
    chord: null,
  };
}
