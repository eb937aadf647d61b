/**
 * @module
 * One AMQP connection's life (Node only, amqplib), shared by the transport and the rpc:// result
 * backend: opened lazily and once for concurrent callers; checked with a round trip when the broker
 * has been quiet (a Lambda thawed after a freeze holds a dead socket that still looks open);
 * replaced after it breaks; the broker's flow control (`connection.blocked`) tracked; torn down
 * promptly even when the socket under it is dead. Each owner opens its own channels on it (`setup`).
 * With several broker URLs, opening tries them in Celery's `broker_failover_strategy` order
 * (`failover.ts`), sharing the connect timeout among the hosts still to try.
 *
 * Only amqplib's public API is used. The socket is reached the way `net.connect` and `tls.connect`
 * document it: amqplib passes its socket options through, and a `signal` among them destroys the
 * socket when aborted; amqplib then sees a socket error and closes the connection as it always does.
 * Errors are told apart by what amqplib puts on them (`code`, `classId`, `methodId` from the
 * broker's close frame), never by their message text.
 */
import type { ChannelModel, SocketOptions } from "amqplib";
import { ConnectionError, TimeoutError, asCeleryError, type CeleryError } from "../errors.js";
import { importPeer } from "../peer.js";
import type { AmqpEndpoint } from "./amqp-url.js";
import { BrokerRotation, type BrokerFailoverStrategy } from "./failover.js";

/** AMQP reply codes (AMQP 0-9-1 §1.9) the SDK tells apart. */
export const AMQP_NOT_FOUND = 404;
/** AMQP class ids: which kind of method the broker refused. */
export const AMQP_CLASS_EXCHANGE = 40;
export const AMQP_CLASS_QUEUE = 50;
/** `exchange.declare` and `queue.declare` (passive or not) are method 10 of their class. */
export const AMQP_METHOD_DECLARE = 10;

/** What the broker said when it closed a channel or connection over something we sent. */
export interface BrokerRefusal {
  /** The reply code: 404 NOT_FOUND, 405 RESOURCE_LOCKED, 406 PRECONDITION_FAILED, 403 ACCESS_REFUSED, 320 CONNECTION_FORCED… */
  replyCode: number;
  /** The class of the method refused (40 exchange, 50 queue, 60 basic); 0 when none. */
  classId: number;
  /** The method refused, within its class (10 declare…); 0 when none. */
  methodId: number;
}

/**
 * The broker's refusal an amqplib error carries — amqplib copies the close frame's `replyCode`,
 * `classId` and `methodId` onto the error of the operation it failed — or undefined for any other
 * error (a socket error's `code` is a string such as "ECONNREFUSED").
 */
export function brokerRefusal(err: unknown): BrokerRefusal | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const { code, classId, methodId } = err as { code?: unknown; classId?: unknown; methodId?: unknown };
  if (typeof code !== "number") return undefined;
  return { replyCode: code, classId: typeof classId === "number" ? classId : 0, methodId: typeof methodId === "number" ? methodId : 0 };
}

/** Rejects with `onTimeout()` unless `work` settles within `ms`; `Infinity` waits as long as it takes. */
export function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => CeleryError): Promise<T> {
  if (ms === Infinity) return work;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(onTimeout()), Math.max(0, ms));
    }),
  ]).finally(() => clearTimeout(timer));
}

/** One open connection. Owners keep their channels next to it and drop them when it dies. */
export class AmqpLink {
  /** Set once the connection is gone or given up on; never cleared. */
  dead = false;
  /** The broker's reason while it blocks publishers (`connection.blocked`), else null. */
  blockedReason: string | null = null;
  /**
   * When the broker was last heard from (ms since the epoch), as far as anyone can tell through
   * amqplib's API: opening, answers, confirms, returns, deliveries (owners call `seen()`).
   */
  lastSeen = Date.now();
  private readonly unblockWaiters: Array<() => void> = [];
  private readonly deathListeners: Array<(err?: Error) => void> = [];

  constructor(
    readonly model: ChannelModel,
    private readonly socket: AbortController,
    /** The host it is connected to, as errors show it. */
    readonly where: string,
  ) {
    model.on("error", () => {}); // a 'close' follows, with the same error
    model.on("close", (err?: Error) => this.end(err));
    model.on("blocked", (reason: string) => {
      this.seen();
      this.blockedReason = reason || "blocked";
    });
    model.on("unblocked", () => {
      this.seen();
      this.blockedReason = null;
      for (const wake of this.unblockWaiters.splice(0)) wake();
    });
  }

