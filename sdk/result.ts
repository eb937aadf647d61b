/**
 * @module
 * `AsyncResult`: a handle on a sent task, like Celery's. It waits through its app, with the app's
 * backend and the app's `resultWaiting` (`waiting.ts`; edge bundles have no result backend, so
 * they do not carry that code: there `get()` throws `UnsupportedRuntimeError` unless the app was
 * given `resultWaiting` and a fetch-capable backend).
 */
import { READY_STATES, type ResultBackend, type TaskState } from "./backends/backend.js";

/** What `AsyncResult` needs from its app; kept narrow so results can be re-attached anywhere. */
export interface ResultHost {
  /** How the app waits on its backend; throws `UnsupportedRuntimeError` when it was given no way. */
  waiting(): ResultWaiting;
  /** The app's result backend; throws `ConfigurationError` when it has none. */
  backend(): ResultBackend;
  revoke(taskId: string, options?: { terminate?: boolean; signal?: string }): Promise<void>;
}

export interface GetOptions {
  /** Milliseconds before `TimeoutError`. @default no limit */
  timeout?: number;
  /** Reject with `TaskFailedError` when the task failed; `false` returns the exception info instead. @default true */
  propagate?: boolean;
}

/** The waiting half of results (see `waiting.ts`): an app option, so bundles without it stay small. */
export interface ResultWaiting {
  gather(backend: ResultBackend, results: readonly AsyncResult<unknown>[], options: GetOptions): Promise<unknown[]>;
  state(backend: ResultBackend, taskId: string): Promise<TaskState>;
}

export class AsyncResult<R = unknown> {
  // Assigned in the constructor (`declare`: no class-field definitions in every edge bundle).
  declare readonly id: string;
  /** Set when the task was sent with `ignoreResult: true`: there is nothing to wait for. */
  declare readonly ignoreResult: boolean;
  declare private readonly host: ResultHost;

  /** Made by the app (`app.asyncResult(id)`, or by sending a task). */
  constructor(id: string, host: ResultHost, options: { ignoreResult?: boolean } = {}) {
    this.id = id;
    this.host = host;
    this.ignoreResult = options.ignoreResult ?? false;
  }

  /** Waits for the task and returns its result (Celery's `result.get()`). */
  async get(options: GetOptions = {}): Promise<R> {
    const [value] = await this.host.waiting().gather(this.host.backend(), [this], options);
    return value as R;
  }

  state(): Promise<TaskState> {
    return this.host.waiting().state(this.host.backend(), this.id);
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
    return this.host.backend().forget(this.id);
  }

  /** Cancels the task: a parked task's schedule is deleted; a queued one is revoked on the workers. */
  revoke(options?: { terminate?: boolean; signal?: string }): Promise<void> {
    return this.host.revoke(this.id, options);
  }

  toString(): string {
    return this.id;
  }
}
