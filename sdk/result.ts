/**
 * @module
 * `AsyncResult`: a handle on a sent task, like Celery's. Waiting goes through the app's result backend.
 */
import { ConfigurationError, TaskFailedError } from "./errors.js";
import { READY_STATES, type ResultMeta, type TaskState } from "./backends/backend.js";

/** What `AsyncResult` needs from the app; kept narrow so results can be re-attached anywhere. */
export interface ResultHost {
  resultBackendOrThrow(): import("./backends/backend.js").ResultBackend;
  revoke(taskId: string, options?: { terminate?: boolean; signal?: string }): Promise<void>;
}

export interface GetOptions {
  /** Milliseconds before `TimeoutError`. @default no limit */
  timeout?: number;
  /** Reject with `TaskFailedError` when the task failed; `false` returns the exception info instead. @default true */
  propagate?: boolean;
}

export interface TaskFailure {
  excType: string;
  excMessage: string;
  traceback: string | null;
}

export function failureOf(meta: ResultMeta): TaskFailedError {
  // Backends decode the exception (Celery's dict or a pickled one) where they decode the meta, so
  // that code stays out of edge bundles, which have no backend.
  const raw = (meta.result ?? {}) as { exc_type?: unknown; exc_message?: unknown };
  const info = meta.exception ?? { excType: String(raw.exc_type ?? "Exception"), excMessage: String(raw.exc_message ?? "") };
  const stored = meta.result !== null && meta.result !== undefined;
  const excType = meta.status === "REVOKED" && !stored ? "TaskRevokedError" : info.excType;
  return new TaskFailedError(meta.taskId, excType, info.excMessage, meta.traceback);
}

export class AsyncResult<R = unknown> {
  readonly id: string;
  /** Set when the task was sent with `ignoreResult: true`: there is nothing to wait for. */
  readonly ignoreResult: boolean;
  private readonly host: ResultHost;

  constructor(id: string, host: ResultHost, options: { ignoreResult?: boolean } = {}) {
    this.id = id;
    this.host = host;
    this.ignoreResult = options.ignoreResult ?? false;
  }

  /** Waits for the task and returns its result (Celery's `result.get()`). */
  async get(options: GetOptions = {}): Promise<R> {
    if (this.ignoreResult) {
      throw new ConfigurationError(`task ${this.id} was sent with ignoreResult: true, so the worker stores no result to get`);
    }
    const backend = this.host.resultBackendOrThrow();
    const metas = await backend.waitFor([this.id], options.timeout === undefined ? {} : { timeout: options.timeout });
    return settle<R>(metas.get(this.id)!, options.propagate ?? true);
  }

  async state(): Promise<TaskState> {
    return (await this.host.resultBackendOrThrow().getMeta(this.id)).status;
  }

  async ready(): Promise<boolean> {
    return READY_STATES.has(await this.state());
  }

  async successful(): Promise<boolean> {
    return (await this.state()) === "SUCCESS";
  }

  async failed(): Promise<boolean> {
    return (await this.state()) === "FAILURE";
  }

  /** Removes the stored result (Celery's `forget()`). */
  forget(): Promise<void> {
    return this.host.resultBackendOrThrow().forget(this.id);
  }

  /** Cancels the task: a parked task's schedule is deleted; a queued one is revoked on the workers. */
  revoke(options?: { terminate?: boolean; signal?: string }): Promise<void> {
    return this.host.revoke(this.id, options);
  }

  toString(): string {
    return this.id;
  }
}

/** Result of a SUCCESS meta, or the failure (rejected or returned, per `propagate`). */
export function settle<R>(meta: ResultMeta, propagate: boolean): R {
  if (meta.status === "SUCCESS") return meta.result as R;
  const failure = failureOf(meta);
  if (propagate) throw failure;
  return failure as unknown as R;
}
