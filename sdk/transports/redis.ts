/**
 * @module
 * kombu's Redis broker from Node (node-redis). What it writes, and where, is decided by the
 * universal `redis-wire.ts` and `redis-route.ts`; this file holds the connection: one lazily opened
 * client per transport, reused across calls and warm Lambda invocations, checked with a PING after
 * an idle spell (a thawed Lambda holds a dead socket that still looks open), replaced when it breaks.
 *
 * A batch is one round trip: node-redis writes every command issued in one turn of the event loop
 * in one go, so the binding `SADD`s, the `LPUSH`es to queues, the `PUBLISH`es of fanouts and one
 * script per named exchange (see `ROUTE_SCRIPT`) travel together. A reply means Redis has the
 * message; Redis has no publisher confirms beyond that, and its durability is the server's
 * `appendonly`/`save` setting.
 */
import { createHash } from "node:crypto";
import type * as NodeRedis from "redis";
import { ConnectionError, PublishError, TimeoutError, redact, type CeleryError } from "../errors.js";
import { importPeer } from "../peer.js";
import type { PublishReceipt, TaskMessage } from "../protocol/message.js";
import type { ExchangeType, RoutingDefaults } from "../routing.js";
import type { PublishOptions, PublishOutcome, Transport } from "../transport.js";
import { parseRedisUrl } from "../backends/redis.js";
import { ROUTE_SCRIPT, declaredTypeOf, exchangeTypeOf, knownExchangeTypes, lookupQueues, parseTable } from "./redis-route.js";
import {
  bindingKey,
  bindingMember,
  declaredBinding,
  fanoutChannel,
  kombuMessage,
  messagePriority,
  queueKey,
  redisLayout,
  type RedisLayout,
  type RedisTransportOptions,
} from "./redis-wire.js";

export interface RedisBrokerOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://…` (TLS; `?ssl_cert_reqs=CERT_NONE` skips verification). */
  url: string;
  /** The workers' `broker_transport_options` (kombu's names: `global_keyprefix`, `sep`, `priority_steps`, …). @default kombu's defaults */
  transportOptions?: RedisTransportOptions;
  /** Exchange types the producer knows (from the app's `queues`); others are read off the workers' bindings. @default none */
  exchangeTypes?: ReadonlyMap<string, ExchangeType>;
  /** Milliseconds opening the connection may take; a call's `timeout` may cut it shorter. @default `socket_connect_timeout`, else 10 000 */
  connectTimeout?: number;
  /** Milliseconds a call without a `timeout` waits, once connected, for Redis to answer. @default `socket_timeout`, else 30 000 */
  publishTimeout?: number;
  /** After this many milliseconds without a reply, the next publish first checks the connection with a PING. @default 5 000 */
  idleProbeAfterMs?: number;
  /** How long that PING may take before the connection is replaced. @default 2 000 */
  probeTimeoutMs?: number;
  /** `CLIENT SETNAME` of the connection. @default "celery-edge:broker" */
  clientName?: string;
  /** Passed to the socket (net/tls), e.g. `{ ca: [pem] }` for a private CA on rediss://. @default none */
  socketOptions?: Record<string, unknown>;
}

type Client = NodeRedis.RedisClientType;

/** The connection and what has been written through it. */
interface Session {
  client: Client;
  /** When Redis last answered on it (ms since the epoch). */
  seen: number;
  dead: boolean;
  /** Binding members added through this connection (`<set key>\0<member>`). */
  declared: Set<string>;
}

/** Named-exchange scripts per call at most: a binding table that changes this often is refused. */
const ROUTE_ATTEMPTS = 3;
/** Messages per script call: bounds how long one script holds Redis. */
const SCRIPT_CHUNK = 1000;
/** Values per LPUSH. */
const PUSH_CHUNK = 1000;
const ROUTE_SHA = createHash("sha1").update(ROUTE_SCRIPT).digest("hex");
const base64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");

