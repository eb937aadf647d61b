/**
 * @module
 * The scheduler function's work for one record of its queue. Three kinds of record arrive:
 * - a far-ETA task envelope (from the relay or an SDK with `parking`): parked as a one-time
 *   EventBridge Scheduler schedule that fires `leadSeconds` before the ETA, back into this queue;
 * - that same envelope, marked `stage: "release"`, when the schedule fires: handed to the intake
 *   queue with `DelaySeconds` = the time left, so the relay publishes it seconds before the ETA;
 * - a revoke command (`celery.pidbox`): a parked task's schedule is deleted when the revoke comes
 *   from whoever parked it (or a policy admin); ids with no schedule go back to the intake queue
 *   marked `broadcast`, for the relay to publish to the workers.
 * The function is the only holder of Scheduler rights; producers and the relay only send to SQS.
 * Its queue takes records from producers too, so the task is read from the message itself and the
 * sender comes from SQS, except from the trusted forwarders (the relay, the schedules' role).
 */
import { ConflictException, CreateScheduleCommand, DeleteScheduleCommand, GetScheduleCommand, ResourceNotFoundException, type SchedulerClient } from "@aws-sdk/client-scheduler";
import type { SQSRecord } from "aws-lambda";
import { readEnvelope, toEnvelope } from "../../sdk/wire/envelope.js";
import { PayloadTooLargeError, SchedulingError, asCeleryError } from "../../sdk/errors.js";
import type { TaskMessage } from "../../sdk/protocol/message.js";
import { SCHEDULER_MAX_INPUT_BYTES } from "../../sdk/wire/limits.js";
import { MIN_PARK_MS, msUntilEta } from "../../sdk/wire/parking.js";
import { revokeMessage } from "../../sdk/revoke.js";
import type { Transport } from "../../sdk/transport.js";
import { cut, isPoison, senderOf, type RelayLogger } from "../relay/relay.js";
import { isControlEnvelope, readRevoke } from "../shared/control.js";
import { taskFields, type LifecycleSink, type TaskFields } from "../shared/lifecycle-events.js";
import { isAdmin, type ResolvedPolicy } from "../shared/policy.js";
import { agreeWithSummary, readTaskView } from "../shared/task-view.js";
import { atExpression, scheduleName } from "./schedule-name.js";

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
  /** Its `admins` may revoke any parked task. */
  policy: ResolvedPolicy;
  /** Role ids (the relay's, the schedules' own) whose records name the original sender. */
  trustedForwarders: readonly string[];
  logger: RelayLogger;
  now?: () => number;
  /** This invocation's lifecycle events (only when an event bus is configured). */
  events?: LifecycleSink;
}

export type SchedulerAction = "parked" | "duplicate" | "released" | "revoked" | "refused";


export async function handleSchedulerRecord(record: SQSRecord, deps: SchedulerDeps): Promise<SchedulerAction> {
  const task: TaskFields = {};
  try {
    return await handle(record, deps, task);
  } catch (err) {
    deps.events?.failed({ err, poison: isPoison(err), messageId: record.messageId, receiveCount: Number(record.attributes?.ApproximateReceiveCount ?? 1), task });
    deps.logger.error("scheduler record failed", {
      messageId: record.messageId,
      receiveCount: record.attributes?.ApproximateReceiveCount,
      code: (err as { code?: string }).code,
      reason: cut(err instanceof Error ? err.message : String(err)),
    });
    throw err;
  }
}

async function handle(record: SQSRecord, deps: SchedulerDeps, task: TaskFields): Promise<SchedulerAction> {
  const { message: raw, stage, sender: claimed } = readEnvelope(record.body);
  Object.assign(task, taskFields(raw));
  const { sender, forwarded } = senderOf(record, claimed, deps.trustedForwarders);
  if (isControlEnvelope(raw)) return revoke(raw, sender ?? "", deps, record.messageId);

  const meta = agreeWithSummary(await readTaskView(raw), raw.meta);
  const message: TaskMessage = { ...raw, meta: { id: meta.id, name: meta.name, eta: meta.eta, expires: meta.expires, sender: sender ?? "" } };
  const log = { messageId: record.messageId, taskId: cut(meta.id), taskName: cut(meta.name), sender: cut(sender ?? ""), ...(forwarded && stage ? { stage } : {}) };
  const name = await scheduleName(meta.id);
  const now = deps.now?.() ?? Date.now();
  const eta = now + msUntilEta(meta, now);
  const fireAt = eta - deps.leadSeconds * 1000;
  // Only a schedule firing (a trusted forwarder) may say "release"; anyone else is asking to park.
  const fired = forwarded && stage === "release";
  if (fired || eta - now <= deps.thresholdSeconds * 1000 || fireAt - now < MIN_PARK_MS) {
    await deps.intake.publish(message);
    deps.logger.info("released task to the intake queue", { ...log, eta: meta.eta, dueInMs: eta - now });
    // Released pairs with Parked: only a fired schedule's task; a request too near its ETA to
    // park goes straight on, as an unparked task would, without either event.
    if (fired) deps.events?.emit("Task Released", taskFields(message));
    return "released";
  }
  return park(message, name, fireAt, deps, log);
}

