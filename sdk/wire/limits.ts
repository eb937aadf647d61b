/**
 * @module
 * The size and delay limits of the AWS services the envelope travels through. The SDK checks them
 * before sending, the scheduler before parking, the construct when it makes the queues.
 */
import { MAX_SENDER_CHARS } from "./envelope.js";

/** SQS: largest message, body plus attributes. */
export const SQS_MAX_MESSAGE_BYTES = 1_048_576;
/** SQS: entries per SendMessageBatch. */
export const SQS_MAX_BATCH_ENTRIES = 10;
/** SQS: longest `DelaySeconds`. */
export const SQS_MAX_DELAY_SECONDS = 900;
/** EventBridge Scheduler: largest `Target.Input`. */
export const SCHEDULER_MAX_INPUT_BYTES = 262_144;
/**
 * What the scheduler adds to an envelope it parks: `,"sender":"…"` (an SQS SenderId, at most
 * MAX_SENDER_CHARS ASCII characters) and `,"stage":"release"`. A producer that parks checks its
 * envelope against the Scheduler limit less this.
 */
export const PARK_MARK_BYTES = ',"sender":""'.length + MAX_SENDER_CHARS + ',"stage":"release"'.length;