export class RedisTransport implements Transport {
  readonly kind = "redis";
  /** Connections opened so far (tests and benchmarks read it). */
  connectionsOpened = 0;
  readonly layout: RedisLayout;
  private readonly target: ReturnType<typeof parseRedisUrl>;
  private readonly exchangeTypes: ReadonlyMap<string, ExchangeType>;
  private readonly connectTimeout: number;
  private readonly publishTimeout: number;
  private readonly idleProbeAfterMs: number;
  private readonly probeTimeoutMs: number;
  private readonly clientName: string;
  private readonly socketOptions: Record<string, unknown>;
  private session: Promise<Session> | undefined;
  /** Binding members last read per exchange: routing uses them, the script checks they still hold. */
  private readonly tables = new Map<string, string[]>();
  private closed = false;
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(options: RedisBrokerOptions) {
    this.target = parseRedisUrl(options.url, "broker");
    const t = options.transportOptions;
    this.layout = redisLayout(t, this.target.database);
    this.exchangeTypes = options.exchangeTypes ?? new Map();
    this.connectTimeout = options.connectTimeout ?? (t?.socket_connect_timeout ? t.socket_connect_timeout * 1000 : 10_000);
    this.publishTimeout = options.publishTimeout ?? (t?.socket_timeout ? t.socket_timeout * 1000 : 30_000);
    this.idleProbeAfterMs = options.idleProbeAfterMs ?? 5_000;
    this.probeTimeoutMs = options.probeTimeoutMs ?? 2_000;
    this.clientName = options.clientName ?? "celery-edge:broker";
    this.socketOptions = options.socketOptions ?? {};
  }

