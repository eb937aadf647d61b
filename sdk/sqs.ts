/**
 * @module
 * `celery-edge/sqs`: publish through the SQS relay, or straight to a fleet whose Celery broker is
 * SQS (`sqsBroker`), from anywhere (Node, Lambda, workerd, Vercel Edge).
 */
export { sqsRelay, SqsTransport } from "./transports/sqs.js";
export { SQS_MAX_MESSAGE_BYTES, SQS_MAX_BATCH_ENTRIES, SQS_MAX_DELAY_SECONDS, SCHEDULER_MAX_INPUT_BYTES } from "./wire/limits.js";
export { DEFAULT_PARK_THRESHOLD_SECONDS, isFarEta } from "./wire/parking.js";
export type { SqsRelayOptions, AwsCredentials } from "./transports/sqs.js";
export { encodeEnvelope, decodeEnvelope, toEnvelope, ENVELOPE_VERSION } from "./wire/envelope.js";
export type { Envelope } from "./wire/envelope.js";
export { sqsBroker, SqsBrokerTransport } from "./transports/sqs-broker.js";
export type { SqsBrokerOptions, SqsBrokerFifoOptions } from "./transports/sqs-broker.js";
export { sqsEntityName, canonicalQueueName } from "./transports/sqs-broker-wire.js";
