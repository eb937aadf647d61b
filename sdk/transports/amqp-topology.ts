/**
 * @module
 * Makes sure what a task needs on the broker exists, without ever failing over a queue or exchange
 * that exists with settings the app does not know (Node only, amqplib).
 *
 * kombu declares the target queue (`queue.declare`, not passive) before each first publish, so a
 * producer whose `task_queues` lacks the workers' `x-max-priority`, `x-queue-type`, TTL, length
 * limit or durability gets 406 PRECONDITION_FAILED. Here each entity is first checked passively
 * (which tells only whether it exists), declared with the app's settings only when missing, and
 * then bound. Whether the app's settings match an existing entity is asked separately, once per
 * transport: a declare with the app's settings succeeds when they are equivalent and is refused
 * with 406 (naming the setting) when not. RabbitMQ's passive declare returns no arguments, so this
 * is the only way the broker says. The answer becomes a warning; the publish goes on.
 *
 * Every refusal closes the channel it came on, so all of this runs on throwaway channels, never on
 * the confirm channel that tasks in flight depend on.
 */
import type { Channel } from "amqplib";
import { redact } from "../errors.js";
import type { QueueDeclaration } from "../routing.js";
import { toFieldValue } from "./amqp-properties.js";
import { brokerRefusal, type AmqpLink } from "./amqp-connection.js";

/** AMQP 0-9-1 reply code for a declare whose settings differ from the existing entity's. */
export const AMQP_PRECONDITION_FAILED = 406;
const NOT_FOUND = 404;
/** The broker's reply text is bounded in warnings: entity names alone may be 255 bytes each. */
const MAX_REPLY = 600;

/**
 * Throwaway channels on one connection: operations share one while they succeed, and a refusal
 * (which closes it) makes the next operation open a fresh one.
 */
export class ScratchChannels {
  private channel: Channel | undefined;

  constructor(private readonly link: AmqpLink) {}

  async run<T>(op: (channel: Channel) => Promise<T>): Promise<T> {
    if (this.channel === undefined) {
      const channel = await this.link.model.createChannel();
      channel.on("error", () => {}); // the failed operation rejects with the same error
      this.channel = channel;
    }
    const channel = this.channel;
    try {
      const value = await op(channel);
      this.link.seen();
      return value;
    } catch (err) {
      this.channel = undefined;
      void channel.close().catch(() => {});
      throw err;
    }
  }

  async close(): Promise<void> {
    const channel = this.channel;
    this.channel = undefined;
    await channel?.close().catch(() => {});
  }
}

/** Told when an existing entity differs from the app's idea of it; `reply` is the broker's refusal, redacted and bounded. */
export type MismatchListener = (kind: "queue" | "exchange", name: string, reply: string) => void;

/** What one entity needs: a passive check, and a declare with the app's settings. */
interface Entity {
  kind: "queue" | "exchange";
  name: string;
  check: (channel: Channel) => Promise<unknown>;
  declare: (channel: Channel) => Promise<unknown>;
}

const replyOf = (err: unknown): string => {
  const text = redact(err instanceof Error ? err.message : String(err));
  return text.length > MAX_REPLY ? `${text.slice(0, MAX_REPLY)}…` : text;
};

/** Exists → left as it is (compared when asked); missing → declared with the app's settings. */
async function ensure(scratch: ScratchChannels, entity: Entity, compare: boolean, onMismatch: MismatchListener): Promise<void> {
  let exists = true;
  try {
    await scratch.run(entity.check);
  } catch (err) {
    if (brokerRefusal(err)?.replyCode !== NOT_FOUND) throw err;
    exists = false;
  }
  if (!exists) {
    try {
      await scratch.run(entity.declare);
      return;
    } catch (err) {
      if (brokerRefusal(err)?.replyCode !== AMQP_PRECONDITION_FAILED) throw err;
      // Either someone (a worker starting) created it in between with other settings, which is
      // fine, or the broker refuses the app's settings outright (an invalid argument): only a
      // second check tells them apart.
      await scratch.run(entity.check).catch(() => {
        throw err;
      });
      onMismatch(entity.kind, entity.name, replyOf(err));
      return;
    }
  }
  if (!compare) return;
  try {
    await scratch.run(entity.declare);
  } catch (err) {
    // Any other refusal (403: no configure permission) says nothing about the settings.
    if (brokerRefusal(err)?.replyCode === AMQP_PRECONDITION_FAILED) onMismatch(entity.kind, entity.name, replyOf(err));
  }
}

/**
 * The exchange (unless the default one), the queue, and the binding between them, as `d` names
 * them. `compare`: also ask whether existing ones match `d` (a declare with its settings).
 */
export async function ensureDeclared(scratch: ScratchChannels, d: QueueDeclaration, compare: boolean, onMismatch: MismatchListener): Promise<void> {
  const durable = d.durable ?? true;
  if (d.exchange !== "") {
    await ensure(
      scratch,
      {
        kind: "exchange",
        name: d.exchange,
        check: (ch) => ch.checkExchange(d.exchange),
        declare: (ch) => ch.assertExchange(d.exchange, d.exchangeType, { durable, autoDelete: false }),
      },
      compare,
      onMismatch,
    );
  }
  const queue = d.queue;
  if (queue === undefined) return;
  const args = d.arguments ? Object.fromEntries(Object.entries(d.arguments).map(([k, v]) => [k, toFieldValue(v)])) : undefined;
  await ensure(
    scratch,
    {
      kind: "queue",
      name: queue,
      check: (ch) => ch.checkQueue(queue),
      declare: (ch) => ch.assertQueue(queue, { durable, autoDelete: false, exclusive: false, ...(args ? { arguments: args } : {}) }),
    },
    compare,
    onMismatch,
  );
  // A binding has no settings to disagree on, and binding again is a no-op.
  if (d.exchange !== "") await scratch.run((ch) => ch.bindQueue(queue, d.exchange, d.routingKey));
}
