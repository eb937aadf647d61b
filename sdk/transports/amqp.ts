/**
 * @module
 * Direct AMQP transport (Node only) on amqplib with publisher confirms. One lazily opened
 * connection per transport, reused across calls and warm Lambda invocations, re-opened after it
 * breaks; a publish resolves only when RabbitMQ confirmed it.
 */
import type { Channel, ChannelModel, ConfirmChannel, Message } from "amqplib";
import { ConnectionError, PublishError, TimeoutError, asCeleryError, redact, type CeleryError } from "../errors.js";
import type { PublishReceipt, TaskMessage } from "../protocol/message.js";
import type { QueueDeclaration } from "../routing.js";
import type { PublishOptions, PublishOutcome, Transport } from "../transport.js";
import { importPeer } from "../peer.js";
import { toFieldValue, toPublishOptions } from "./amqp-properties.js";
import { describeUrl, withHeartbeat } from "./amqp-url.js";

export interface AmqpTransportOptions {
  /** `amqp://user:pass@host:5672/vhost` or `amqps://…`. */
  url: string;
  /** Heartbeat in seconds, unless the URL sets one. @default 30 */
  heartbeat?: number;
  /**
   * After this many milliseconds without a frame from the broker, the next publish first checks the
   * connection with a round trip. A Lambda thawed after a freeze holds a dead socket that still looks
   * open; this finds it before a task is written into it. @default 5 000
   */
  idleProbeAfterMs?: number;
  /** How long that check may take before the connection is replaced. @default 2 000 */
  probeTimeoutMs?: number;
  /** Default milliseconds to wait for the connection. @default 10 000 */
  connectTimeout?: number;
  /** Default milliseconds to wait for a confirm. @default 30 000 */
  publishTimeout?: number;
  /** Passed to the socket (net/tls), e.g. `{ ca: [pem] }` for a private CA on amqps://. @default none */
  socketOptions?: Record<string, unknown>;
}

/** A connection with its confirm channel and what it has already declared. */
interface Link {
  model: ChannelModel;
  channel: ConfirmChannel;
  lastSeen: number;
  dead: boolean;
  declared: Set<string>;
  /** Declarations known done, by identity: the router shares one object per queue. */
  declaredObjects: WeakSet<QueueDeclaration>;
  exchanges: Set<string>;
  /** Publishes on the confirm channel so far: the Nth has delivery tag N, as amqplib counts confirms. */
  published: number;
  /** Mandatory publishes awaiting their confirm, by delivery tag, in publish order. */
  mandatory: Map<number, Sent>;
  /** Delivery tag of the publish the last return was matched to: returns come in publish order. */
  lastReturned: number;
  blockedReason: string | null;
  unblocked: Array<() => void>;
  /** Publishers waiting for amqplib's channel buffer to drain; also woken when the link dies. */
  drained: Array<() => void>;
}

/** A mandatory publish, as RabbitMQ would return it; `returned` is set (to the reply) when it did. */
interface Sent {
  exchange: string;
  routingKey: string;
  correlationId: string;
  content: Buffer;
  returned?: string;
}

/**
 * Marks the publish a basic.return is for. A return carries no delivery tag, but RabbitMQ returns
 * a message while routing it — in publish order, always before its ack — so it belongs to a
 * mandatory publish still awaiting its ack, published after the one the previous return was for, to
 * the same exchange and routing key: the oldest of those that is the same message (body and
 * correlation id; two byte-identical messages are interchangeable), else the oldest of them.
 * Correlation ids alone cannot tell: control messages share an empty one, callers may reuse one.
 */
function matchReturn(link: Link, msg: Message): void {
  const { exchange, routingKey, replyCode, replyText } = msg.fields as Message["fields"] & { replyCode?: number; replyText?: string };
  let oldest: [number, Sent] | undefined;
  for (const entry of link.mandatory) {
    const [tag, sent] = entry;
    if (tag <= link.lastReturned || sent.returned !== undefined || sent.exchange !== exchange || sent.routingKey !== routingKey) continue;
    if (sent.correlationId === (msg.properties.correlationId ?? "") && sent.content.equals(msg.content)) {
      oldest = entry;
      break;
    }
    oldest ??= entry;
  }
  if (!oldest) return;
  link.lastReturned = oldest[0];
  oldest[1].returned = `${replyCode ?? 312} ${replyText ?? "NO_ROUTE"}`;
}

function deadline<T>(promise: Promise<T>, ms: number, onTimeout: () => CeleryError): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(onTimeout()), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const NONE: Array<CeleryError | undefined> = [];
const declareKey = (d: NonNullable<TaskMessage["declare"]>): string => `${d.exchange}\u0000${d.queue ?? ""}\u0000${d.routingKey}`;

