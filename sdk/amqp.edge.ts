/**
 * @module
 * What edge runtimes get for `celery-edge/amqp`: AMQP needs raw TCP sockets, which workerd and
 * Vercel Edge do not offer to amqplib. It exports the Node build's names so that bundlers (esbuild,
 * Rollup, webpack) build an import as written, and loading it then fails here, with the way out.
 */
import { UnsupportedRuntimeError } from "./errors.js";

const MESSAGE =
  'celery-edge/amqp needs Node.js (raw TCP sockets); on edge runtimes publish through the SQS relay: import { sqsRelay } from "celery-edge/sqs"';

/** Not on this runtime: throws `UnsupportedRuntimeError`. */
export function amqpTransport(): never {
  throw new UnsupportedRuntimeError(MESSAGE);
}

/** Not on this runtime: throws `UnsupportedRuntimeError`. */
export class AmqpTransport {
  constructor() {
    throw new UnsupportedRuntimeError(MESSAGE);
  }
}

throw new UnsupportedRuntimeError(MESSAGE);
