/**
 * @module
 * Everything a Celery task message says about the task, independent of protocol version.
 */
import type { Signature } from "../options.js";

export interface TaskFields {
  id: string;
  name: string;
  /** A `PyTuple` for `delay(...)` (Python passes a tuple), a plain array for `args: [...]`. */
  args: unknown[];
  kwargs: Record<string, unknown>;
  /** `isoformat()` text or null. */
  eta: string | null;
  expires: string | null;
  retries: number;
  timeLimit: number | null;
  softTimeLimit: number | null;
  rootId: string;
  parentId: string | null;
  groupId: string | null;
  groupIndex: number | null;
  shadow: string | null;
  ignoreResult: boolean;
  origin: string;
  callbacks: Signature[] | null;
  errbacks: Signature[] | null;
}

/** A signature as Celery puts it in the message: a dict with every key present. */
export function signatureDict(s: Signature): Record<string, unknown> {
  return {
    task: s.task,
    args: s.args ?? [],
    kwargs: s.kwargs ?? {},
    options: s.options ?? {},
    subtask_type: null,
    immutable: s.immutable ?? false,
  };
}
