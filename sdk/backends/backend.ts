/**
 * @module
 * The seam for result backends (Celery's `result_backend`).
 */

export type TaskState = "PENDING" | "RECEIVED" | "STARTED" | "SUCCESS" | "FAILURE" | "RETRY" | "REVOKED" | (string & {});

export const READY_STATES: ReadonlySet<string> = new Set(["SUCCESS", "FAILURE", "REVOKED"]);

/** A task's stored state, as Celery's backends keep it (`celery-task-meta-<id>`). */
export interface ResultMeta {
  taskId: string;
  status: TaskState;
  /** The return value, or for FAILURE the exception dict `{exc_type, exc_message, exc_module}`. */
  result: unknown;
  traceback: string | null;
  dateDone: string | null;
  /** For a failed task, the Python exception as the backend decoded it (type and `str(exc)`). */
  exception?: { excType: string; excMessage: string };
}

export interface WaitOptions {
  /** Milliseconds. @default no limit */
  timeout?: number;
}

export interface ResultBackend {
  readonly kind: string;
  /** Current meta; PENDING when the backend knows nothing of the id. */
  getMeta(taskId: string): Promise<ResultMeta>;
  /** Resolves once every id is in a ready state (one subscription for all); rejects with TimeoutError. */
  waitFor(taskIds: readonly string[], options?: WaitOptions): Promise<Map<string, ResultMeta>>;
  forget(taskId: string): Promise<void>;
  /** Called before a task is published (the rpc backend declares its reply queue here, as Celery does). */
  onTaskCall?(taskId: string): Promise<void>;
  close(): Promise<void>;
}