export class AmqpTransport implements Transport {
  readonly kind = "amqp";
  private readonly url: string;
  private readonly where: string;
  private readonly opts: Required<Omit<AmqpTransportOptions, "url" | "socketOptions">>;
  private readonly socketOptions: Record<string, unknown>;
  private link: Link | undefined;
  private connecting: Promise<Link> | undefined;
  private closed = false;
  private readonly inflight = new Set<Promise<unknown>>();
  /** Number of connections opened so far (tests and benchmarks read it). */
  connectionsOpened = 0;

  constructor(options: AmqpTransportOptions) {
    this.where = describeUrl(options.url);
    this.url = withHeartbeat(options.url, options.heartbeat ?? 30);
    this.socketOptions = options.socketOptions ?? {};
    this.opts = {
      heartbeat: options.heartbeat ?? 30,
      idleProbeAfterMs: options.idleProbeAfterMs ?? 5_000,
      probeTimeoutMs: options.probeTimeoutMs ?? 2_000,
      connectTimeout: options.connectTimeout ?? 10_000,
      publishTimeout: options.publishTimeout ?? 30_000,
    };
  }

  async publish(message: TaskMessage, options?: PublishOptions): Promise<PublishReceipt> {
    const [outcome] = await this.publishMany([message], options);
    if (!outcome!.ok) throw outcome!.error;
    return outcome!.receipt;
  }

  async publishMany(messages: readonly TaskMessage[], options: PublishOptions = {}): Promise<PublishOutcome[]> {
    const work = this.publishAll(messages, options);
    this.inflight.add(work);
    try {
      return await work;
    } finally {
      this.inflight.delete(work);
    }
  }

  private async publishAll(messages: readonly TaskMessage[], options: PublishOptions): Promise<PublishOutcome[]> {
    const fail = (error: CeleryError): PublishOutcome[] => messages.map(() => ({ ok: false, error }));
    if (this.closed) return fail(new ConnectionError("transport is closed"));
    let link: Link;
    try {
      link = await this.liveLink(options.connectTimeout ?? this.opts.connectTimeout);
    } catch (err) {
      return fail(asCeleryError(err, (m, cause) => new ConnectionError(`cannot connect to ${this.where}: ${m}`, { cause })));
    }
    const prepared = await this.prepare(link, messages);
    return this.sendAll(link, messages, prepared, options.publishTimeout ?? this.opts.publishTimeout);
  }

