/**
 * @module
 * Raw RabbitMQ access for tests: open a channel, inspect or empty queues, fetch a message
 * byte for byte, publish a hand-built message, and drive `rabbitmqctl` for fault tests.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { connect } from "amqplib";
import type { Channel, ChannelModel, ConfirmChannel, Message, MessageProperties, Options } from "amqplib";

/** The broker every test uses. */
export const AMQP_URL = "amqp://guest:guest@127.0.0.1:5672";

/** Opens a connection, runs `fn`, and closes the connection whatever happens. */
export async function withConnection<T>(fn: (connection: ChannelModel) => Promise<T>): Promise<T> {
  const connection = await connect(AMQP_URL);
  connection.on("error", () => {
    // A channel-level failure also surfaces as the rejected operation; keep it from crashing the run.
  });
  try {
    return await fn(connection);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** Opens a connection and a channel, runs `fn`, and closes both. */
export async function withChannel<T>(fn: (channel: Channel) => Promise<T>): Promise<T> {
  return withConnection(async (connection) => {
    const channel = await connection.createChannel();
    channel.on("error", () => undefined);
    return fn(channel);
  });
}

/** Like {@link withChannel} with a publisher-confirm channel. */
export async function withConfirmChannel<T>(fn: (channel: ConfirmChannel) => Promise<T>): Promise<T> {
  return withConnection(async (connection) => {
    const channel = await connection.createConfirmChannel();
    channel.on("error", () => undefined);
    return fn(channel);
  });
}

/**
 * Empties the queues; queues that do not exist are skipped.
 * @returns messages removed per queue (absent queues are left out)
 */
export async function purgeQueues(names: readonly string[]): Promise<Record<string, number>> {
  return withConnection(async (connection) => {
    const purged: Record<string, number> = {};
    for (const name of names) {
      // A 404 closes the channel, so each queue gets its own.
      const channel = await connection.createChannel();
      channel.on("error", () => undefined);
      try {
        purged[name] = (await channel.purgeQueue(name)).messageCount;
        await channel.close();
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    return purged;
  });
}

/** Deletes the queues (deleting an absent queue is not an error). */
export async function deleteQueues(names: readonly string[]): Promise<void> {
  await withChannel(async (channel) => {
    for (const name of names) await channel.deleteQueue(name);
  });
}

/** Ready (not unacknowledged) messages in the queue; throws if the queue does not exist. */
export async function queueDepth(name: string): Promise<number> {
  return withChannel(async (channel) => (await channel.checkQueue(name)).messageCount);
}

/** A message taken off a queue with `basic.get`, exactly as the broker holds it. */
export interface RawMessage {
  fields: Message["fields"];
  properties: MessageProperties;
  content: Buffer;
}

/**
 * Takes one message off `queue` (auto-acknowledged, so it is removed), polling until one
 * arrives. Resolves with null when none arrived within `timeoutMs`.
 */
export async function getRawMessage(queue: string, timeoutMs = 5_000): Promise<RawMessage | null> {
  return withChannel(async (channel) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = await channel.get(queue, { noAck: true });
      if (message) {
        return { fields: message.fields, properties: message.properties, content: message.content };
      }
      if (Date.now() >= deadline) return null;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
}

/** A message ready for `channel.publish`. */
export interface RawPublish {
  exchange: string;
  routingKey: string;
  content: Buffer;
  options: Options.Publish;
}

/**
 * Publishes with `mandatory` on a confirm channel and resolves once the broker confirmed it.
 * Rejects when the message was unroutable (returned) or nacked.
 */
export async function publishRaw(message: RawPublish): Promise<void> {
  await withConfirmChannel(async (channel) => {
    let returned: Message | undefined;
    channel.on("return", (m: Message) => {
      returned = m;
    });
    channel.publish(message.exchange, message.routingKey, message.content, {
      ...message.options,
      mandatory: true,
    });
    await channel.waitForConfirms();
    if (returned) {
      throw new Error(
        `message to exchange "${message.exchange}" with routing key "${message.routingKey}" was unroutable`,
      );
    }
  });
}

/** Fields of a hand-built Celery task message. */
export interface RawCeleryTask {
  task: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  /** @default a random UUID */
  id?: string;
  /** ISO 8601 datetime with a 6-digit fraction, as Python writes it (Celery 5.2 reads ".812" as 812 µs). @default null */
  eta?: string | null;
  /** ISO 8601 datetime with a 6-digit fraction, as Python writes it (Celery 5.2 reads ".812" as 812 µs). @default null */
  expires?: string | null;
  /** @default 0 */
  retries?: number;
  /** AMQP priority property. @default unset */
  priority?: number;
  /** @default "" (the default exchange) */
  exchange?: string;
  /** @default "ce.default" */
  routingKey?: string;
}

/**
 * Builds a Celery protocol 2 JSON task message by hand, exactly as Celery 5 lays it out,
 * without going through the SDK.
 */
export function rawCeleryTaskMessage(task: RawCeleryTask): RawPublish & { id: string } {
  const id = task.id ?? randomUUID();
  const args = task.args ?? [];
  const kwargs = task.kwargs ?? {};
  const body = [args, kwargs, { callbacks: null, errbacks: null, chain: null, chord: null }];
  const options: Options.Publish = {
    headers: {
      lang: "py",
      task: task.task,
      id,
      shadow: null,
      eta: task.eta ?? null,
      expires: task.expires ?? null,
      group: null,
      group_index: null,
      retries: task.retries ?? 0,
      timelimit: [null, null],
      root_id: id,
      parent_id: null,
      argsrepr: JSON.stringify(args),
      kwargsrepr: JSON.stringify(kwargs),
      origin: `test@${process.pid}`,
      ignore_result: false,
    },
    contentType: "application/json",
    contentEncoding: "utf-8",
    correlationId: id,
    replyTo: randomUUID(),
    deliveryMode: 2,
  };
  if (task.priority !== undefined) options.priority = task.priority;
  return {
    id,
    exchange: task.exchange ?? "",
    routingKey: task.routingKey ?? "ce.default",
    content: Buffer.from(JSON.stringify(body), "utf8"),
    options,
  };
}

/** Output of a finished `rabbitmqctl` run. */
export interface CommandResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs `rabbitmqctl <args>` (e.g. `["list_queues", "name", "arguments"]`, `["stop_app"]`)
 * and rejects with its stderr when it exits non-zero.
 */
export function rabbitmqctl(args: readonly string[], timeoutMs = 60_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(
      "rabbitmqctl",
      [...args],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new Error(`rabbitmqctl ${args.join(" ")} failed: ${error.message}\n${stderr}`, { cause: error }),
          );
          return;
        }
        resolve({ stdout, stderr });
      },
    );
  });
}

function isNotFound(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === 404;
}
