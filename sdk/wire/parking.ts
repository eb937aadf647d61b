/**
 * @module
 * The parking rule, in one place for the app, the relay, the scheduler and the construct: a task due
 * later than the threshold is parked in EventBridge Scheduler instead of being held by a broker, and
 * its schedule fires a lead time before its ETA.
 */
import { millisOf, parseIso } from "../protocol/isoformat.js";
import type { TaskMeta } from "../protocol/message.js";
import { SQS_MAX_DELAY_SECONDS } from "./limits.js";

/** The longest an SQS delay can hold a task; nothing further is left to a queue. */
export const DEFAULT_PARK_THRESHOLD_SECONDS = SQS_MAX_DELAY_SECONDS;
/** How long before its ETA a parked task's schedule fires. */
export const DEFAULT_LEAD_SECONDS = 120;
/** A schedule that would fire sooner than this is not made: the task is released instead. */
export const MIN_PARK_MS = 5_000;

/** Milliseconds until the task's ETA (negative when past, 0 when it has none). */
export function msUntilEta(meta: Pick<TaskMeta, "eta">, now = Date.now()): number {
  return meta.eta === null ? 0 : millisOf(parseIso(meta.eta, "eta")) - now;
}

/** Whether a task is due later than `thresholdSeconds`: such tasks are parked. */
export function isFarEta(meta: Pick<TaskMeta, "eta">, thresholdSeconds = DEFAULT_PARK_THRESHOLD_SECONDS, now = Date.now()): boolean {
  return msUntilEta(meta, now) > thresholdSeconds * 1000;
}