/** Principals compare by their role (or user) id, so any session of the role that parked may revoke. */
const principalOf = (senderId: string): string => senderId.split(":")[0]!;

async function revoke(raw: TaskMessage, sender: string, deps: SchedulerDeps, messageId: string): Promise<SchedulerAction> {
  const ids = readRevoke(raw);
  const toBroadcast: string[] = [];
  const refused: string[] = [];
  for (const id of ids) {
    const name = await scheduleName(id);
    const log = { messageId, taskId: cut(id), sender: cut(sender) };
    let input: string | undefined;
    try {
      const found = await deps.scheduler.send(new GetScheduleCommand({ Name: name, GroupName: deps.group }));
      input = found.Target?.Input ?? "";
    } catch (err) {
      if (!(err instanceof ResourceNotFoundException)) throw wrap(err, id, "reading its schedule");
      toBroadcast.push(id);
      continue;
    }
    const owner = ownerOf(input);
    if (!isAdmin(deps.policy, sender) && (owner === undefined || principalOf(owner) !== principalOf(sender))) {
      // Consumed, not failed: retried later, the schedule would be gone and the revoke would pass.
      deps.logger.error("revoke refused: the task was parked by another sender", { ...log, code: "ERR_POLICY" });
      deps.events?.emit("Task Rejected", { ...taskFields(raw), taskId: id, messageId, code: "ERR_POLICY", reason: "revoke refused: the task was parked by another sender" });
      refused.push(id);
      continue;
    }
    try {
      await deps.scheduler.send(new DeleteScheduleCommand({ Name: name, GroupName: deps.group }));
      deps.logger.info("revoked parked task", log);
      // Ids without a schedule are handed back below; the relay reports them once broadcast.
      deps.events?.emit("Task Revoked", { ...parkedFields(input), taskId: id, parked: true });
    } catch (err) {
      if (!(err instanceof ResourceNotFoundException)) throw wrap(err, id, "deleting its schedule");
      toBroadcast.push(id); // fired meanwhile: it is on its way to the broker
    }
  }
  if (toBroadcast.length > 0) {
    const broadcast = revokeMessage(toBroadcast);
    await deps.intake.publish({ ...broadcast, meta: { ...broadcast.meta, sender, stage: "broadcast" } });
    deps.logger.info("revoke handed back for the workers (no parked schedule)", { messageId, taskIds: cut(toBroadcast.join(",")) });
  }
  return refused.length === ids.length ? "refused" : "revoked";
}

/** The parked task's name, eta and destination, from the summary its schedule's Input carries. */
function parkedFields(input: string): TaskFields {
  try {
    const e = JSON.parse(input) as { task?: { name?: unknown; eta?: unknown }; exchange?: unknown; routingKey?: unknown; declare?: { queue?: unknown } | null };
    const text = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
    const exchange = text(e.exchange);
    const routingKey = text(e.routingKey);
    return {
      ...(text(e.task?.name) !== undefined ? { taskName: text(e.task?.name) } : {}),
      ...(text(e.task?.eta) !== undefined ? { eta: text(e.task?.eta) } : {}),
      ...(exchange !== undefined ? { exchange } : {}),
      ...(routingKey !== undefined ? { routingKey } : {}),
      ...(text(e.declare?.queue) !== undefined ? { queue: text(e.declare?.queue) } : exchange === "" && routingKey !== undefined ? { queue: routingKey } : {}),
    };
  } catch {
    return {};
  }
}

/** Who parked a schedule: the `sender` its Input carries. */
function ownerOf(input: string): string | undefined {
  try {
    const parsed = JSON.parse(input) as { sender?: unknown };
    return typeof parsed.sender === "string" && parsed.sender !== "" ? parsed.sender : undefined;
  } catch {
    return undefined;
  }
}

/** The schedule's Input: the envelope, marked so its return is released, never parked again. */
export function releaseInput(message: TaskMessage): string {
  return JSON.stringify(toEnvelope({ ...message, meta: { ...message.meta, stage: "release" } }));
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
        // Scheduler allows 512 characters; the name and id come from the sender.
        Description: `celery-edge: ${message.meta.name} ${message.meta.id} due ${message.meta.eta}`.slice(0, 512),
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
  // Parked once the schedule exists: a duplicate request (ConflictException above) emits nothing.
  deps.events?.emit("Task Parked", { ...taskFields(message), fireAt: new Date(fireAt).toISOString() });
  return "parked";
}

function wrap(err: unknown, taskId: string, doing: string): SchedulingError {
  const e = asCeleryError(err, (m, cause) => new SchedulingError(`task ${taskId}: ${doing} failed: ${m}`, taskId, { cause }));
  return e instanceof SchedulingError ? e : new SchedulingError(`task ${taskId}: ${doing} failed: ${e.message}`, taskId, { cause: e });
}
