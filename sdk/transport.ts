/**
 * @module
 * The one seam between the producer and wherever messages go. Adapters: `transports/amqp.ts`
 * (Node, amqplib) and `transports/sqs.ts` (universal, the SQS relay); a user's own adapter
 * implements the same four members.
 *
 * Time is one budget per call: `timeout` is how long the whole call may take, connecting included.
 * How an adapter spends it is its own business (AMQP: connect, then wait for the confirms; SQS:
 * one HTTPS request, aborted when the budget is spent), and so are its defaults, which it takes as
 * construction options.
 */
import type { CeleryError } from "./errors.js";
import type { PublishReceipt, TaskMessage } from "./protocol/message.js";

export type PublishOutcome = { ok: true; receipt: PublishReceipt } | { ok: false; error: CeleryError };

export interface PublishOptions {
  /**
   * Milliseconds the whole call may take — connecting, waiting out the broker's flow control and
   * the broker's answer — after which every message not yet accepted rejects with `TimeoutError`
   * (`ERR_TIMEOUT`). @default the transport's own limits (AMQP: its `connectTimeout` to connect,
   * then its `publishTimeout` for the confirms; SQS: 30 000 for the whole call)
   */
  timeout?: number;
  /**
   * @deprecated Pass `timeout`, and the connect limit as the transport's `connectTimeout`. Still
   * honoured: AMQP gives up connecting after this many milliseconds (within `timeout` when both are
   * set); SQS adds it to `publishTimeout` when `timeout` is unset.
   */
  connectTimeout?: number;
  /**
   * @deprecated Pass `timeout`. Still honoured when `timeout` is unset: AMQP waits this many
   * milliseconds for the confirms once connected; SQS allows `connectTimeout` + this (30 000 when
   * unset) for the request.
   */
  publishTimeout?: number;
}

export interface Transport {
  /** Short name for errors and logs ("amqp", "sqs"). */
  readonly kind: string;
  /** Resolves once the message is durably accepted; rejects with a `CeleryError` otherwise. */
  publish(message: TaskMessage, options?: PublishOptions): Promise<PublishReceipt>;
  /** Pipelines many messages; one outcome per message, in order. Never throws for a single failure. */
  publishMany(messages: readonly TaskMessage[], options?: PublishOptions): Promise<PublishOutcome[]>;
  /**
   * Publishes Celery events (`task-sent`) where they cannot harm tasks: a refused event fails
   * alone, never a task in flight. One outcome per event. Optional: callers fall back to `publishMany`.
   */
  publishEvents?(events: readonly TaskMessage[], options?: PublishOptions): Promise<PublishOutcome[]>;
  /** Lets calls in flight settle, then releases what the transport holds (connections). */
  close(): Promise<void>;
}
