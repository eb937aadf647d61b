/**
 * @module
 * Revoking, as Python's `app.control.revoke(task_id)`: a broadcast `revoke` command on the
 * `celery.pidbox` fanout exchange that every worker's control consumer receives, so a worker
 * discards the task when it arrives. A parked task (far ETA) is cancelled by the scheduler function,
 * which receives the same command on its queue and deletes the schedule.
 */
import type { Celery } from "./app.js";
import { getSerializer } from "./serializers/index.js";
import type { TaskMessage } from "./protocol/message.js";

export const PIDBOX_EXCHANGE = "celery.pidbox";
export const REVOKE_TASK_NAME = "celery.control.revoke";

export interface RevokeOptions {
  /** Also kill the task if a worker is already running it. @default false */
  terminate?: boolean;
  /** Signal used with `terminate`. @default "SIGTERM" */
  signal?: string;
}

/** kombu Mailbox._publish's message for `revoke`, json-encoded, transient, headers clock/expires. */
export function revokeMessage(taskId: string | readonly string[], options: RevokeOptions = {}, clock = 1): TaskMessage {
  const first = typeof taskId === "string" ? taskId : taskId[0]!;
  const json = getSerializer("json");
  const body = {
    method: "revoke",
    arguments: { task_id: taskId, terminate: options.terminate ?? false, signal: options.signal ?? "SIGTERM" },
    destination: null,
    pattern: null,
    matcher: null,
  };
  return {
    exchange: PIDBOX_EXCHANGE,
    routingKey: "",
    mandatory: false,
    immediate: false,
    properties: {
      contentType: json.contentType,
      contentEncoding: json.contentEncoding,
      deliveryMode: 1,
      headers: { clock, expires: 0 },
    },
    body: json.encode(body),
    // kombu declares the mailbox exchange as the workers do: fanout, not durable.
    declare: { exchange: PIDBOX_EXCHANGE, exchangeType: "fanout", routingKey: "", durable: false },
    meta: { id: first, name: REVOKE_TASK_NAME, eta: null },
  };
}

let clock = 0;

export async function revokeTask(app: Celery, taskId: string, options: RevokeOptions): Promise<void> {
  const message = revokeMessage(taskId, options, ++clock);
  const parking = app.options.parking;
  // The scheduler function deletes a parked schedule; the broker copy reaches running workers.
  await Promise.all([parking?.transport.publish(message), app.transport === parking?.transport ? undefined : app.transport.publish(message)]);
}
