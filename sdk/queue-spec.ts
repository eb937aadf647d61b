/**
 * @module
 * The app's `queues` entries checked as RabbitMQ would judge them, when a Node app is made: a
 * quorum queue must be durable and (RabbitMQ 3.10) has no priorities. RabbitMQ itself would refuse
 * such a declaration only at the first publish, and only where the queue is missing. Node only by
 * placement, not by need: edge apps publish through the relay, which declares what its policy says.
 */
import { ConfigurationError } from "./errors.js";
import type { QueueSpec, QueueType } from "./routing.js";

const QUEUE_TYPES: readonly unknown[] = ["classic", "quorum"] satisfies QueueType[];

/** Throws a ConfigurationError naming the first entry of `queues` (Celery's `task_queues`) RabbitMQ would refuse. */
export function checkQueueSpecs(queues: Readonly<Record<string, QueueSpec>> | undefined): void {
  if (queues === undefined) return;
  if (typeof queues !== "object" || queues === null) throw new ConfigurationError("queues must be an object of queue specs by name");
  for (const [name, spec] of Object.entries(queues)) {
    const bad = (field: string, why: string): ConfigurationError => new ConfigurationError(`queues[${JSON.stringify(name)}].${field} ${why}`);
    if (typeof spec !== "object" || spec === null) throw new ConfigurationError(`queues[${JSON.stringify(name)}] must be an object`);
    if (spec.durable !== undefined && typeof spec.durable !== "boolean") throw bad("durable", "must be true or false");
    if (spec.queueType !== undefined && !QUEUE_TYPES.includes(spec.queueType)) throw bad("queueType", `must be "classic" or "quorum", got ${JSON.stringify(spec.queueType)}`);
    const given = spec.queueArguments;
    if (given !== undefined && (typeof given !== "object" || given === null || Array.isArray(given))) throw bad("queueArguments", "must be an object");
    const argType = given?.["x-queue-type"];
    // Streams need consumer offsets that Celery workers do not send.
    if (argType !== undefined && !QUEUE_TYPES.includes(argType)) throw bad("queueArguments", `x-queue-type must be "classic" or "quorum", got ${JSON.stringify(argType)}`);
    if (argType !== undefined && spec.queueType !== undefined && argType !== spec.queueType) {
      throw bad("queueType", `is ${JSON.stringify(spec.queueType)} but queueArguments say x-queue-type ${JSON.stringify(argType)}`);
    }
    if ((spec.queueType ?? argType) !== "quorum") continue;
    if (spec.durable === false) throw bad("durable", "must be true for a quorum queue (RabbitMQ only has durable ones)");
    if (given !== undefined && Object.hasOwn(given, "x-max-priority")) {
      throw bad("queueArguments", "x-max-priority is not allowed on a quorum queue (RabbitMQ 3.10 quorum queues have no priorities)");
    }
  }
}
