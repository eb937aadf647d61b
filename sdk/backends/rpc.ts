/**
 * @module
 * Celery's `rpc://` result backend, client side (Node only, on amqplib).
 *
 * Every task message carries `reply_to` = the app's oid. The worker publishes each state of the task
 * to the default exchange with routing key = that `reply_to` and `correlation_id` = the task id; the
 * body is the meta (`{task_id, status, result, traceback, children}`) in the worker's
 * `result_serializer`, named by the message's content type. The reply queue is the oid, declared
 * as Celery's `RPCBackend.binding` does (`durable=False, auto_delete=True, x-expires=result_expires`)
 * before the first task is published, so a result can't arrive before its queue exists.
 *
 * There is no store: one consumer (for every id) keeps the last state seen per task, including
 * results nobody has asked for yet.
 *
 * Anyone who can publish to the reply queue controls what arrives: a reply is decoded only if its
 * content type is in `resultAccept`, a compressed one is inflated only up to `maxBytes`, and one that
 * cannot be read rejects the waits for its task (its correlation id) with a `ResultDecodeError`,
 * leaving every other wait and the consumer as they were.
 */
import type { Channel, ConsumeMessage } from "amqplib";
import { decompressAtMost } from "../compression.js";
import { AmqpConnection, type AmqpLink } from "../transports/amqp-connection.js";
import { amqpEndpoints, describeEndpoints } from "../transports/amqp-url.js";
import { checkFailoverStrategy, type BrokerFailoverStrategy } from "../transports/failover.js";
import { ResultBackendError, ResultDecodeError, asCeleryError, redact } from "../errors.js";
import { limitError, resolveDecodeLimits, type DecodeLimits, type ResolvedDecodeLimits } from "../serializers/limits.js";
import { checkAccepted, decodeResultMeta, resolveResultAccept, type ResultAccept } from "./accept.js";
import type { ResultBackend, ResultMeta, WaitOptions } from "./backend.js";
import { pendingMeta } from "./exceptions.js";
import { WaiterRegistry } from "./waiters.js";
import type { Serializers } from "../serializers/registry.js";

export interface RpcBackendOptions {
  /**
   * The broker's `amqp://` URL; results travel over their own connection to it. Several hosts as
   * Celery writes them (`amqp://h1//;amqp://h2//`) or a list, tried in `failoverStrategy` order.
   */
  brokerUrl: string | readonly string[];
  /** Celery's `broker_failover_strategy`: which broker host to try after one fails. @default "round-robin" */
  failoverStrategy?: BrokerFailoverStrategy;
  /** The reply queue: the app's oid, sent as `reply_to` on every task. */
  replyTo: string;
  /** Celery's `result_expires` in seconds: the reply queue's `x-expires`. @default 86 400 */
  expires?: number;
  /** Milliseconds to wait for the connection. @default 10 000 */
  connectTimeout?: number;
  /** Heartbeat in seconds, unless the URL sets one. @default 30 */
  heartbeat?: number;
  /** States kept for tasks that nobody waits on; the oldest are dropped beyond this. @default 10 000 */
  maxCachedResults?: number;
  /** Celery's `result_accept_content`: the serializer names or content types a reply may come in. @default ["json"] */
  resultAccept?: readonly string[];
  /** Caps on what decoding one reply may read (after inflating), build and nest. @default DEFAULT_DECODE_LIMITS */
  decodeLimits?: DecodeLimits;
  /** The serializers replies are read with (the app's, for an `rpc://` URL). @default json, yaml, msgpack and pickle */
  serializers?: Serializers;
}

/** The backend's channel on one connection, and what it has done there. */
interface Session {
  readonly link: AmqpLink;
  channel: Channel;
  declared: Promise<void> | undefined;
  consuming: Promise<void> | undefined;
  /** Set once the waits have been told the session is gone. */
  lost: boolean;
}

