/**
 * @module
 * The `waitFor` calls in flight of one result backend, keyed by task id.
 *
 * Backends differ in how a meta reaches them (redis pub/sub, an rpc reply queue) but not in what a
 * wait is: a set of ids that each need a ready meta, one timeout over all of them, and one error that
 * ends it. Many calls may await the same id, so one arriving meta settles every one of them.
 */
import { ResultBackendError, TimeoutError, asCeleryError, type CeleryError } from "../errors.js";
import { READY_STATES, type ResultMeta } from "./backend.js";

/** One `waitFor` call, as the backend's `start` sees it. */
export interface Wait {
  /** Every id of the call, each once. */
  readonly ids: readonly string[];
  /** The ids still without a ready meta; empty once the wait is over, however it ended. */
  readonly pending: ReadonlySet<string>;
}

export interface WaitCallOptions {
  /** Milliseconds. @default no limit */
  timeout?: number;
  /** A ready meta the backend already holds for an id; such ids are never registered. */
  known?(id: string): ResultMeta | undefined;
  /** The backend's own part of the wait, begun once the ids are registered; a rejection ends the wait. */
  start?(wait: Wait): Promise<void>;
}

export interface WaiterRegistryOptions {
  /** `scheme://host:port/…` without credentials, for the errors of `start`. */
  where: string;
  /** Ids that have just gained their first waiter (redis subscribes to their channels). */
  watch?(ids: string[]): void;
  /** Ids whose last waiter has just left (redis unsubscribes). */
  unwatch?(ids: string[]): void;
}

class Waiter implements Wait {
  readonly pending: Set<string>;
  readonly metas = new Map<string, ResultMeta>();
  timer: ReturnType<typeof setTimeout> | undefined;
  over = false;

  constructor(
    readonly ids: readonly string[],
    readonly settle: (error?: CeleryError) => void,
  ) {
    this.pending = new Set(ids);
  }
}

export class WaiterRegistry {
  private readonly byId = new Map<string, Set<Waiter>>();

  constructor(private readonly options: WaiterRegistryOptions) {}

  /** Resolves with a ready meta for every id; rejects with TimeoutError naming the ids still pending. */
  wait(taskIds: readonly string[], options: WaitCallOptions = {}): Promise<Map<string, ResultMeta>> {
    const ids = [...new Set(taskIds)];
    return new Promise<Map<string, ResultMeta>>((resolve, reject) => {
      const waiter: Waiter = new Waiter(ids, (error) => {
        // Whichever comes first ends the wait (last meta, timeout, lost connection, failed start); the rest are too late.
        if (waiter.over) return;
        waiter.over = true;
        clearTimeout(waiter.timer);
        this.release(waiter);
        if (error) reject(error);
        else resolve(waiter.metas);
      });
      for (const id of ids) {
        const seen = options.known?.(id);
        if (seen && READY_STATES.has(seen.status)) {
          waiter.pending.delete(id);
          waiter.metas.set(id, seen);
        }
      }
      if (waiter.pending.size === 0) return resolve(waiter.metas);
      this.register(waiter);
      const timeout = options.timeout;
      if (timeout !== undefined) {
        waiter.timer = setTimeout(() => waiter.settle(new TimeoutError(timeoutMessage(timeout, [...waiter.pending], ids.length))), timeout);
      }
      options.start?.(waiter).catch((err: unknown) =>
        waiter.settle(asCeleryError(err, (m, cause) => new ResultBackendError(`waiting for results on ${this.options.where}: ${m}`, { cause }))),
      );
    });
  }

  /** Whether any wait still needs a meta for this id. */
  has(taskId: string): boolean {
    return this.byId.has(taskId);
  }

  /** Hands a meta to every wait of its id; states that are not ready (STARTED, RETRY) end no wait, as in Celery. */
  deliver(taskId: string, meta: ResultMeta): void {
    if (!READY_STATES.has(meta.status)) return;
    for (const w of [...(this.byId.get(taskId) ?? [])]) {
      if (!w.pending.delete(taskId)) continue;
      w.metas.set(taskId, meta);
      if (w.pending.size === 0) w.settle();
    }
  }

  /** Ends every wait of one id, e.g. when its meta cannot be decoded. */
  rejectFor(taskId: string, error: CeleryError): void {
    for (const w of [...(this.byId.get(taskId) ?? [])]) w.settle(error);
  }

  /** Ends every wait, e.g. when the connection the metas arrive on is lost. */
  rejectAll(error: CeleryError): void {
    const all = new Set<Waiter>();
    for (const set of this.byId.values()) for (const w of set) all.add(w);
    for (const w of all) w.settle(error);
  }

  private register(waiter: Waiter): void {
    const fresh: string[] = [];
    for (const id of waiter.pending) {
      const set = this.byId.get(id);
      if (set) set.add(waiter);
      else {
        this.byId.set(id, new Set([waiter]));
        fresh.push(id);
      }
    }
    if (fresh.length > 0) this.options.watch?.(fresh);
  }

  private release(waiter: Waiter): void {
    waiter.pending.clear();
    const idle: string[] = [];
    for (const id of waiter.ids) {
      const set = this.byId.get(id);
      if (!set?.delete(waiter) || set.size > 0) continue;
      this.byId.delete(id);
      idle.push(id);
    }
    if (idle.length > 0) this.options.unwatch?.(idle);
  }
}

function timeoutMessage(timeout: number, left: string[], total: number): string {
  const what = left.length === 1 ? `task ${left[0]}` : `${left.length} of ${total} tasks (${left.slice(0, 3).join(", ")}${left.length > 3 ? ", …" : ""})`;
  return `timed out after ${timeout} ms waiting for ${what}`;
}