  /** `redis://host:port/db`, without credentials. */
  get where(): string {
    return this.target.where;
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

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inflight]);
    const session = this.session;
    this.session = undefined;
    await session?.then((s) => s.client.close()).catch(() => {});
  }

  private async publishAll(messages: readonly TaskMessage[], options: PublishOptions): Promise<PublishOutcome[]> {
    const fail = (error: CeleryError): PublishOutcome[] => messages.map(() => ({ ok: false, error }));
    if (this.closed) return fail(new ConnectionError("transport is closed"));
    if (messages.length === 0) return [];
    const budget = options.timeout;
    const started = Date.now();
    const connectLimit = Math.min(options.connectTimeout ?? this.connectTimeout, budget ?? Infinity);
    let session: Session;
    try {
      session = await this.acquire(connectLimit);
    } catch (err) {
      if (err instanceof TimeoutError && budget !== undefined && connectLimit === budget) {
        return fail(new TimeoutError(`connecting to ${this.where} took longer than the ${budget} ms the publish had; the tasks were not sent`));
      }
      return fail(err instanceof ConnectionError || err instanceof TimeoutError ? err : new ConnectionError(`cannot connect to ${this.where}: ${redact(String(err))}`, { cause: err }));
    }
    const timeout = budget === undefined ? (options.publishTimeout ?? this.publishTimeout) : Math.max(0, budget - (Date.now() - started));
    return new Batch(this, session, messages, timeout).run();
  }

  /** The live session, opened or checked as needed. */
  private async acquire(connectTimeout: number): Promise<Session> {
    if (this.session) {
      const current = this.session;
      const s = await current.catch(() => undefined);
      if (s && !s.dead && s.client.isReady) {
        if (Date.now() - s.seen < this.idleProbeAfterMs) return s;
        if (await this.probe(s)) return s;
      }
      if (this.session === current) this.session = undefined;
      if (s) this.drop(s);
    }
    if (this.closed) throw new ConnectionError("transport is closed");
    if (!this.session) {
      const attempt = this.open(connectTimeout);
      this.session = attempt;
      attempt.catch(() => {
        if (this.session === attempt) this.session = undefined;
      });
    }
    return this.session;
  }

  /** A PING round trip within `probeTimeoutMs`; false when the connection did not answer. */
  private async probe(s: Session): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        s.client.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("probe timed out")), this.probeTimeoutMs);
        }),
      ]);
      s.seen = Date.now();
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private async open(connectTimeout: number): Promise<Session> {
    const redis = await importPeer("redis", "a redis:// broker", () => import("redis"));
    const t = this.target;
    const client = redis.createClient({
      socket: {
        host: t.host,
        port: t.port,
        connectTimeout,
        noDelay: true,
        // A lost connection fails the calls in flight (never a silent hang); the next call reconnects.
        reconnectStrategy: false,
        ...(t.tls ? { tls: true as const, rejectUnauthorized: t.rejectUnauthorized } : {}),
        ...this.socketOptions,
      },
      database: t.database,
      name: this.clientName,
      // Commands issued while not connected fail at once instead of waiting for a reconnect that never comes.
      disableOfflineQueue: true,
      ...(t.username !== undefined ? { username: t.username } : {}),
      ...(t.password !== undefined ? { password: t.password } : {}),
    }) as Client;
    const session: Session = { client, seen: Date.now(), dead: false, declared: new Set() };
    let firstError: Error | undefined;
    client.on("error", (err: Error) => {
      firstError ??= err;
      this.drop(session);
    });
    client.on("end", () => this.drop(session));
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        client.connect(),
        new Promise((_, reject) => {
          // node-redis's own connectTimeout covers the TCP connect; this covers TLS, AUTH and SELECT too.
          timer = setTimeout(() => reject(new TimeoutError(`connecting to ${this.where} took longer than ${connectTimeout} ms`)), connectTimeout);
        }),
      ]);
    } catch (err) {
      this.drop(session);
      if (err instanceof TimeoutError) throw err;
      const reason = firstError ?? (err instanceof Error ? err : undefined);
      throw new ConnectionError(`cannot connect to ${this.where}: ${redact(reason?.message ?? String(err))}`, { cause: reason ?? err });
    } finally {
      clearTimeout(timer);
    }
    session.seen = Date.now();
    this.connectionsOpened++;
    if (this.closed) {
      this.drop(session);
      throw new ConnectionError("transport is closed");
    }
    return session;
  }

  /** Marks a session dead and releases its socket; the next call opens a new one. */
  drop(s: Session): void {
    if (s.dead) return;
    s.dead = true;
    void this.session?.then((current) => {
      if (current === s) this.session = undefined;
    }, () => {});
    try {
      s.client.destroy();
    } catch {
      // already closed
    }
  }

  /** @internal for `Batch` */
  knownType(m: TaskMessage): ExchangeType | undefined {
    return declaredTypeOf(m, this.exchangeTypes);
  }

  /** @internal for `Batch` */
  table(exchange: string): string[] | undefined {
    return this.tables.get(exchange);
  }

  /** @internal for `Batch` */
  learnTable(exchange: string, members: string[]): void {
    if (this.tables.size > 1000 && !this.tables.has(exchange)) this.tables.clear();
    this.tables.set(exchange, members);
  }
}

/** One message's target once routed. */
interface Push {
  index: number;
  keys: string[];
  payload: string;
}

/**
 * One `publishMany` call on one session: every command is issued in the same turn so they go out
 * together, each message settles from its own replies, and the whole call has one timer.
 */
class Batch {
  private readonly outcomes: Array<PublishOutcome | undefined>;
  private left: number;
  private done!: (outcomes: PublishOutcome[]) => void;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly where: string;
  /** Messages to named exchanges, encoded once for however many routing attempts. */
  private readonly payloads = new Map<number, string>();

  constructor(
    private readonly transport: RedisTransport,
    private readonly session: Session,
    private readonly messages: readonly TaskMessage[],
    private readonly timeout: number,
  ) {
    this.outcomes = new Array(messages.length);
    this.left = messages.length;
    this.where = transport.where;
  }

  run(): Promise<PublishOutcome[]> {
    return new Promise<PublishOutcome[]>((done) => {
      this.done = done;
      this.timer = setTimeout(() => this.expire(), this.timeout);
      try {
        this.issue();
      } catch (err) {
        this.failRest(new PublishError("ERR_PUBLISH", `could not send to ${this.where}: ${redact(String(err))}`, { cause: err }));
      }
    });
  }

