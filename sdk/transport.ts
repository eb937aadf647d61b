/**
 * @module
 * The one seam between the producer and wherever messages go. Adapters: `transports/amqp.ts`
 * (Node, amqplib) and `transports/sqs.ts` (universal, the SQS relay).
 */
import type { CeleryError } from "./errors.js";
import type { PublishReceipt, TaskMessage } from "./protocol/message.js";

export type PublishOutcome = { ok: true; receipt: PublishReceipt } | { ok: false; error: CeleryError };

export interface PublishOptions {
  /** Milliseconds to wait for the connection to open. */
  connectTimeout?: number;
  /** Milliseconds to wait for the broker's confirm. */
  publishTimeout?: number;
}

export interface Transport {
  /** Short name for errors and logs ("amqp", "sqs"). */
  readonly kind: string;
  /** Resolves once the message is durably accepted; rejects with a `CeleryError` otherwise. */
  publish(message: TaskMessage, options?: PublishOptions): Promise<PublishReceipt>;
  /** Pipelines many messages; one outcome per message, in order. Never throws for a single failure. */
  publishMany(messages: readonly TaskMessage[], options?: PublishOptions): Promise<PublishOutcome[]>;
  close(): Promise<void>;
}
