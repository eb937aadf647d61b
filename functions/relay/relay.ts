/**
 * @module
 * The relay's work for one SQS record: validate the envelope, then publish the exact message to
 * RabbitMQ on a confirm channel, or hand a far-ETA task to the scheduler's queue. Throws on any
 * failure so the batch processor reports the record (and only it) for redelivery.
 */
import type { SQSRecord } from "aws-lambda";
import { decodeEnvelope } from "../../sdk/envelope.js";
import { EnvelopeError } from "../../sdk/errors.js";
import { isFarEta, type TaskMessage } from "../../sdk/protocol/message.js";
import type { Transport } from "../../sdk/transport.js";

export interface RelayLogger {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
  error(message: string, extra: Record<string, unknown>): void;
}

export interface RelayDeps {
  broker: Transport;
  allowedExchanges: ReadonlySet<string>;
  /** Where far-ETA tasks go (the scheduler function's queue); without it they go to the broker as Celery would. */
  park?: { transport: Transport; thresholdSeconds: number };
  forceMandatory: boolean;
  logger: RelayLogger;
  now?: () => number;
}

export type RelayAction = "published" | "parked";

export async function relayRecord(record: SQSRecord, deps: RelayDeps): Promise<RelayAction> {
  const base = { messageId: record.messageId, receiveCount: record.attributes?.ApproximateReceiveCount };
  let message: TaskMessage;
  try {
    message = decodeEnvelope(record.body);
    if (!deps.allowedExchanges.has(message.exchange)) {
      throw new EnvelopeError(`exchange ${JSON.stringify(message.exchange)} is not in the relay's allowlist`);
    }
  } catch (err) {
    deps.logger.error("rejected envelope", { ...base, reason: err instanceof Error ? err.message : String(err) });
    throw err;
  }
  const task = { ...base, taskId: message.meta.id, taskName: message.meta.name };
  try {
    const now = deps.now?.() ?? Date.now();
    if (deps.park && isFarEta(message.meta, deps.park.thresholdSeconds, now)) {
      await deps.park.transport.publish(message);
      deps.logger.info("parked far-ETA task", { ...task, eta: message.meta.eta });
      return "parked";
    }
    await deps.broker.publish(deps.forceMandatory ? { ...message, mandatory: true } : message);
    deps.logger.info("published", { ...task, exchange: message.exchange, routingKey: message.routingKey });
    return "published";
  } catch (err) {
    deps.logger.error("publish failed", { ...task, code: (err as { code?: string }).code, reason: err instanceof Error ? err.message : String(err) });
    throw err;
  }
}
