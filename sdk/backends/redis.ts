/**
 * @module
 * Celery's `redis://` / `rediss://` result backend, client side (Node only, on node-redis).
 *
 * A worker stores a task's meta under `celery-task-meta-<id>` and, in the same MULTI, PUBLISHes it
 * on the channel of that name (`RedisBackend._set`). Waiting therefore needs no polling: subscribe
 * to the channels, then one MGET catches the results stored before the subscription took effect
 * (Celery's `ResultConsumer` does the same on reconnect). Every wait of a backend shares one
 * subscriber connection and one command connection, however many ids are awaited.
 *
 * Redis stores bytes without a content type: a meta is read with the configured `resultSerializer`
 * only (as Celery's own client does), and only if `resultAccept` allows that format. Whoever can
 * write the keys or PUBLISH on their channels controls those bytes, so a meta that cannot be read
 * ends the waits for its task with a `ResultDecodeError` and nothing else.
 */
import type * as NodeRedis from "redis";
import { ConfigurationError, ResultBackendError, ResultDecodeError, asCeleryError, redact } from "../errors.js";
import { importPeer } from "../peer.js";
import { serializerNamed, type Serializers } from "../serializers/registry.js";
import { resolveDecodeLimits, type DecodeLimits, type ResolvedDecodeLimits } from "../serializers/limits.js";
import { builtinSerializers, checkAccepted, contentTypeOf, decodeResultMeta, defaultResultAccept, resolveResultAccept, type ResultAccept } from "./accept.js";
import type { ResultBackend, ResultMeta, WaitOptions } from "./backend.js";
import { pendingMeta } from "./exceptions.js";
import { WaiterRegistry, type Wait } from "./waiters.js";

/** Celery's `KeyValueStoreBackend.task_keyprefix`. */
export const TASK_KEY_PREFIX = "celery-task-meta-";

export interface RedisBackendOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://…` (TLS; `?ssl_cert_reqs=CERT_NONE` skips verification). */
  url: string;
  /** The workers' `result_serializer`: every stored meta is read with it, never guessed from the bytes. @default "json" */
  resultSerializer?: string;
  /** Celery's `result_accept_content`: serializer names or content types; must include `resultSerializer`. @default [resultSerializer] */
  resultAccept?: readonly string[];
  /** Caps on what decoding one meta may read, build and nest. @default DEFAULT_DECODE_LIMITS */
  decodeLimits?: DecodeLimits;
  /** The serializers results are read with (the app's, for a `redis://` URL). @default json, yaml, msgpack and pickle */
  serializers?: Serializers;
  /** Milliseconds to wait for a connection. @default 10 000 */
  connectTimeout?: number;
  /** `CLIENT SETNAME` of this backend's connections, so they can be told apart in `CLIENT LIST`. @default "celery-edge" */
  clientName?: string;
}

interface RedisTarget {
  host: string;
  port: number;
  database: number;
  tls: boolean;
  rejectUnauthorized: boolean;
  username: string | undefined;
  password: string | undefined;
  /** `redis://host:port/db`, no credentials. */
  where: string;
}

/** Parses Celery's redis URL forms (for the result backend or the broker, as `role` says); errors never carry the password. */
export function parseRedisUrl(url: string, role: "backend" | "broker" = "backend"): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigurationError(`${role}: invalid redis URL (expected redis://host:6379/0)`);
  }
  const scheme = u.protocol.slice(0, -1);
  if (scheme !== "redis" && scheme !== "rediss") {
    throw new ConfigurationError(`${role}: a redis ${role} takes redis:// or rediss:// URLs, got ${scheme}://`);
  }
  // An `@` after the host: a password with an unencoded `/`, `?` or `#` (the rest of it would be read
  // as the host, database or options, and shown in errors).
  if (/@/.test(u.pathname + u.search + u.hash)) {
    throw new ConfigurationError(`${role}: invalid redis URL ${redact(url)}; percent-encode the user name and password (encodeURIComponent)`);
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost";
  const port = u.port === "" ? 6379 : Number(u.port);
  const dbText = u.pathname.replace(/^\/+/, "").replace(/\/+$/, "") || u.searchParams.get("db") || "0";
  if (!/^\d+$/.test(dbText)) throw new ConfigurationError(`${role}: redis database must be a number, got "${dbText}"`);
  const certReqs = (u.searchParams.get("ssl_cert_reqs") ?? "").toUpperCase();
  const database = Number(dbText);
  let username: string | undefined;
  let password: string | undefined;
  try {
    username = u.username ? decodeURIComponent(u.username) : undefined;
    password = u.password ? decodeURIComponent(u.password) : undefined;
  } catch {
    throw new ConfigurationError(`${role}: the redis URL ${redact(url)} has a malformed %-escape in its user name or password`);
  }
  return {
    host,
    port,
    database,
    tls: scheme === "rediss",
    rejectUnauthorized: !(certReqs === "CERT_NONE" || certReqs === "NONE"),
    username,
    password,
    where: `${scheme}://${u.host}/${database}`,
  };
}

