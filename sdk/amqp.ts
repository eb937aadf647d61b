/**
 * @module
 * `celery-edge/amqp`: the direct AMQP transport, Node only. Edge runtimes resolve this subpath to
 * `amqp.edge.ts`, which refuses clearly instead of failing to bundle `net`.
 */
export { AmqpTransport, amqpTransport } from "./transports/amqp.js";
export type { AmqpTransportOptions } from "./transports/amqp.js";