  private settle(i: number, outcome: PublishOutcome): void {
    if (this.outcomes[i] !== undefined) return;
    this.outcomes[i] = outcome;
    if (--this.left === 0) {
      clearTimeout(this.timer);
      this.done(this.outcomes as PublishOutcome[]);
    }
  }

  private ok(i: number): void {
    this.settle(i, { ok: true, receipt: { id: this.messages[i]!.meta.id } });
  }

  private failRest(error: CeleryError): void {
    this.messages.forEach((_, i) => this.settle(i, { ok: false, error }));
  }

  /** At the deadline the connection's state is unknown: it is dropped, and what is unanswered fails. */
  private expire(): void {
    this.transport.drop(this.session);
    this.messages.forEach((m, i) =>
      this.settle(i, { ok: false, error: new TimeoutError(`no answer from ${this.where} for task ${m.meta.id} within ${this.timeout} ms; it may or may not have been delivered`) }),
    );
  }

  /** A failed command as a typed error: the connection went (maybe delivered) or Redis refused it (not delivered). */
  private failure(m: TaskMessage, err: unknown): CeleryError {
    if (this.session.dead || !this.session.client.isReady) {
      return new ConnectionError(`connection to ${this.where} was lost before Redis answered for task ${m.meta.id}; it may or may not have been delivered`, { cause: err });
    }
    return new PublishError("ERR_PUBLISH", `${this.where} refused task ${m.meta.id}: ${redact(err instanceof Error ? err.message : String(err))}`, { cause: err });
  }

  private send(args: string[]): Promise<unknown> {
    const reply = this.session.client.sendCommand(args);
    return reply.then((r) => {
      this.session.seen = Date.now();
      return r;
    });
  }

  private issue(): void {
    const layout = this.transport.layout;
    const groups = new Map<string, { type: ExchangeType | undefined; indexes: number[] }>();
    const lists = new Map<string, { indexes: number[]; payloads: string[] }>();
    // Declarations first: commands on one connection run in order, so every push below sees them.
    for (const m of this.messages) {
      const d = m.declare;
      if (!d || d.queue === undefined || d.exchange === "") continue;
      const key = bindingKey(layout, d.exchange);
      const member = bindingMember(layout, declaredBinding(d.exchangeType, d.routingKey, d.queue));
      const id = `${key}\0${member}`;
      if (this.session.declared.has(id)) continue;
      this.session.declared.add(id);
      const table = this.transport.table(d.exchange);
      if (table && !table.includes(member)) this.transport.learnTable(d.exchange, [...table, member]);
      this.send(["SADD", key, member]).catch(() => this.session.declared.delete(id));
    }
    this.messages.forEach((m, i) => {
      const payload = kombuMessage(m, crypto.randomUUID(), base64);
      if (m.exchange === "") {
        if (m.routingKey === "") {
          this.settle(i, { ok: false, error: new PublishError("ERR_UNROUTABLE", `task ${m.meta.id} has neither an exchange nor a routing key (queue)`) });
          return;
        }
        const key = queueKey(layout, m.routingKey, messagePriority(m));
        let list = lists.get(key);
        if (!list) lists.set(key, (list = { indexes: [], payloads: [] }));
        list.indexes.push(i);
        list.payloads.push(payload);
        return;
      }
      const type = this.transport.knownType(m);
      if (type === "fanout") {
        this.send(["PUBLISH", fanoutChannel(layout, m.exchange, m.routingKey), payload]).then(
          (receivers) =>
            m.mandatory && receivers === 0
              ? this.settle(i, { ok: false, error: new PublishError("ERR_UNROUTABLE", `task ${m.meta.id} is unroutable: no worker listens on fanout exchange "${m.exchange}"`) })
              : this.ok(i),
          (err) => this.settle(i, { ok: false, error: this.failure(m, err) }),
        );
        return;
      }
      let group = groups.get(m.exchange);
      if (!group) groups.set(m.exchange, (group = { type, indexes: [] }));
      group.indexes.push(i);
      this.payloads.set(i, payload);
    });
    // One LPUSH of many values per list: Redis pushes them in order, as one LPUSH each would, and
    // answers once for all of them (the per-command cost of the client, not Redis, limits a batch).
    for (const [key, list] of lists) {
      for (let at = 0; at < list.indexes.length; at += PUSH_CHUNK) {
        const indexes = list.indexes.slice(at, at + PUSH_CHUNK);
        this.send(["LPUSH", key, ...list.payloads.slice(at, at + PUSH_CHUNK)]).then(
          () => indexes.forEach((i) => this.ok(i)),
          (err) => indexes.forEach((i) => this.settle(i, { ok: false, error: this.failure(this.messages[i]!, err) })),
        );
      }
    }
    for (const [exchange, group] of groups) {
      for (let at = 0; at < group.indexes.length; at += SCRIPT_CHUNK) void this.route(exchange, group.type, group.indexes.slice(at, at + SCRIPT_CHUNK));
    }
  }

