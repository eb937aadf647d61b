/**
 * @module
 * `celery-edge/sqs`: publish through the SQS relay from anywhere (Node, Lambda, workerd, Vercel Edge).
 */
export { sqsRelay, SqsTransport, SQS_MAX_MESSAGE_BYTES, SQS_MAX_BATCH_ENTRIES, SQS_MAX_DELAY_SECONDS } from "./transports/sqs.js";
export type { SqsRelayOptions, AwsCredentials } from "./transports/sqs.js";
export { encodeEnvelope, decodeEnvelope, toEnvelope, ENVELOPE_VERSION } from "./envelope.js";
export type { Envelope } from "./envelope.js";