  /** The current connection, checked when idle; a new one when it is gone. */
  private async liveLink(connectTimeout: number): Promise<Link> {
    const link = this.link;
    if (link && !link.dead) {
      if (Date.now() - link.lastSeen <= this.opts.idleProbeAfterMs) return link;
      const alive = await deadline(
        link.channel.checkExchange("amq.direct").then(() => true),
        this.opts.probeTimeoutMs,
        () => new TimeoutError("probe"),
      ).catch(() => false);
      if (alive && !link.dead) return link;
      this.kill(link);
    }
    this.connecting ??= this.connect(connectTimeout).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(connectTimeout: number): Promise<Link> {
    const model = await deadline(
      importPeer("amqplib", "an amqp:// broker", () => import("amqplib")).then(({ connect }) =>
        connect(this.url, { noDelay: true, ...this.socketOptions, timeout: connectTimeout }),
      ),
      connectTimeout,
      () => new TimeoutError(`connecting to ${this.where} took longer than ${connectTimeout} ms`),
    );
    this.connectionsOpened++;
    const channel = await model.createConfirmChannel();
    const link: Link = {
      model,
      channel,
      lastSeen: Date.now(),
      dead: false,
      declared: new Set(),
      declaredObjects: new WeakSet(),
      exchanges: new Set(),
      published: 0,
      mandatory: new Map(),
      lastReturned: 0,
      blockedReason: null,
      unblocked: [],
      drained: [],
    };
    const stream = (model.connection as unknown as { stream?: { on(e: string, f: () => void): void } }).stream;
    stream?.on("data", () => {
      link.lastSeen = Date.now();
    });
    const die = (): void => this.kill(link);
    model.on("error", () => {}); // a 'close' follows; pending confirms fail through the channel
    model.on("close", die);
    channel.on("error", () => {});
    channel.on("close", die);
    channel.on("drain", () => {
      for (const wake of link.drained.splice(0)) wake();
    });
    model.on("blocked", (reason: string) => {
      link.blockedReason = reason || "blocked";
    });
    model.on("unblocked", () => {
      link.blockedReason = null;
      for (const wake of link.unblocked.splice(0)) wake();
    });
    channel.on("return", (msg: Message) => matchReturn(link, msg));
    if (this.closed) {
      await model.close().catch(() => {});
      throw new ConnectionError("transport is closed");
    }
    this.link = link;
    return link;
  }

  private kill(link: Link): void {
    if (link.dead) return;
    link.dead = true;
    if (this.link === link) this.link = undefined;
    for (const wake of link.unblocked.splice(0)) wake();
    for (const wake of link.drained.splice(0)) wake();
    const stream = (link.model.connection as unknown as { stream?: { destroy(): void } }).stream;
    stream?.destroy();
  }

  /**
   * kombu declares the target queue before publishing, and we check named exchanges exist, both on
   * a throwaway channel: a missing exchange then fails one task clearly instead of closing the
   * confirm channel under every task in flight.
   */
  private async prepare(link: Link, messages: readonly TaskMessage[]): Promise<Array<CeleryError | undefined>> {
    // Fast path: everything declared and checked already on this connection (every publish after the first).
    let ready = true;
    for (const m of messages) {
      const d = m.declare;
      if (d && !link.declaredObjects.has(d)) {
        if (!link.declared.has(declareKey(d))) {
          ready = false;
          break;
        }
        link.declaredObjects.add(d);
      }
      if ((m.exchange !== "" && !link.exchanges.has(m.exchange)) || m.immediate) {
        ready = false;
        break;
      }
    }
    if (ready) return NONE;
    const problems = new Map<string, CeleryError>();
    const steps = new Map<string, (ch: Channel) => Promise<void>>();
    for (const m of messages) {
      const d = m.declare;
      if (d && !link.declared.has(declareKey(d))) {
        steps.set(`q:${declareKey(d)}`, async (ch) => {
          const args = d.arguments ? Object.fromEntries(Object.entries(d.arguments).map(([k, v]) => [k, toFieldValue(v)])) : undefined;
          const durable = d.durable ?? true;
          if (d.exchange !== "") await ch.assertExchange(d.exchange, d.exchangeType, { durable, autoDelete: false });
          if (d.queue !== undefined) {
            await ch.assertQueue(d.queue, { durable, autoDelete: false, exclusive: false, ...(args ? { arguments: args } : {}) });
            if (d.exchange !== "") await ch.bindQueue(d.queue, d.exchange, d.routingKey);
          }
          link.declared.add(declareKey(d));
          link.exchanges.add(d.exchange);
        });
      }
      if (m.exchange !== "" && !link.exchanges.has(m.exchange)) {
        steps.set(`x:${m.exchange}`, async (ch) => {
          await ch.checkExchange(m.exchange);
          link.exchanges.add(m.exchange);
        });
      }
      if (m.immediate && m.exchange === "") {
        steps.set(`c:${m.routingKey}`, async (ch) => {
          const q = await ch.checkQueue(m.routingKey);
          if (q.consumerCount === 0) throw new PublishError("ERR_NO_CONSUMERS", `immediate: queue "${m.routingKey}" has no consumer`);
        });
      }
    }
    for (const [key, step] of steps) {
      let ch: Channel | undefined;
      try {
        ch = await link.model.createChannel();
        ch.on("error", () => {});
        await step(ch);
      } catch (err) {
        problems.set(key, this.explain(key, err));
      } finally {
        await ch?.close().catch(() => {});
      }
    }
    return messages.map((m) => {
      const d = m.declare;
      return (
        (d ? problems.get(`q:${declareKey(d)}`) : undefined) ??
        problems.get(`x:${m.exchange}`) ??
        (m.immediate ? problems.get(`c:${m.routingKey}`) : undefined)
      );
    });
  }

  private explain(step: string, err: unknown): CeleryError {
    const [kind, name = ""] = [step.slice(0, 1), step.slice(2).split("\u0000")];
    const text = err instanceof Error ? err.message : String(err);
    if (err instanceof PublishError) return err;
    if (kind === "x" && /NOT_FOUND|404/.test(text)) {
      return new PublishError("ERR_EXCHANGE_NOT_FOUND", `exchange "${step.slice(2)}" does not exist on ${this.where}`, { cause: err });
    }
    if (kind === "c" && /NOT_FOUND|404/.test(text)) {
      return new PublishError("ERR_NO_CONSUMERS", `immediate: queue "${step.slice(2)}" does not exist`, { cause: err });
    }
    const what = kind === "q" ? `declaring queue "${name[1]}"` : kind === "x" ? `checking exchange "${step.slice(2)}"` : `checking queue "${step.slice(2)}"`;
    return new PublishError("ERR_PUBLISH", `${what} failed: ${redact(text)}`, { cause: err });
  }

  /**
   * Publishes every message without a problem and resolves once each is confirmed, nacked, returned
   * or timed out. One timer for the whole call rather than one per message: on timeout the link is
   * killed (its state is unknown) and every unconfirmed message fails with TimeoutError.
   */
  private async sendAll(link: Link, messages: readonly TaskMessage[], prepared: ReadonlyArray<CeleryError | undefined>, timeout: number): Promise<PublishOutcome[]> {
    const outcomes: Array<PublishOutcome | undefined> = new Array(messages.length);
    let left = messages.length;
    for (let i = 0; i < messages.length; i++) {
      const problem = prepared[i];
      if (problem) {
        outcomes[i] = { ok: false, error: problem };
        left--;
      }
    }
    if (left === 0) return outcomes as PublishOutcome[];
    if (link.blockedReason !== null) {
      const reason = link.blockedReason;
      const unblocked = await deadline(
        new Promise<void>((resolve) => link.unblocked.push(resolve)),
        timeout,
        () => new TimeoutError("blocked"),
      ).then(
        () => true,
        () => false,
      );
      if (!unblocked) {
        return messages.map(
          (m, i) => outcomes[i] ?? { ok: false, error: new TimeoutError(`broker ${this.where} has blocked publishing (${reason}) for ${timeout} ms; task ${m.meta.id} was not sent`) },
        );
      }
    }
    if (link.dead) {
      return messages.map(
        (m, i) => outcomes[i] ?? { ok: false, error: new ConnectionError(`connection to ${this.where} was lost before task ${m.meta.id} was sent; it was not published`) },
      );
    }
    return new Promise<PublishOutcome[]>((done) => {
      const settle = (i: number, outcome: PublishOutcome): void => {
        if (outcomes[i] !== undefined) return;
        outcomes[i] = outcome;
        if (--left === 0) {
          clearTimeout(timer);
          done(outcomes as PublishOutcome[]);
        }
      };
      /** Messages before this index were handed to amqplib; the rest were never written. */
      let handedOver = 0;
      const timer = setTimeout(() => {
        this.kill(link);
        messages.forEach((m, i) =>
          settle(i, {
            ok: false,
            error: new TimeoutError(
              i < handedOver
                ? `no confirm for task ${m.meta.id} from ${this.where} within ${timeout} ms; it may or may not have been delivered`
                : `task ${m.meta.id} was still waiting for ${this.where} to take more data after ${timeout} ms; it was not published`,
            ),
          }),
        );
      }, timeout);
      const publishOne = (m: TaskMessage, i: number): boolean => {
        const content = Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength);
        const options = toPublishOptions(m);
        let tag = 0;
        try {
          const more = link.channel.publish(m.exchange, m.routingKey, content, options, (err) => {
            const returned = link.mandatory.get(tag)?.returned;
            link.mandatory.delete(tag);
            if (err) {
              const closed = /closed/.test(String(err.message));
              settle(i, {
                ok: false,
                error: closed
                  ? new PublishError("ERR_CHANNEL_CLOSED", `connection to ${this.where} closed before task ${m.meta.id} was confirmed; it may not have been delivered`, { cause: err })
                  : new PublishError("ERR_NACKED", `broker nacked task ${m.meta.id}`, { cause: err }),
              });
            } else if (returned !== undefined) {
              settle(i, {
                ok: false,
                error: new PublishError("ERR_UNROUTABLE", `task ${m.meta.id} is unroutable: no queue bound to exchange "${m.exchange}" with routing key "${m.routingKey}" (${returned})`),
              });
            } else settle(i, { ok: true, receipt: { id: m.meta.id } });
          });
          // Counted only once amqplib took it: a publish that threw has no delivery tag.
          tag = ++link.published;
          if (options.mandatory) link.mandatory.set(tag, { exchange: m.exchange, routingKey: m.routingKey, correlationId: m.properties.correlationId ?? "", content });
          return more;
        } catch (err) {
          settle(i, { ok: false, error: asCeleryError(err, (msg, cause) => new PublishError("ERR_PUBLISH", msg, { cause })) });
          return true;
        }
      };
      // amqplib queues frames per channel and writes them to the socket only between turns of the
      // event loop. Waiting for 'drain' whenever that queue is full lets frames flow (and confirms
      // come back) while the rest of a large batch is still being encoded, instead of the whole
      // batch piling up in memory first.
      void (async () => {
        for (let i = 0; i < messages.length; i++) {
          if (outcomes[i] !== undefined) continue;
          if (link.dead) {
            settle(i, { ok: false, error: new ConnectionError(`connection to ${this.where} was lost before task ${messages[i]!.meta.id} was sent; it was not published`) });
            continue;
          }
          const more = publishOne(messages[i]!, i);
          handedOver = i + 1;
          if (!more && i + 1 < messages.length) await new Promise<void>((wake) => link.drained.push(wake));
        }
      })();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inflight]);
    const link = this.link ?? (await this.connecting?.catch(() => undefined));
    this.link = undefined;
    if (link && !link.dead) {
      link.dead = true;
      await link.model.close().catch(() => {});
    }
  }
}

/** `amqp://` URL → transport; registered by the Node entry. */
export function amqpTransport(url: string, options: Omit<AmqpTransportOptions, "url"> = {}): AmqpTransport {
  return new AmqpTransport({ url, ...options });
}
