/**
 * @module
 * Schedule names derived from the task id, so a repeated park request for the same task maps to
 * the same schedule (Scheduler answers ConflictException, which we treat as done).
 */
const PREFIX = "celery-edge-";
const VALID = /^[0-9a-zA-Z_.-]+$/;

export async function scheduleName(taskId: string): Promise<string> {
  const candidate = PREFIX + taskId;
  if (candidate.length <= 64 && VALID.test(taskId)) return candidate;
  // Ids Scheduler cannot take as names (length, characters) are hashed: still deterministic.
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(taskId)));
  const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  return PREFIX + "h-" + hex.slice(0, 48);
}

/** `at(yyyy-mm-ddThh:mm:ss)` in UTC, as Scheduler's one-time expressions want it. */
export function atExpression(ms: number): string {
  return `at(${new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19)})`;
}
