/**
 * @module
 * Direct AMQP transport (Node only) on amqplib with publisher confirms. One lazily opened
 * connection per transport (`amqp-connection.ts`), reused across calls and warm Lambda invocations,
 * re-opened after it breaks; a publish resolves only when RabbitMQ confirmed it.
 *
 * A call's `timeout` is spent in order: connecting (at most `connectTimeout`), declaring, waiting
 * out flow control, the confirms. Without one, connecting may take `connectTimeout` and what
 * follows `publishTimeout`.
 */
import type { ConfirmChannel, Message } from "amqplib";
import { ConnectionError, PublishError, TimeoutError, asCeleryError, redact, type CeleryError } from "../errors.js";
import type { PublishReceipt, TaskMessage } from "../protocol/message.js";
import type { QueueDeclaration } from "../routing.js";
import type { PublishOptions, PublishOutcome, Transport } from "../transport.js";
import {
  AMQP_CLASS_EXCHANGE,
  AMQP_CLASS_QUEUE,
  AMQP_METHOD_DECLARE,
  AMQP_NOT_FOUND,
  AmqpConnection,
  brokerRefusal,
  withTimeout,
  type AmqpLink,
} from "./amqp-connection.js";
import { toPublishOptions } from "./amqp-properties.js";
import { sentEventsAfter } from "../events/task-sent.js";
import { publishEvents } from "./amqp-events.js";
import { ScratchChannels, ensureDeclared } from "./amqp-topology.js";
import { TopologyMismatchWarning, warnOnConsole, type WarningHandler } from "../warnings.js";
import { amqpEndpoints } from "./amqp-url.js";
import { checkFailoverStrategy, type BrokerFailoverStrategy } from "./failover.js";

export interface AmqpTransportOptions {
  /**
   * `amqp://user:pass@host:5672/vhost` or `amqps://…`; several hosts as Celery writes them,
   * `amqp://h1//;amqp://h2//`, or as a list, tried in `failoverStrategy` order.
   */
  url: string | readonly string[];
  /** Celery's `broker_failover_strategy`: which host to try after one fails. @default "round-robin" */
  failoverStrategy?: BrokerFailoverStrategy;
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
  /** Milliseconds opening a connection (and its confirm channel) may take; a call's `timeout` may cut it shorter. @default 10 000 */
  connectTimeout?: number;
  /** Milliseconds a call without a `timeout` may wait, once connected, for its confirms. @default 30 000 */
  publishTimeout?: number;
  /** Passed to the socket (net/tls), e.g. `{ ca: [pem] }` for a private CA on amqps://. @default none */
  socketOptions?: Record<string, unknown>;
  /**
   * Told (once per queue or exchange) when one exists on the broker with settings other than the
   * app declares: it is used as it is, and this says so. Must not throw. @default one console.warn line
   */
  onWarning?: WarningHandler;
}