  /** The broker just answered on this connection. */
  seen(): void {
    this.lastSeen = Date.now();
  }

  /** Resolves once the broker lets publishers through again, or the link dies. */
  unblocked(): Promise<void> {
    if (this.blockedReason === null || this.dead) return Promise.resolve();
    return new Promise((resolve) => this.unblockWaiters.push(resolve));
  }

  /** Runs `listener` once when the link dies, with the error amqplib closed it with, if any. */
  onDeath(listener: (err?: Error) => void): void {
    if (this.dead) listener();
    else this.deathListeners.push(listener);
  }

  /** Gives up on the connection now and destroys its socket: for one that is dead or in an unknown state. */
  destroy(): void {
    this.end();
    this.socket.abort();
  }

  /** Closes cleanly (`connection.close`), giving the broker `ms` to answer before the socket is destroyed. */
  async close(ms: number): Promise<void> {
    if (this.dead) return;
    const closing = this.model.close();
    this.end();
    const clean = await withTimeout(closing, ms, () => new TimeoutError("close")).then(
      () => true,
      () => false,
    );
    if (!clean) this.socket.abort();
  }

  private end(err?: Error): void {
    if (this.dead) return;
    this.dead = true;
    for (const wake of this.unblockWaiters.splice(0)) wake();
    for (const listener of this.deathListeners.splice(0)) listener(err);
  }
}

export interface AmqpConnectionOptions<S extends { readonly link: AmqpLink }> {
  /** The broker's hosts (`amqpEndpoints`: the heartbeat is set there), one or more. */
  endpoints: readonly AmqpEndpoint[];
  /** The order hosts are tried in after one fails (Celery's `broker_failover_strategy`). @default "round-robin" */
  failoverStrategy?: BrokerFailoverStrategy;
  /** `shuffle`'s random source, a number in [0, 1). @default Math.random */
  random?: () => number;
  /** What needs amqplib, for the error when it is not installed ("an amqp:// broker"). */
  neededFor: string;
  /** Milliseconds opening a connection (and the owner's `setup` on it) may take. */
  connectTimeout: number;
  /** Said after "connecting to <where>" in a timeout, e.g. " for rpc:// results". @default "" */
  purpose?: string;
  /** Probe before handing out a connection the broker has been quiet on for this long. @default Infinity (never) */
  idleProbeAfterMs?: number;
  /** How long the probe, and a clean close, may take. @default 2 000 */
  probeTimeoutMs?: number;
  /** Passed to the socket (net/tls) with amqplib's own. @default none */
  socketOptions?: Record<string, unknown>;
  /** AMQP client properties, e.g. `connection_name`. @default amqplib's */
  clientProperties?: Record<string, unknown>;
  /** The error for a connection wanted after `close()`. */
  closedError: () => CeleryError;
  /** Opens the owner's channels on a fresh connection; a failure fails the connection. */
  setup: (link: AmqpLink) => Promise<S>;
  /** A round trip on the owner's channels that proves the connection alive. @default none (no probe) */
  probe?: (session: S) => Promise<unknown>;
}

/** Lazily opened, shared, replaced when it breaks: the connection of one owner (transport or backend). */
export class AmqpConnection<S extends { readonly link: AmqpLink }> {
  /** Connections opened so far (tests and benchmarks read it). */
  opened = 0;
  private session: S | undefined;
  private connecting: Promise<S> | undefined;
  /** Destroys the socket of the connection being opened, if any. */
  private attempt: AbortController | undefined;
  private probing: { link: AmqpLink; alive: Promise<boolean> } | undefined;
  private closed = false;

  /** Which host the next connect attempt starts with, and the order after a failure. */
  private readonly rotation: BrokerRotation;

  constructor(private readonly options: AmqpConnectionOptions<S>) {
    this.rotation = new BrokerRotation(options.endpoints.length, options.failoverStrategy, options.random);
  }

  /** The host connected to, else the one the next connect attempt starts with, as errors show it. */
  get where(): string {
    return this.session?.link.where ?? this.options.endpoints[this.rotation.first]!.where;
  }

