/**
 * @module
 * kombu 5.2.4's SQS transport, as data (universal). What a worker on `broker_url = "sqs://"`
 * reads (`kombu/transport/SQS.py`, `virtual/base.py`), checked against Python's own sends in
 * `test/fixtures/sqs-vectors/`:
 *
 * - MessageBody is base64 of the virtual transport's JSON (the same JSON the Redis transport
 *   stores, `redis-wire.ts`), whose `body` is itself base64. kombu 5.2.0 only reads base64, so the
 *   outer layer is always there;
 * - a queue's SQS name is kombu's `entity_name(queue_name_prefix + name)`: `.` becomes `-`, other
 *   ASCII punctuation but `-` and `_` becomes `_`, and a `.fifo` suffix is kept;
 * - a FIFO queue is one whose SQS name ends in `.fifo`.
 */
import { toBase64 } from "../base64.js";
import { utf8Encoder } from "../serializers/utf8.js";
import type { TaskMessage } from "../protocol/message.js";
import { kombuMessage, type Base64Encoder } from "./redis-wire.js";

/** Python's `string.punctuation` but `-`, `_` and `.`. */
const PUNCTUATION = /[!"#$%&'()*+,/:;<=>?@[\\\]^`{|}~]/g;

/** kombu's `Channel.entity_name`: the SQS name of a kombu queue name (prefix already in front). */
export function sqsEntityName(name: string): string {
  const fifo = name.endsWith(".fifo");
  const stem = fifo ? name.slice(0, -".fifo".length) : name;
  return stem.replace(PUNCTUATION, "_").replace(/\./g, "-") + (fifo ? ".fifo" : "");
}

/** kombu's `canonical_queue_name`: the SQS name a worker with `queue_name_prefix` uses for `queue`. */
export const canonicalQueueName = (prefix: string, queue: string): string => sqsEntityName(prefix + queue);

/** What SQS itself accepts as a queue name. */
export const isSqsQueueName = (name: string): boolean => /^[A-Za-z0-9_-]{1,80}(\.fifo)?$/.test(name);

export const isFifoQueueName = (name: string): boolean => name.endsWith(".fifo");

/**
 * The kombu queue `m` lands in, as kombu's producer routes it: the default exchange takes the
 * routing key as the queue (`basic_publish` → `_put(routing_key)`); a direct exchange takes the
 * queue the message declares when its binding key is the routing key. Anything else would need
 * bindings only the workers' processes hold (kombu keeps SQS bindings in memory): null.
 */
export function kombuQueueFor(m: TaskMessage): string | null {
  if (m.exchange === "") return m.routingKey;
  const d = m.declare;
  if (d?.queue && d.exchange === m.exchange && d.exchangeType === "direct" && d.routingKey === m.routingKey) return d.queue;
  return null;
}

/** MessageBody for `m`: base64 of kombu's virtual-transport JSON (UTF-8). */
export function sqsMessageBody(m: TaskMessage, deliveryTag: string, base64: Base64Encoder = toBase64): string {
  return base64(utf8Encoder.encode(kombuMessage(m, deliveryTag, base64)));
}