  /** Routes a named exchange's messages against its table and pushes them in one script call, re-reading the table if it changed. */
  private async route(exchange: string, known: ExchangeType | undefined, indexes: number[]): Promise<void> {
    const layout = this.transport.layout;
    const setKey = bindingKey(layout, exchange);
    for (let attempt = 0; attempt < ROUTE_ATTEMPTS; attempt++) {
      const members = this.transport.table(exchange);
      const pushes: Push[] = [];
      const unroutable: number[] = [];
      if (members) {
        const table = parseTable(layout, members);
        const type = exchangeTypeOf(known, table);
        for (const i of indexes) {
          const m = this.messages[i]!;
          const queues = lookupQueues(type, table, m.routingKey);
          if (queues.length === 0) unroutable.push(i);
          else pushes.push({ index: i, keys: queues.map((q) => queueKey(layout, q, messagePriority(m))), payload: this.payloads.get(i)! });
        }
      }
      const args = ["EVALSHA", ROUTE_SHA, "1", setKey, ...(members ? [String(members.length), ...members] : ["-1"])];
      for (const p of pushes) for (const k of p.keys) args.push(k, p.payload);
      let reply: unknown;
      try {
        reply = await this.script(args);
      } catch (err) {
        for (const i of indexes) this.settle(i, { ok: false, error: this.failure(this.messages[i]!, err) });
        return;
      }
      if (reply === 1) {
        for (const p of pushes) this.ok(p.index);
        for (const i of unroutable) {
          const m = this.messages[i]!;
          this.settle(i, {
            ok: false,
            error: new PublishError("ERR_UNROUTABLE", `task ${m.meta.id} is unroutable: no queue bound to exchange "${exchange}" with routing key "${m.routingKey}" on ${this.where}`),
          });
        }
        return;
      }
      this.transport.learnTable(exchange, Array.isArray(reply) ? reply.map(String) : []);
    }
    for (const i of indexes) {
      this.settle(i, { ok: false, error: new PublishError("ERR_PUBLISH", `the bindings of exchange "${exchange}" on ${this.where} kept changing; task ${this.messages[i]!.meta.id} was not sent`) });
    }
  }

  /** EVALSHA, falling back to EVAL once when the server does not have the script cached. */
  private async script(args: string[]): Promise<unknown> {
    try {
      return await this.send(args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
      return this.send(["EVAL", ROUTE_SCRIPT, ...args.slice(2)]);
    }
  }
}

/** `redis://` broker URL → transport; the Node entry registers it for `redis` and `rediss`. */
export function redisTransport(url: string, options: Omit<RedisBrokerOptions, "url"> = {}): RedisTransport {
  return new RedisTransport({ url, ...options });
}

/** The exchange types an app's routing config fixes (its `queues` and default exchange). */
export const exchangeTypesOf = (routing: RoutingDefaults | undefined): Map<string, ExchangeType> => knownExchangeTypes(routing);