export class RpcBackend implements ResultBackend {
  readonly kind = "rpc";
  readonly replyTo: string;
  private readonly expiresMs: number;
  private readonly maxCached: number;
  private readonly accept: ResultAccept;
  private readonly limits: ResolvedDecodeLimits;
  /** Results travel over their own connection. No idle probe: replacing it ends every wait in progress with it. */
  private readonly connection: AmqpConnection<Session>;
  /** Last state seen per task id (Celery's `_cache` + `_out_of_band`). */
  private readonly cache = new Map<string, ResultMeta>();
  private readonly waiters: WaiterRegistry;
  /** Deliveries are handled in order (decompression is async; STARTED must not overtake SUCCESS). */
  private handling: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(options: RpcBackendOptions) {
    // Errors show no credentials (and carry no URL parser error, whose `input` is the raw URL).
    const endpoints = amqpEndpoints(options.brokerUrl, options.heartbeat ?? 30, "rpc:// result backend: invalid broker URL");
    this.replyTo = options.replyTo;
    this.expiresMs = Math.round((options.expires ?? 86_400) * 1000);
    this.connection = new AmqpConnection<Session>({
      endpoints,
      failoverStrategy: checkFailoverStrategy(options.failoverStrategy),
      neededFor: "the rpc:// result backend",
      purpose: " for rpc:// results",
      connectTimeout: options.connectTimeout ?? 10_000,
      // The name shows in the management UI and `rabbitmqctl list_connections user_provided_name`.
      clientProperties: { connection_name: `celery-edge rpc results ${this.replyTo}` },
      closedError: () => new ResultBackendError("the rpc:// result backend is closed"),
      setup: (link) => this.setup(link),
    });
    this.maxCached = options.maxCachedResults ?? 10_000;
    this.accept = resolveResultAccept(options.resultAccept ?? ["json"], options.serializers);
    this.limits = resolveDecodeLimits(options.decodeLimits);
    this.waiters = new WaiterRegistry({ where: describeEndpoints(endpoints) });
  }

  /** The broker host connected to (else the one tried next), as errors show it. */
  private get where(): string {
    return this.connection.where;
  }

  /** AMQP connections this backend opened so far (tests and benchmarks read it). */
  get connectionsOpened(): number {
    return this.connection.opened;
  }

  /** Declares the reply queue before a task is published (Celery's `RPCBackend.on_task_call`). */
  async onTaskCall(_taskId: string): Promise<void> {
    const session = await this.connected();
    await this.declare(session);
  }

  async getMeta(taskId: string): Promise<ResultMeta> {
    const session = await this.connected();
    await this.consume(session);
    // A round trip on the consuming channel lets deliveries already on their way land first.
    await this.guard(session.channel.checkQueue(this.replyTo), "checking the reply queue");
    await this.handling;
    return this.cache.get(taskId) ?? pendingMeta(taskId);
  }

  /** rpc:// keeps nothing on the server: this only drops the state seen locally. */
  async forget(taskId: string): Promise<void> {
    this.cache.delete(taskId);
  }