  /**
   * The open connection's session — probed first when the broker has been quiet for
   * `idleProbeAfterMs` — or a new one. `connectTimeout` bounds opening a connection, when this
   * call is the one that opens it.
   */
  async acquire(connectTimeout = this.options.connectTimeout): Promise<S> {
    if (this.closed) throw this.options.closedError();
    const session = this.session;
    if (session && !session.link.dead && (await this.alive(session))) return session;
    this.connecting ??= this.open(connectTimeout).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /**
   * Closes the connection cleanly (destroying its socket if the broker does not answer in time) and
   * abandons one still being opened; `acquire` then fails.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.attempt?.abort();
    const session = this.session ?? (await this.connecting?.catch(() => undefined));
    this.session = undefined;
    await session?.link.close(this.options.probeTimeoutMs ?? 2_000);
  }

  private async alive(session: S): Promise<boolean> {
    const { probe, idleProbeAfterMs = Infinity, probeTimeoutMs = 2_000 } = this.options;
    const link = session.link;
    if (!probe || Date.now() - link.lastSeen <= idleProbeAfterMs) return true;
    if (this.probing?.link !== link) {
      const alive = withTimeout(probe(session), probeTimeoutMs, () => new TimeoutError("probe")).then(
        () => !link.dead,
        () => false,
      );
      this.probing = { link, alive };
      void alive.then((ok) => {
        if (this.probing?.link === link) this.probing = undefined;
        if (ok) link.seen();
        else link.destroy();
      });
    }
    return this.probing.alive;
  }

  private async open(ms: number): Promise<S> {
    const { endpoints, neededFor, purpose = "" } = this.options;
    const { connect } = await importPeer("amqplib", neededFor, () => import("amqplib"));
    const deadline = Date.now() + ms;
    const failures: Array<{ where: string; error: unknown }> = [];
    let untried = endpoints.length;
    for (const index of this.rotation.attempt()) {
      const endpoint = endpoints[index]!;
      // Each host gets an equal share of the time left, so one that never answers (a dropped SYN)
      // leaves time for the others; what a host that fails fast leaves goes to those after it.
      const share = ms === Infinity ? Infinity : (deadline - Date.now()) / untried--;
      if (failures.length > 0 && share <= 0) break;
      let session: S;
      try {
        session = await this.openOn(endpoint, share, connect);
      } catch (err) {
        if (this.closed || endpoints.length === 1) throw err;
        failures.push({ where: endpoint.where, error: err });
        continue;
      }
      if (this.closed) {
        await session.link.close(this.options.probeTimeoutMs ?? 2_000);
        throw this.options.closedError();
      }
      this.session = session;
      session.link.onDeath(() => {
        if (this.session === session) this.session = undefined;
      });
      return session;
    }
    throw this.noHost(failures, endpoints, ms, purpose);
  }

  /** Every host failed, or the time ran out before the rest were tried: names each host and why. */
  private noHost(failures: ReadonlyArray<{ where: string; error: unknown }>, endpoints: readonly AmqpEndpoint[], ms: number, purpose: string): CeleryError {
    const tried = failures.map(({ where, error }) => `${where}: ${asCeleryError(error, (m) => new ConnectionError(m)).message}`);
    const skipped = endpoints.filter((e) => !failures.some((f) => f.where === e.where)).map((e) => e.where);
    const last = failures[failures.length - 1]?.error;
    const text = `cannot connect to any of ${endpoints.length} broker hosts${purpose} (tried ${tried.join("; ")}${skipped.length > 0 ? `; no time left within ${ms} ms for ${skipped.join(", ")}` : ""})`;
    return last instanceof TimeoutError ? new TimeoutError(text) : new ConnectionError(text);
  }

  /** One connection to one host, with the owner's `setup` on it, within `ms`. */
  private async openOn(endpoint: AmqpEndpoint, ms: number, connect: typeof import("amqplib").connect): Promise<S> {
    const { purpose = "", socketOptions, clientProperties, setup } = this.options;
    const socket = new AbortController();
    this.attempt = socket;
    let link: AmqpLink | undefined;
    const attempt = (async () => {
      // `signal` is net/tls's own socket option; amqplib hands its socket options to them as they are.
      const options: SocketOptions & { signal: AbortSignal } = { ...socketOptions, ...(clientProperties ? { clientProperties } : {}), timeout: ms, signal: socket.signal };
      // Listening from the first moment: an amqplib 'error' with no listener would throw.
      const opened = await connect(endpoint.url, options).then((model) => new AmqpLink(model, socket, endpoint.where));
      link = opened;
      this.opened++;
      return setup(opened);
    })();
    try {
      return await withTimeout(attempt, ms, () => new TimeoutError(`connecting to ${endpoint.where}${purpose} took longer than ${Math.round(ms)} ms`));
    } catch (err) {
      // Also ends an attempt still under way: its socket goes, so nothing opens behind our back.
      if (link) link.destroy();
      else socket.abort();
      throw err;
    } finally {
      if (this.attempt === socket) this.attempt = undefined;
    }
  }
}
