/**
 * @module
 * `AsyncResult`: a handle on a sent task, like Celery's. Waiting is done by `waiting.ts`, which the
 * Node entry enables (edge bundles have no result backend, so they do not carry that code; there
 * `get()` throws `UnsupportedRuntimeError` unless `enableResults()` was called with a fetch-capable
 * backend configured).
 */
import { UnsupportedRuntimeError } from "./errors.js";
import { READY_STATES, type ResultBackend, type TaskState } from "./backends/backend.js";

/** What `AsyncResult` needs from the app; kept narrow so results can be re-attached anywhere. */
export interface ResultHost {
  resultBackendOrThrow(): ResultBackend;
  revoke(taskId: string, options?: { terminate?: boolean; signal?: string }): Promise<void>;
}

export interface GetOptions {
  /** Milliseconds before `TimeoutError`. @default no limit */
  timeout?: number;
  /** Reject with `TaskFailedError` when the task failed; `false` returns the exception info instead. @default true */
  propagate?: boolean;
}

/** The waiting half of results, installed by `enableResults()` (see `waiting.ts`). */
export interface ResultWaiting {
  gather(backend: ResultBackend, results: readonly AsyncResult<unknown>[], options: GetOptions): Promise<unknown[]>;
  state(backend: ResultBackend, taskId: string): Promise<TaskState>;
}

let waiting: ResultWaiting | undefined;

/** @internal Called by `enableResults()`. */
export function installResultWaiting(impl: ResultWaiting): void {
  waiting = impl;
}

export function resultWaiting(): ResultWaiting {
  if (!waiting) {
    throw new UnsupportedRuntimeError(
      'waiting for results is not enabled here: import "celery-edge" under Node, or call enableResults() and pass a fetch-based ResultBackend',
    );
  }
  return waiting;
}

export class AsyncResult<R = unknown> {
  // Assigned in the constructor (`declare`: no class-field definitions in every edge bundle).
  declare readonly id: string;
  /** Set when the task was sent with `ignoreResult: true`: there is nothing to wait for. */
  declare readonly ignoreResult: boolean;
  /** @internal */
  declare readonly host: ResultHost;

  constructor(id: string, host: ResultHost, options: { ignoreResult?: boolean } = {}) {
    this.id = id;
    this.host = host;
    this.ignoreResult = options.ignoreResult ?? false;
  }

  /** Waits for the task and returns its result (Celery's `result.get()`). */
  async get(options: GetOptions = {}): Promise<R> {
    const [value] = await resultWaiting().gather(this.host.resultBackendOrThrow(), [this], options);
    return value as R;
  }

  state(): Promise<TaskState> {
    return resultWaiting().state(this.host.resultBackendOrThrow(), this.id);
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
