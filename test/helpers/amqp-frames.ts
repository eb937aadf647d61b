/**
 * Encodes a message's AMQP content-header frame with amqplib's own codec, exactly as
 * `channel.publish` does, so tests can compare it byte for byte with what py-amqp sent.
 */
import { createRequire } from "node:module";
import { toPublishOptions } from "../../sdk/transports/amqp-properties.js";
import type { TaskMessage } from "../../sdk/protocol/message.js";

const require = createRequire(import.meta.url);
const amqplibDir = require.resolve("amqplib").replace(/channel_api\.js$/, "");
// Internal modules: amqplib's exports map hides them, so load them by file path.
const defs = require(`${amqplibDir}lib/defs.js`) as {
  BasicProperties: number;
  encodeProperties(id: number, channel: number, size: number, fields: unknown): Buffer;
};
const args = require(`${amqplibDir}lib/api_args.js`) as { publish(exchange: string, rk: string, options: unknown): unknown };

/** class-id, weight, body size, property flags, property list — without the frame envelope. */
export function contentHeaderPayload(m: TaskMessage): Buffer {
  const fields = args.publish(m.exchange, m.routingKey, toPublishOptions(m));
  const frame = defs.encodeProperties(defs.BasicProperties, 1, m.body.length, fields);
  return frame.subarray(7, frame.length - 1);
}
