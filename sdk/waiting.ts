/**
 * @module
 * Waiting for results: one backend subscription for any number of results, and turning a stored
 * meta into the value or a `TaskFailedError`. Kept apart from `result.ts` so edge bundles, which
 * have no backend, do not carry it: an app waits with the `resultWaiting` it was given (the Node
 * entry's `Celery` gives every app this one).
 */
import { ConfigurationError, TaskFailedError } from "./errors.js";
import type { ResultBackend, ResultMeta } from "./backends/backend.js";
import type { AsyncResult, GetOptions, ResultWaiting } from "./result.js";

export function failureOf(meta: ResultMeta): TaskFailedError {
  // Backends decode the exception (Celery's dict or a pickled one) where they decode the meta, so
  // that code stays out of edge bundles, which have no backend.
  const raw = (meta.result ?? {}) as { exc_type?: unknown; exc_message?: unknown };
  const info = meta.exception ?? { excType: String(raw.exc_type ?? "Exception"), excMessage: String(raw.exc_message ?? "") };
  const stored = meta.result !== null && meta.result !== undefined;
  const excType = meta.status === "REVOKED" && !stored ? "TaskRevokedError" : info.excType;
  return new TaskFailedError(meta.taskId, excType, info.excMessage, meta.traceback);
}

/** Result of a SUCCESS meta, or the failure (rejected or returned, per `propagate`). */
export function settle<R>(meta: ResultMeta, propagate: boolean): R {
  if (meta.status === "SUCCESS") return meta.result as R;
  const failure = failureOf(meta);
  if (propagate) throw failure;
  return failure as unknown as R;
}

/** Waiting on a `ResultBackend`: pass it as `resultWaiting` to `new Celery()` where the entry does not. */
export const resultWaiting: ResultWaiting = {
  async gather(backend: ResultBackend, results: readonly AsyncResult<unknown>[], options: GetOptions): Promise<unknown[]> {
    const ignored = results.find((r) => r.ignoreResult);
    if (ignored) throw new ConfigurationError(`task ${ignored.id} was sent with ignoreResult: true, so the worker stores no result to get`);
    const metas = await backend.waitFor(
      results.map((r) => r.id),
      options.timeout === undefined ? {} : { timeout: options.timeout },
    );
    const propagate = options.propagate ?? true;
    return results.map((r) => settle(metas.get(r.id)!, propagate));
  },
  async state(backend, taskId) {
    return (await backend.getMeta(taskId)).status;
  },
};
