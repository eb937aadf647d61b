/**
 * @module
 * The exact AMQP message a Celery producer publishes. Every transport takes this one shape, so the
 * direct AMQP path and the SQS relay publish identical bytes.
 */
import type { QueueDeclaration } from "../routing.js";
import type { TaskFields } from "./fields.js";

/** A header value as it goes into the AMQP headers table. Integers become `I`/`L`, other numbers `d`. */
export type HeaderValue = string | number | boolean | null | HeaderValue[] | { [key: string]: HeaderValue };

export interface MessageProperties {
  contentType: string;
  contentEncoding: string;
  /** 2 = persistent, as Celery always sends. */
  deliveryMode: 1 | 2;
  /** Absent unless asked for, as in Celery (default route: 0, see routing). */
  priority?: number;
  /** The task id for tasks; absent on control messages, as kombu sends them. */
  correlationId?: string;
  replyTo?: string;
  /** Milliseconds as a decimal string, from `expires`. */
  expiration?: string;
  /** Ordered: insertion order is wire order. */
  headers: Record<string, HeaderValue>;
}

export interface TaskMessage {
  exchange: string;
  routingKey: string;
  mandatory: boolean;
  immediate: boolean;
  properties: MessageProperties;
  body: Uint8Array;
  /** Queue (with its exchange and binding) to declare first, as kombu's `declare=[queue]` does. */
  declare: QueueDeclaration | null;
  /** Not on the wire: what the transports and relay need to know about the task. */
  meta: TaskMeta;
}

export interface TaskMeta {
  id: string;
  name: string;
  /** ISO 8601 ETA when the task is delayed (also in the message itself), else null. */
  eta: string | null;
  /** ISO 8601 expiry as in the message, else null; absent in envelopes written before it existed. */
  expires?: string | null;
  /**
   * Set only by the relay and the scheduler when one hands a record to the other: who sent it
   * first (an SQS SenderId). Readers trust it only from their configured forwarders.
   */
  sender?: string;
  /** Set only by the scheduler: `release` (a fired schedule) or `broadcast` (a revoke for the broker). */
  stage?: EnvelopeStage;
  /**
   * Celery's `task_send_sent_event`: a `task-sent` event is to follow the task. The builder puts the
   * call's fields here, which the direct AMQP transport makes the event from; an envelope carries
   * only `true` (`sendSentEvent`), and the relay makes the event from the message itself.
   */
  sentEvent?: TaskFields | true;
}

export type EnvelopeStage = "release" | "broadcast";

/** What a transport reports once the broker (or the relay queue) has the message. */
export interface PublishReceipt {
  id: string;
  /** Transport-specific reference: SQS MessageId, schedule name… */
  ref?: string;
}