  waitFor(taskIds: readonly string[], options: WaitOptions = {}): Promise<Map<string, ResultMeta>> {
    // An empty wait succeeds even on a closed backend: there is nothing it would need the broker for.
    if (this.closed && taskIds.length > 0) return Promise.reject(new ResultBackendError("the rpc:// result backend is closed"));
    return this.waiters.wait(taskIds, {
      timeout: options.timeout,
      // The reply queue is consumed once: a result that came in before this wait is only in the cache.
      known: (id) => this.cache.get(id),
      start: () => this.connected().then((session) => this.consume(session)),
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waiters.rejectAll(new ResultBackendError("the rpc:// result backend was closed while waiting"));
    await this.connection.close();
  }

  private async connected(): Promise<Session> {
    if (this.closed) throw new ResultBackendError("the rpc:// result backend is closed");
    try {
      return await this.connection.acquire();
    } catch (err) {
      throw asCeleryError(err, (m, cause) => new ResultBackendError(`cannot connect to ${this.where} for rpc:// results: ${m}`, { cause }));
    }
  }

  /** The backend's channel on a fresh connection; losing either ends the waits. */
  private async setup(link: AmqpLink): Promise<Session> {
    let channel: Channel;
    try {
      channel = await link.model.createChannel();
    } catch (err) {
      throw asCeleryError(err, (m, cause) => new ResultBackendError(`cannot open a channel on ${link.where} for rpc:// results: ${m}`, { cause }));
    }
    const session: Session = { link, channel, declared: undefined, consuming: undefined, lost: false };
    link.onDeath((err) => this.lose(session, "lost the broker connection", err));
    channel.on("error", () => {});
    // The connection's 'close' (which carries the reason) follows a channel closed with it; let it speak first.
    channel.on("close", () => setTimeout(() => this.lose(session, "the result channel closed"), 0));
    return session;
  }

  private lose(session: Session, reason: string, err?: Error): void {
    if (session.lost) return;
    session.lost = true;
    this.waiters.rejectAll(
      new ResultBackendError(`${reason} while waiting for rpc:// results on ${session.link.where}${err ? `: ${redact(err.message)}` : ""}`, {
        cause: err,
      }),
    );
    void session.link.close(2_000);
  }

  /** Celery's binding: `Queue(oid, Exchange(''), oid, durable=False, auto_delete=True, expires=result_expires)`. */
  private declare(session: Session): Promise<void> {
    session.declared ??= this.guard(
      session.channel
        .assertQueue(this.replyTo, { durable: false, autoDelete: true, exclusive: false, expires: this.expiresMs })
        .then(() => undefined),
      `declaring the reply queue ${this.replyTo}`,
    );
    session.declared.catch(() => {
      session.declared = undefined;
    });
    return session.declared;
  }

  /** One consumer for every id, for the life of the connection (cancelling it would delete the queue). */
  private consume(session: Session): Promise<void> {
    session.consuming ??= (async () => {
      await this.declare(session);
      await this.guard(
        session.channel.consume(this.replyTo, (msg) => this.onDelivery(session, msg), { noAck: true }),
        `consuming the reply queue ${this.replyTo}`,
      );
    })();
    session.consuming.catch(() => {
      session.consuming = undefined;
    });
    return session.consuming;
  }

  private onDelivery(session: Session, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled the consumer: the reply queue was deleted.
      session.consuming = undefined;
      session.declared = undefined;
      this.waiters.rejectAll(new ResultBackendError(`the reply queue ${this.replyTo} was deleted while waiting for rpc:// results`));
      return;
    }
    this.handling = this.handling.then(() => this.handle(msg)).catch(() => {});
  }

  private async handle(msg: ConsumeMessage): Promise<void> {
    const correlationId = typeof msg.properties.correlationId === "string" ? msg.properties.correlationId : undefined;
    let meta: ResultMeta;
    try {
      meta = await this.decode(msg, correlationId ?? "");
    } catch (err) {
      // Only the waits of this task learn of it; a reply without a correlation id has none.
      const error =
        err instanceof ResultDecodeError
          ? err
          : new ResultDecodeError(
              `cannot decode the rpc:// result${correlationId ? ` of task ${correlationId}` : ""}: ${err instanceof Error ? err.message : String(err)}`,
              correlationId,
              { cause: err },
            );
      if (correlationId) this.waiters.rejectFor(correlationId, error);
      return;
    }
    const taskId = correlationId ?? meta.taskId;
    if (taskId !== meta.taskId) meta = { ...meta, taskId };
    this.remember(taskId, meta);
    this.waiters.deliver(taskId, meta);
  }

  /** The meta a reply carries: its format checked before anything is inflated or decoded. */
  private async decode(msg: ConsumeMessage, taskId: string): Promise<ResultMeta> {
    const contentType = String(msg.properties.contentType ?? "application/json");
    checkAccepted(contentType, taskId, this.accept);
    let body: Uint8Array = msg.content;
    const compression = msg.properties.headers?.compression;
    if (compression !== undefined && compression !== null) {
      if (String(compression) !== "application/x-gzip") throw new Error(`unsupported result compression ${String(compression)}`);
      body = await inflate(body, this.limits.maxBytes);
    }
    return decodeResultMeta(body, contentType, taskId, this.accept, this.limits);
  }

  private remember(taskId: string, meta: ResultMeta): void {
    this.cache.delete(taskId);
    this.cache.set(taskId, meta);
    while (this.cache.size > this.maxCached) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
  }

  private async guard<T>(work: Promise<T>, what: string): Promise<T> {
    try {
      return await work;
    } catch (err) {
      throw asCeleryError(err, (m, cause) => new ResultBackendError(`${what} on ${this.where}: ${m}`, { cause }));
    }
  }
}

/** kombu's zlib compression; a body that inflates beyond `maxBytes` (a zip bomb) is refused. */
async function inflate(bytes: Uint8Array, maxBytes: number): Promise<Uint8Array> {
  const out = await decompressAtMost(bytes, maxBytes);
  if (out === null) throw limitError("zlib", `the result inflates to more than ${maxBytes} bytes (maxBytes)`);
  return out;
}

/** Celery's `rpc://` backend over the broker at `brokerUrl`. */
export function rpcBackend(options: RpcBackendOptions): RpcBackend {
  return new RpcBackend(options);
}
