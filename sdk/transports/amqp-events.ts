/**
 * @module
 * Celery events (the `task-sent` event) on a confirm channel of their own, one per connection,
 * never on the channel tasks are confirmed on. A broker that refuses an event — a user without
 * write permission on `celeryev` gets `403 ACCESS_REFUSED`, which closes the channel — then closes
 * only this channel: tasks in flight are untouched (measured: on the tasks' channel it failed every
 * task in flight, `ERR_CHANNEL_CLOSED`). The next event opens a fresh one.
 */
import type { ConfirmChannel } from "amqplib";
import { PublishError, TimeoutError, asCeleryError } from "../errors.js";
import type { TaskMessage } from "../protocol/message.js";
import type { PublishOutcome } from "../transport.js";
import type { AmqpLink } from "./amqp-connection.js";
import { toPublishOptions } from "./amqp-properties.js";

const channels = new WeakMap<AmqpLink, Promise<ConfirmChannel>>();

function eventChannel(link: AmqpLink): Promise<ConfirmChannel> {
  let channel = channels.get(link);
  if (!channel) {
    channel = link.model.createConfirmChannel().then((ch) => {
      ch.on("error", () => {}); // a 'close' follows
      ch.on("close", () => channels.delete(link));
      return ch;
    });
    channel.catch(() => channels.delete(link));
    channels.set(link, channel);
  }
  return channel;
}

/**
 * Publishes `events` (already declared for) on `link`'s event channel and waits up to `timeoutMs`
 * for their confirms; one outcome per event, never a throw.
 */
export async function publishEvents(link: AmqpLink, events: readonly TaskMessage[], timeoutMs: number): Promise<PublishOutcome[]> {
  const failed = (err: unknown): PublishOutcome => ({ ok: false, error: asCeleryError(err, (m, cause) => new PublishError("ERR_PUBLISH", `event not published: ${m}`, { cause })) });
  let channel: ConfirmChannel;
  try {
    channel = await eventChannel(link);
  } catch (err) {
    return events.map(() => failed(err));
  }
  return Promise.all(
    events.map(
      (m) =>
        new Promise<PublishOutcome>((done) => {
          const timer = setTimeout(() => done({ ok: false, error: new TimeoutError(`no confirm for event of task ${m.meta.id} within ${timeoutMs} ms`) }), timeoutMs);
          const settle = (outcome: PublishOutcome): void => {
            clearTimeout(timer);
            done(outcome);
          };
          try {
            const content = Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength);
            channel.publish(m.exchange, m.routingKey, content, toPublishOptions(m), (err) => {
              if (!err) link.seen();
              settle(err ? failed(err) : { ok: true, receipt: { id: m.meta.id } });
            });
          } catch (err) {
            settle(failed(err));
          }
        }),
    ),
  );
}
