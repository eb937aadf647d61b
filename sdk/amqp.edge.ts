/**
 * @module
 * What edge runtimes get for `celery-edge/amqp`: AMQP needs raw TCP sockets, which workerd and
 * Vercel Edge do not offer to amqplib.
 */
import { UnsupportedRuntimeError } from "./errors.js";

throw new UnsupportedRuntimeError(
  'celery-edge/amqp needs Node.js (raw TCP sockets); on edge runtimes publish through the SQS relay: import { sqsRelay } from "celery-edge/sqs"',
);
