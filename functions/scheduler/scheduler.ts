/**
 * @module
 * The scheduler function's work for one record of its queue. Three kinds of record arrive:
 * - a far-ETA task envelope (from the relay or an SDK with `parking`): parked as a one-time
 *   EventBridge Scheduler schedule that fires `leadSeconds` before the ETA, back into this queue;
 * - that same envelope, marked `stage: "release"`, when the schedule fires: handed to the intake
 *   queue with `DelaySeconds` = the time left, so the relay publishes it seconds before the ETA;
 * - a revoke command (`celery.pidbox`): the task's schedule is deleted.
 * The function is the only holder of Scheduler rights; producers and the relay only send to SQS.
 */
import { ConflictException, CreateScheduleCommand, DeleteScheduleCommand, ResourceNotFoundException, type SchedulerClient } from "@aws-sdk/client-scheduler";
import type { SQSRecord } from "aws-lambda";
import { readEnvelope, toEnvelope } from "../../sdk/envelope.js";
import { PayloadTooLargeError, SchedulingError, asCeleryError } from "../../sdk/errors.js";
import { msUntilEta, type TaskMessage } from "../../sdk/protocol/message.js";
import { PIDBOX_EXCHANGE, REVOKE_TASK_NAME } from "../../sdk/revoke.js";
import type { Transport } from "../../sdk/transport.js";
import { SCHEDULER_MAX_INPUT_BYTES } from "../../sdk/transports/sqs.js";
import type { RelayLogger } from "../relay/relay.js";
import { atExpression, scheduleName } from "./schedule-name.js";

/** Never create a schedule that would fire sooner than this: release instead. */
const MIN_PARK_MS = 5_000;

export interface SchedulerDeps {
  scheduler: SchedulerClient;
  /** The relay's intake queue. */
  intake: Transport;
  group: string;
  /** ARN of this function's own queue: where schedules deliver. */
  targetArn: string;
  roleArn: string;
  deadLetterArn?: string;
  thresholdSeconds: number;
  leadSeconds: number;
  logger: RelayLogger;
  now?: () => number;
}

export type SchedulerAction = "parked" | "duplicate" | "released" | "revoked";

export async function handleSchedulerRecord(record: SQSRecord, deps: SchedulerDeps): Promise<SchedulerAction> {
  try {
    return await handle(record, deps);
  } catch (err) {
    deps.logger.error("scheduler record failed", {
      messageId: record.messageId,
      receiveCount: record.attributes?.ApproximateReceiveCount,
      code: (err as { code?: string }).code,
      reason: err instanceof Error ? err.message : String(err),
    });
    throw err;
  }
}

async function handle(record: SQSRecord, deps: SchedulerDeps): Promise<SchedulerAction> {
  const { message, stage } = readEnvelope(record.body);
  const log = { messageId: record.messageId, taskId: message.meta.id, taskName: message.meta.name };
  const name = await scheduleName(message.meta.id);

  if (message.exchange === PIDBOX_EXCHANGE && message.meta.name === REVOKE_TASK_NAME) {
    try {
      await deps.scheduler.send(new DeleteScheduleCommand({ Name: name, GroupName: deps.group }));
      deps.logger.info("revoked parked task", log);
    } catch (err) {
      if (!(err instanceof ResourceNotFoundException)) throw wrap(err, message.meta.id, "deleting its schedule");
      deps.logger.info("revoke: no parked schedule (already released or never parked)", log);
    }
    return "revoked";
  }

  const now = deps.now?.() ?? Date.now();
  const eta = now + msUntilEta(message.meta, now);
  const fireAt = eta - deps.leadSeconds * 1000;
  if (stage === "release" || eta - now <= deps.thresholdSeconds * 1000 || fireAt - now < MIN_PARK_MS) {
    await deps.intake.publish(message);
    deps.logger.info("released task to the intake queue", { ...log, eta: message.meta.eta, dueInMs: eta - now });
    return "released";
  }
  return park(message, name, fireAt, deps, log);
}

/** The schedule's Input: the envelope, marked so its return is released, never parked again. */
export function releaseInput(message: TaskMessage): string {
  return JSON.stringify({ ...toEnvelope(message), stage: "release" });
}

async function park(message: TaskMessage, name: string, fireAt: number, deps: SchedulerDeps, log: Record<string, unknown>): Promise<SchedulerAction> {
  const input = releaseInput(message);
  const size = new TextEncoder().encode(input).length;
  if (size > SCHEDULER_MAX_INPUT_BYTES) {
    throw new PayloadTooLargeError(`parked task ${message.meta.id} as a schedule Input`, size, SCHEDULER_MAX_INPUT_BYTES);
  }
  try {
    await deps.scheduler.send(
      new CreateScheduleCommand({
        Name: name,
        GroupName: deps.group,
        ScheduleExpression: atExpression(fireAt),
        ScheduleExpressionTimezone: "UTC",
        FlexibleTimeWindow: { Mode: "OFF" },
        ActionAfterCompletion: "DELETE",
        State: "ENABLED",
        Description: `celery-edge: ${message.meta.name} ${message.meta.id} due ${message.meta.eta}`,
        Target: {
          Arn: deps.targetArn,
          RoleArn: deps.roleArn,
          Input: input,
          RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86_400 },
          ...(deps.deadLetterArn ? { DeadLetterConfig: { Arn: deps.deadLetterArn } } : {}),
        },
      }),
    );
  } catch (err) {
    if (err instanceof ConflictException) {
      deps.logger.info("already parked (duplicate request)", { ...log, schedule: name });
      return "duplicate";
    }
    throw wrap(err, message.meta.id, "creating its schedule");
  }
  deps.logger.info("parked task", { ...log, schedule: name, fireAt: new Date(fireAt).toISOString(), eta: message.meta.eta });
  return "parked";
}

function wrap(err: unknown, taskId: string, doing: string): SchedulingError {
  const e = asCeleryError(err, (m, cause) => new SchedulingError(`task ${taskId}: ${doing} failed: ${m}`, taskId, { cause }));
  return e instanceof SchedulingError ? e : new SchedulingError(`task ${taskId}: ${doing} failed: ${e.message}`, taskId, { cause: e });
}