/** What a redis backend reads a stored meta with. */
export interface StoredMetaFormat {
  /** The workers' `result_serializer`. */
  resultSerializer: string;
  /** @default [resultSerializer] */
  resultAccept?: readonly string[];
  decodeLimits?: DecodeLimits;
}

/**
 * Decodes a stored meta (`celery-task-meta-<id>`) with the workers' `resultSerializer` (`format`,
 * or just its name); throws
 * `ResultDecodeError` naming the task when `resultAccept` does not allow that format, when the bytes
 * are not in it or break a decoder limit, or when they hold no Celery task meta.
 */
export function decodeStoredMeta(bytes: Uint8Array, taskId: string, format: string | StoredMetaFormat): ResultMeta | Promise<ResultMeta> {
  const { resultSerializer, resultAccept, decodeLimits } = typeof format === "string" ? { resultSerializer: format } : format;
  const accept = resolveResultAccept(resultAccept ?? defaultResultAccept(resultSerializer));
  return decodeStored(bytes, taskId, resultSerializer, accept, resolveDecodeLimits(decodeLimits));
}

function decodeStored(bytes: Uint8Array, taskId: string, resultSerializer: string, accept: ResultAccept, limits: ResolvedDecodeLimits): ResultMeta | Promise<ResultMeta> {
  const contentType = checkAccepted(contentTypeOf(resultSerializer, accept.serializers), taskId, accept);
  // Redis keeps no content type: say which setting has to match the workers'.
  const explain = (err: unknown): never => {
    if (!(err instanceof ResultDecodeError)) throw err;
    throw new ResultDecodeError(`${err.message} (if the workers' result_serializer is not ${resultSerializer}, set resultSerializer to it)`, taskId, {
      cause: err.cause,
    });
  };
  try {
    const meta = decodeResultMeta(bytes, contentType, taskId, accept, limits);
    return meta instanceof Promise ? meta.catch(explain) : meta;
  } catch (err) {
    return explain(err);
  }
}

type Client = ReturnType<typeof createBinaryClient>;