/** A connection with its confirm channel and what it has already declared. */
interface Session {
  readonly link: AmqpLink;
  channel: ConfirmChannel;
  /** Set when the confirm channel closes, before amqplib fails the confirms still pending. */
  closed: boolean;
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
function matchReturn(link: Session, msg: Message): void {
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

const NONE: Array<CeleryError | undefined> = [];
const declareKey = (d: NonNullable<TaskMessage["declare"]>): string => `${d.exchange}\u0000${d.queue ?? ""}\u0000${d.routingKey}`;

export class AmqpTransport implements Transport {
  readonly kind = "amqp";
  private readonly connectTimeout: number;
  private readonly publishTimeout: number;
  private readonly connection: AmqpConnection<Session>;
  private closed = false;
  private readonly inflight = new Set<Promise<unknown>>();
  /** The Lamport clock of this transport's `task-sent` events (Celery's `app.clock`). */
  private eventClock = 0;
  private readonly onWarning: WarningHandler;
  /** Declarations already compared with what the broker holds: asked once per transport, not per connection. */
  private readonly compared = new Set<string>();
  /** Queues and exchanges already warned about. */
  private readonly warned = new Set<string>();

  constructor(options: AmqpTransportOptions) {
    this.connectTimeout = options.connectTimeout ?? 10_000;
    this.publishTimeout = options.publishTimeout ?? 30_000;
    this.onWarning = options.onWarning ?? warnOnConsole;
    this.connection = new AmqpConnection<Session>({
      endpoints: amqpEndpoints(options.url, options.heartbeat ?? 30),
      failoverStrategy: checkFailoverStrategy(options.failoverStrategy),
      neededFor: "an amqp:// broker",
      connectTimeout: this.connectTimeout,
      idleProbeAfterMs: options.idleProbeAfterMs ?? 5_000,
      probeTimeoutMs: options.probeTimeoutMs ?? 2_000,
      socketOptions: { noDelay: true, ...options.socketOptions },
      closedError: () => new ConnectionError("transport is closed"),
      setup: (link) => this.setup(link),
      probe: (session) => session.channel.checkExchange("amq.direct"),
    });
  }

  /** The broker host connected to (else the one tried next), as errors show it: no credentials. */
  private get where(): string {
    return this.connection.where;
  }

  /** Number of connections opened so far (tests and benchmarks read it). */
  get connectionsOpened(): number {
    return this.connection.opened;
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
      const outcomes = await work;
      this.publishSentEvents(messages, outcomes);
      return outcomes;
    } finally {
      this.inflight.delete(work);
    }
  }

  /**
   * Celery's `task_send_sent_event`: the `task-sent` event of each confirmed task that asked for it,
   * published after it and not awaited by the caller (kombu does not wait for it either). A failed
   * event is dropped: it can neither fail nor hold up its task. `close()` lets it settle.
   */
  private publishSentEvents(messages: readonly TaskMessage[], outcomes: readonly PublishOutcome[]): void {
    const events = sentEventsAfter(messages, (i) => outcomes[i]!.ok, () => ({ pid: process.pid, clock: ++this.eventClock }));
    if (events.length === 0) return;
    const sent = this.publishEvents(events).catch(() => []);
    this.inflight.add(sent);
    void sent.finally(() => this.inflight.delete(sent));
  }

  /**
   * Celery events, on a confirm channel of their own (`amqp-events.ts`): a refused event fails
   * alone, never a task. The exchange is made sure of first, as a task's queue is.
   */
  async publishEvents(events: readonly TaskMessage[], options: PublishOptions = {}): Promise<PublishOutcome[]> {
    const fail = (error: CeleryError): PublishOutcome[] => events.map(() => ({ ok: false, error }));
    if (this.closed) return fail(new ConnectionError("transport is closed"));
    const timeout = options.timeout ?? options.publishTimeout ?? this.publishTimeout;
    try {
      const session = await this.connection.acquire(options.connectTimeout ?? this.connectTimeout);
      const prepared = await withTimeout(this.prepare(session, events), timeout, () => new TimeoutError(`declaring the event exchange on ${this.where} took longer than ${timeout} ms`));
      const sent = await publishEvents(session.link, events.filter((_, i) => !prepared[i]), timeout);
      let next = 0;
      return events.map((_, i) => (prepared[i] ? { ok: false, error: prepared[i]! } : sent[next++]!));
    } catch (err) {
      return fail(asCeleryError(err, (m, cause) => new ConnectionError(`cannot publish events to ${this.where}: ${m}`, { cause })));
    }
  }

  private async publishAll(messages: readonly TaskMessage[], options: PublishOptions): Promise<PublishOutcome[]> {
    const fail = (error: CeleryError): PublishOutcome[] => messages.map(() => ({ ok: false, error }));
    if (this.closed) return fail(new ConnectionError("transport is closed"));
    // One budget for the whole call when it has a `timeout`; else connecting and confirming each have their own.
    const budget = options.timeout;
    const until = budget === undefined ? Infinity : Date.now() + budget;
    const ranOut = (step: string): TimeoutError => new TimeoutError(`${step} ${this.where} took longer than the ${budget} ms the publish had; the tasks were not sent`);
    let session: Session;
    try {
      session = await withTimeout(this.connection.acquire(options.connectTimeout ?? this.connectTimeout), until - Date.now(), () => ranOut("connecting to"));
    } catch (err) {
      return fail(asCeleryError(err, (m, cause) => new ConnectionError(`cannot connect to ${this.where}: ${m}`, { cause })));
    }
    let prepared: ReadonlyArray<CeleryError | undefined>;
    try {
      prepared = await withTimeout(this.prepare(session, messages), until - Date.now(), () => ranOut("declaring on"));
    } catch (err) {
      return fail(asCeleryError(err, (m, cause) => new PublishError("ERR_PUBLISH", m, { cause })));
    }
    const timeout = budget ?? options.publishTimeout ?? this.publishTimeout;
    return this.sendAll(session, messages, prepared, budget === undefined ? Date.now() + timeout : until, timeout);
  }

  /** The transport's channel on a fresh connection: a confirm channel, and what it needs to hear. */
  private async setup(link: AmqpLink): Promise<Session> {
    const channel = await link.model.createConfirmChannel();
    const session: Session = {
      link,
      channel,
      closed: false,
      declared: new Set(),
      declaredObjects: new WeakSet(),
      exchanges: new Set(),
      published: 0,
      mandatory: new Map(),
      lastReturned: 0,
      drained: [],
    };
    const wakeDrained = (): void => {
      for (const wake of session.drained.splice(0)) wake();
    };
    channel.on("error", () => {}); // a 'close' follows
    // Ahead of amqplib's own listener, which fails the confirms still pending: they then read as lost, not nacked.
    channel.prependListener("close", () => {
      session.closed = true;
      link.destroy();
    });
    channel.on("drain", wakeDrained);
    channel.on("return", (msg: Message) => {
      link.seen();
      matchReturn(session, msg);
    });
    link.onDeath(wakeDrained);
    return session;
  }

  /**
   * Before a first publish kombu declares the target queue; here it is made sure of
   * (`amqp-topology.ts`: an existing queue is used as it is, a missing one declared with the app's
   * settings) and named exchanges are checked, all on throwaway channels: a missing exchange then
   * fails one task clearly instead of closing the confirm channel under every task in flight.
   */
  private async prepare(session: Session, messages: readonly TaskMessage[]): Promise<Array<CeleryError | undefined>> {
    // Fast path: everything declared and checked already on this connection (every publish after the first).
    let ready = true;
    for (const m of messages) {
      const d = m.declare;
      if (d && !session.declaredObjects.has(d)) {
        if (!session.declared.has(declareKey(d))) {
          ready = false;
          break;
        }
        session.declaredObjects.add(d);
      }
      if ((m.exchange !== "" && !session.exchanges.has(m.exchange)) || m.immediate) {
        ready = false;
        break;
      }
    }
    if (ready) return NONE;
    const problems = new Map<string, CeleryError>();
    const steps = new Map<string, (scratch: ScratchChannels) => Promise<void>>();
    for (const m of messages) {
      const d = m.declare;
      if (d && !session.declared.has(declareKey(d))) {
        steps.set(`q:${declareKey(d)}`, async (scratch) => {
          const key = declareKey(d);
          await ensureDeclared(scratch, d, !this.compared.has(key), (kind, name, reply) => this.warnMismatch(kind, name, reply));
          this.compared.add(key);
          session.declared.add(key);
          session.exchanges.add(d.exchange);
        });
      }
      if (m.exchange !== "" && !session.exchanges.has(m.exchange)) {
        steps.set(`x:${m.exchange}`, async (scratch) => {
          await scratch.run((ch) => ch.checkExchange(m.exchange));
          session.exchanges.add(m.exchange);
        });
      }
      if (m.immediate && m.exchange === "") {
        steps.set(`c:${m.routingKey}`, async (scratch) => {
          const q = await scratch.run((ch) => ch.checkQueue(m.routingKey));
          if (q.consumerCount === 0) throw new PublishError("ERR_NO_CONSUMERS", `immediate: queue "${m.routingKey}" has no consumer`);
        });
      }
    }
    // One throwaway channel while steps succeed; a refused step closes it and the next opens another.
    const scratch = new ScratchChannels(session.link);
    try {
      for (const [key, step] of steps) {
        try {
          await step(scratch);
        } catch (err) {
          problems.set(key, this.explain(key, err));
        }
      }
    } finally {
      await scratch.close();
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

  /** A failed declare or check as a typed error, by the reply code and method the broker closed the channel with. */
  private explain(step: string, err: unknown): CeleryError {
    const [kind, name = ""] = [step.slice(0, 1), step.slice(2).split("\u0000")];
    const text = err instanceof Error ? err.message : String(err);
    if (err instanceof PublishError) return err;
    const refusal = brokerRefusal(err);
    const notFound = refusal?.replyCode === AMQP_NOT_FOUND && refusal.methodId === AMQP_METHOD_DECLARE ? refusal.classId : undefined;
    if (kind === "x" && notFound === AMQP_CLASS_EXCHANGE) {
      return new PublishError("ERR_EXCHANGE_NOT_FOUND", `exchange "${step.slice(2)}" does not exist on ${this.where}`, { cause: err });
    }
    if (kind === "c" && notFound === AMQP_CLASS_QUEUE) {
      return new PublishError("ERR_NO_CONSUMERS", `immediate: queue "${step.slice(2)}" does not exist`, { cause: err });
    }
    const what = kind === "q" ? (name[1] ? `declaring queue "${name[1]}"` : `declaring exchange "${name[0]}"`) : kind === "x" ? `checking exchange "${step.slice(2)}"` : `checking queue "${step.slice(2)}"`;
    return new PublishError("ERR_PUBLISH", `${what} failed: ${redact(text)}`, { cause: err });
  }

  /** Hands a mismatch to `onWarning`, once per transport and queue or exchange; a throwing handler is ignored. */
  private warnMismatch(kind: "queue" | "exchange", name: string, reply: string): void {
    const key = `${kind}\u0000${name}`;
    if (this.warned.has(key)) return;
    this.warned.add(key);
    try {
      this.onWarning(new TopologyMismatchWarning(kind, name, reply, this.where));
    } catch {
      // A warning must never fail a publish.
    }
  }

  /**
   * Publishes every message without a problem and resolves once each is confirmed, nacked, returned
   * or timed out. One timer for the whole call rather than one per message: at `until` (ms since the
   * epoch) the connection is destroyed (its state is unknown) and every unconfirmed message fails
   * with TimeoutError, which names `timeout` (ms), the limit the caller set.
   */
  private async sendAll(
    session: Session,
    messages: readonly TaskMessage[],
    prepared: ReadonlyArray<CeleryError | undefined>,
    until: number,
    timeout: number,
  ): Promise<PublishOutcome[]> {
    const link = session.link;
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
      const unblocked = await withTimeout(link.unblocked(), until - Date.now(), () => new TimeoutError("blocked")).then(
        () => true,
        () => false,
      );
      if (!unblocked) {
        return messages.map(
          (m, i) => outcomes[i] ?? { ok: false, error: new TimeoutError(`broker ${this.where} blocked publishing (${reason}) until the ${timeout} ms the publish had ran out; task ${m.meta.id} was not sent`) },
        );
      }
    }
    if (link.dead) {
      return messages.map(
        (m, i) => outcomes[i] ?? { ok: false, error: new ConnectionError(`connection to ${this.where} was lost before task ${m.meta.id} was sent; it was not published`) },
      );
    }
    if (Date.now() >= until) {
      return messages.map(
        (m, i) => outcomes[i] ?? { ok: false, error: new TimeoutError(`the ${timeout} ms the publish had ran out before task ${m.meta.id} was sent to ${this.where}; it was not published`) },
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
        link.destroy();
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
      }, until - Date.now());
      const publishOne = (m: TaskMessage, i: number): boolean => {
        const content = Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength);
        const options = toPublishOptions(m);
        let tag = 0;
        try {
          const more = session.channel.publish(m.exchange, m.routingKey, content, options, (err) => {
            const returned = session.mandatory.get(tag)?.returned;
            session.mandatory.delete(tag);
            // amqplib fails a confirm with an Error of its own for a nack and for a closed channel
            // alike; the channel's 'close' (heard first) tells them apart.
            if (!session.closed) link.seen();
            if (err) {
              settle(i, {
                ok: false,
                error: session.closed
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
          tag = ++session.published;
          if (options.mandatory) session.mandatory.set(tag, { exchange: m.exchange, routingKey: m.routingKey, correlationId: m.properties.correlationId ?? "", content });
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
          if (!more && i + 1 < messages.length) await new Promise<void>((wake) => session.drained.push(wake));
        }
      })();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inflight]);
    await this.connection.close();
  }
}

/** `amqp://` URL → transport; registered by the Node entry. */
export function amqpTransport(url: string | readonly string[], options: Omit<AmqpTransportOptions, "url"> = {}): AmqpTransport {
  return new AmqpTransport({ url, ...options });
}
