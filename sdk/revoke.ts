/**
 * @module
 * Revoking, as Python's `app.control.revoke(task_id)`: a broadcast `revoke` command on the
 * `celery.pidbox` fanout exchange that every worker's control consumer receives, so a worker
 * discards the task when it arrives. A parked task (far ETA) is cancelled by the scheduler function,
 * which receives the same command on its queue and deletes the schedule. The app numbers its
 * commands (`clock`) and sends them (`app.revoke`).
 */
import { jsonSerializer as json } from "./serializers/json.js";
import type { TaskMessage } from "./protocol/message.js";

export const PIDBOX_EXCHANGE = "celery.pidbox";
export const REVOKE_TASK_NAME = "celery.control.revoke";
/** The mailbox exchange as kombu declares it, as the workers do: fanout, not durable. */
export const PIDBOX_DECLARATION = Object.freeze({ exchange: PIDBOX_EXCHANGE, exchangeType: "fanout", routingKey: "", durable: false } as const);

export interface RevokeOptions {
  /** Also kill the task if a worker is already running it. @default false */
  terminate?: boolean;
  /** Signal used with `terminate`. @default "SIGTERM" */
  signal?: string;
}

/** kombu Mailbox._publish's message for `revoke`, json-encoded, transient, headers clock/expires. */
export function revokeMessage(taskId: string | readonly string[], options: RevokeOptions = {}, clock = 1): TaskMessage {
  const first = typeof taskId === "string" ? taskId : taskId[0]!;
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
    declare: PIDBOX_DECLARATION,
    meta: { id: first, name: REVOKE_TASK_NAME, eta: null },
  };
}