function createBinaryClient({ createClient, RESP_TYPES }: typeof NodeRedis, target: RedisTarget, name: string, connectTimeout: number) {
  return createClient({
    socket: {
      host: target.host,
      port: target.port,
      connectTimeout,
      // A lost connection fails the calls and waits in flight (no silent hang); the next call reconnects.
      reconnectStrategy: false,
      ...(target.tls ? { tls: true as const, rejectUnauthorized: target.rejectUnauthorized } : {}),
    },
    database: target.database,
    name,
    ...(target.username !== undefined ? { username: target.username } : {}),
    ...(target.password !== undefined ? { password: target.password } : {}),
  }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
}

interface Subscription {
  client: Client;
  /** UNSUBSCRIBEs in flight: a new SUBSCRIBE to the channel waits for them. */
  leaving: Map<string, Promise<void>>;
  lost: boolean;
}

export class RedisBackend implements ResultBackend {
  readonly kind = "redis";
  /** Connections this backend opened so far (tests and benchmarks read it). */
  connectionsOpened = 0;
  private readonly target: RedisTarget;
  private readonly serializer: string;
  private readonly accept: ResultAccept;
  private readonly limits: ResolvedDecodeLimits;
  private readonly connectTimeout: number;
  private readonly clientName: string;
  private command: Promise<Client> | undefined;
  private subscription: Promise<Subscription> | undefined;
  private readonly waiters: WaiterRegistry;
  /** Per awaited id: resolves once SUBSCRIBE took effect for its channel. */
  private readonly channelReady = new Map<string, Promise<void>>();
  private closed = false;

  constructor(options: RedisBackendOptions) {
    this.target = parseRedisUrl(options.url);
    this.serializer = options.resultSerializer ?? "json";
    this.connectTimeout = options.connectTimeout ?? 10_000;
    this.clientName = options.clientName ?? "celery-edge";
    const serializers = options.serializers ?? builtinSerializers();
    serializerNamed(serializers, this.serializer); // unknown names fail at construction
    this.accept = resolveResultAccept(options.resultAccept ?? defaultResultAccept(this.serializer), serializers);
    if (!this.accept.contentTypes.has(contentTypeOf(this.serializer, serializers))) {
      throw new ConfigurationError(
        `resultSerializer ${this.serializer} is not in resultAccept (${this.accept.names.join(", ")}): every stored result would be refused`,
        { code: "ERR_INVALID_OPTION" },
      );
    }
    this.limits = resolveDecodeLimits(options.decodeLimits);
    this.waiters = new WaiterRegistry({ where: this.where, watch: (ids) => this.watch(ids), unwatch: (ids) => this.unwatch(ids) });
  }

  /** `redis://host:port/db`, without credentials. */
  get where(): string {
    return this.target.where;
  }

  async getMeta(taskId: string): Promise<ResultMeta> {
    const [bytes] = await this.run((c) => c.get(TASK_KEY_PREFIX + taskId).then((v) => [v]), `reading the result of task ${taskId}`);
    return bytes ? decodeStored(bytes, taskId, this.serializer, this.accept, this.limits) : pendingMeta(taskId);
  }

  async forget(taskId: string): Promise<void> {
    await this.run((c) => c.del(TASK_KEY_PREFIX + taskId), `forgetting task ${taskId}`);
  }

  waitFor(taskIds: readonly string[], options: WaitOptions = {}): Promise<Map<string, ResultMeta>> {
    // An empty wait succeeds even on a closed backend: there is nothing it would need the server for.
    if (this.closed && taskIds.length > 0) return Promise.reject(new ResultBackendError("the redis result backend is closed"));
    return this.waiters.wait(taskIds, { timeout: options.timeout, start: (wait) => this.start(wait) });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waiters.rejectAll(new ResultBackendError("the redis result backend was closed while waiting"));
    const [command, subscription] = [this.command, this.subscription];
    this.command = undefined;
    this.subscription = undefined;
    await Promise.all([
      command?.then((c) => shut(c)).catch(() => {}),
      subscription?.then((s) => shut(s.client)).catch(() => {}),
    ]);
  }

  /** Waits until every id's channel is subscribed, then MGETs what was stored before. */
  private async start(wait: Wait): Promise<void> {
    await Promise.all(wait.ids.map((id) => this.channelReady.get(id)));
    if (wait.pending.size === 0) return;
    const keys = [...wait.pending].map((id) => TASK_KEY_PREFIX + id);
    const stored = await this.run((c) => c.mGet(keys), `reading ${keys.length} results`);
    keys.forEach((key, i) => {
      const bytes = stored[i];
      if (bytes) this.deliver(key.slice(TASK_KEY_PREFIX.length), bytes);
    });
  }

  /** One SUBSCRIBE for the channels of ids nobody waited on yet (after any UNSUBSCRIBE of them in flight). */
  private async subscribe(ids: string[]): Promise<void> {
    const sub = await this.subscriber();
    const channels = ids.filter((id) => this.waiters.has(id)).map((id) => TASK_KEY_PREFIX + id);
    if (channels.length === 0) return;
    await Promise.all(channels.map((c) => sub.leaving.get(c)));
    await sub.client.subscribe(channels, this.onMessage, true);
  }

  /**
   * Pub/sub listener shared by every channel (buffer mode: metas may be msgpack or pickle). It runs
   * inside node-redis's reply handling: nothing may escape it, or the subscriber connection goes
   * down with every wait on it.
   */
  private readonly onMessage = (message: Buffer, channel: Buffer): void => {
    try {
      const key = channel.toString("utf8");
      if (key.startsWith(TASK_KEY_PREFIX)) this.deliver(key.slice(TASK_KEY_PREFIX.length), message);
    } catch {
      // deliver() turns every decode failure into its task's rejection; nothing else can fail here.
    }
  };

  /**
   * Decodes a meta for the waits of its task; one that cannot be read rejects those waits and no
   * other. A message can still come in on a channel whose last wait just ended (its UNSUBSCRIBE is
   * in flight): nobody needs it, so it is not even decoded.
   */
  private deliver(taskId: string, bytes: Uint8Array): void {
    if (!this.waiters.has(taskId)) return;
    const refuse = (err: unknown): void =>
      this.waiters.rejectFor(
        taskId,
        err instanceof ResultDecodeError ? err : new ResultDecodeError(`cannot read the result of task ${taskId}: ${String(err)}`, taskId, { cause: err }),
      );
    let meta: ResultMeta | Promise<ResultMeta>;
    try {
      meta = decodeStored(bytes, taskId, this.serializer, this.accept, this.limits);
    } catch (err) {
      refuse(err);
      return;
    }
    if (meta instanceof Promise) meta.then((m) => this.waiters.deliver(taskId, m), refuse);
    else this.waiters.deliver(taskId, meta);
  }

  /** One SUBSCRIBE for the ids nobody waited on yet; each of their waits starts once it took effect. */
  private watch(ids: string[]): void {
    const subscribed = this.subscribe(ids);
    subscribed.catch(() => {}); // each waiter observes it through channelReady
    for (const id of ids) this.channelReady.set(id, subscribed);
  }

  /** Channels nobody waits on any more are unsubscribed, once their SUBSCRIBE is through. */
  private unwatch(ids: string[]): void {
    const before = ids.map((id) => this.channelReady.get(id));
    for (const id of ids) this.channelReady.delete(id);
    const idle = ids.map((id) => TASK_KEY_PREFIX + id);
    const current = this.subscription;
    if (!current) return;
    void current
      .then((sub) => {
        if (sub.lost) return;
        const leaving = Promise.allSettled(before)
          .then(() => (sub.lost ? undefined : sub.client.unsubscribe(idle, this.onMessage, true)))
          .catch(() => {})
          .finally(() => {
            for (const c of idle) if (sub.leaving.get(c) === leaving) sub.leaving.delete(c);
          });
        for (const c of idle) sub.leaving.set(c, leaving);
      })
      .catch(() => {});
  }

  /** The shared subscriber connection; losing it fails every wait in flight. */
  private subscriber(): Promise<Subscription> {
    if (this.subscription) return this.subscription;
    const attempt = (async (): Promise<Subscription> => {
      const client = await this.connect("subscriber");
      const sub: Subscription = { client, leaving: new Map(), lost: false };
      const lose = (err?: Error): void => {
        if (sub.lost) return;
        sub.lost = true;
        if (this.subscription === attempt) this.subscription = undefined;
        client.destroy();
        this.waiters.rejectAll(
          new ResultBackendError(`lost the connection to ${this.where} while waiting for results${err ? `: ${err.message}` : ""}`, {
            cause: err,
          }),
        );
      };
      client.on("error", (err: Error) => lose(err));
      client.on("end", () => lose());
      return sub;
    })();
    this.subscription = attempt;
    attempt.catch(() => {
      if (this.subscription === attempt) this.subscription = undefined;
    });
    return attempt;
  }

  /** Runs a command on the shared command connection; one retry on a fresh connection if it broke. */
  private async run<T>(op: (c: Client) => Promise<T>, what: string): Promise<T> {
    if (this.closed) throw new ResultBackendError("the redis result backend is closed");
    for (let attempt = 0; ; attempt++) {
      let client: Client | undefined;
      try {
        client = await this.commandClient();
        return await op(client);
      } catch (err) {
        const broken = client !== undefined && !client.isReady;
        if (broken && this.command) {
          const stale = this.command;
          this.command = undefined;
          void stale.then((c) => c.destroy()).catch(() => {});
        }
        if (broken && attempt === 0 && !this.closed) continue;
        throw asCeleryError(err, (m, cause) => new ResultBackendError(`${what} on ${this.where}: ${m}`, { cause }));
      }
    }
  }

  private commandClient(): Promise<Client> {
    if (this.command) return this.command;
    const attempt = this.connect("command");
    this.command = attempt;
    attempt
      .then((c) => {
        const drop = (): void => {
          if (this.command === attempt) this.command = undefined;
        };
        c.on("error", drop);
        c.on("end", drop);
      })
      .catch(() => {
        if (this.command === attempt) this.command = undefined;
      });
    return attempt;
  }

  private async connect(role: string): Promise<Client> {
    const redis = await importPeer("redis", "the redis:// result backend", () => import("redis"));
    const client = createBinaryClient(redis, this.target, `${this.clientName}:${role}`, this.connectTimeout);
    let connected = false;
    let firstError: Error | undefined;
    // Never `off()` on this client: it is a withTypeMapping view whose EventEmitter state lives on the
    // base client, and removing the last listener would detach the view from the events for good.
    client.on("error", (err: Error) => {
      if (!connected) firstError ??= err;
    });
    try {
      await client.connect();
    } catch (err) {
      client.destroy();
      const reason = err instanceof Error ? err : firstError;
      throw new ResultBackendError(`cannot connect to ${this.where}: ${reason?.message ?? String(err)}`, { cause: reason ?? err });
    }
    connected = true;
    this.connectionsOpened++;
    if (this.closed) {
      client.destroy();
      throw new ResultBackendError("the redis result backend is closed");
    }
    return client;
  }
}

async function shut(client: Client): Promise<void> {
  try {
    await client.close();
  } catch {
    client.destroy();
  }
}

/** Celery's `redis://` backend from a URL. */
export function redisBackend(url: string, options: Omit<RedisBackendOptions, "url"> = {}): RedisBackend {
  return new RedisBackend({ ...options, url });
}
