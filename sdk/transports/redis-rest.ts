/**
 * @module
 * kombu's Redis broker over HTTPS, with Upstash's REST protocol (universal: `fetch` only, so it
 * runs on Workers, Vercel Edge and Node alike). A command is a JSON array; a batch is one POST of
 * an array of them to `/pipeline`, answered by one `{result}` or `{error}` per command, in order.
 * What is written, and where, is the Node transport's: `redis-wire.ts` builds kombu's message and
 * keys, `redis-route.ts` routes, and a named exchange is pushed to by the same compare-and-push
 * script, so a binding table that changed since it was read is re-read, never guessed.
 *
 * The answer is hostile until checked: it is read up to a byte limit, within the call's time,
 * and each reply must be the shape its command gives; the token goes in a header only, and no
 * text the server sends reaches an error with the token in it.
 */
import { toHex } from "../base64.js";
import { AuthenticationError, ConfigurationError, ConnectionError, PublishError, TimeoutError, type CeleryError } from "../errors.js";
import type { PublishReceipt, TaskMessage } from "../protocol/message.js";
import type { ExchangeType } from "../routing.js";
import type { PublishOptions, PublishOutcome, Transport } from "../transport.js";
import { ROUTE_SCRIPT, declaredTypeOf, exchangeTypeOf, lookupQueues, parseTable } from "./redis-route.js";
import { bindingKey, bindingMember, declaredBinding, fanoutChannel, kombuMessage, messagePriority, queueKey, redisLayout, type RedisLayout, type RedisTransportOptions } from "./redis-wire.js";

export interface RedisRestOptions {
  /** The database's REST URL (`UPSTASH_REDIS_REST_URL`), e.g. `https://eu1-x.upstash.io`; `http://` to loopback only. */
  url: string;
  /** The REST token (`UPSTASH_REDIS_REST_TOKEN`): sent as `Authorization: Bearer`, never shown in an error. */
  token: string;
  /** The workers' `broker_transport_options` (kombu's names: `global_keyprefix`, `sep`, `priority_steps`, …). @default kombu's defaults */
  transportOptions?: RedisTransportOptions;
  /** Exchange types the producer knows, e.g. `{ tasks: "topic" }`; others are read off the workers' bindings. @default none */
  exchangeTypes?: Readonly<Record<string, ExchangeType>>;
  /** The database number in the workers' broker URL; only fanout channel names carry it. @default 0 (Upstash has one) */
  db?: number;
  /** Milliseconds a publish call may take, every round trip included, when the call gives no `timeout`. @default 10 000 */
  timeout?: number;
  /** Bytes of an answer read at most: a longer one fails the call. @default 1 048 576 */
  maxResponseBytes?: number;
  /** `fetch` to use. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** One command's answer as the REST API gives it. */
type Reply = { result: unknown } | { error: string };
type Command = string[];

/** Script calls per call at most for one exchange: a binding table that changes this often is refused. */
const ROUTE_ATTEMPTS = 3;
/** Messages per script call: bounds how long one script holds Redis. */
const SCRIPT_CHUNK = 1000;
const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

let routeSha: Promise<string> | undefined;
/** The script's SHA-1 (for EVALSHA), on WebCrypto. */
function scriptSha(): Promise<string> {
  return (routeSha ??= crypto.subtle
    .digest("SHA-1", new TextEncoder().encode(ROUTE_SCRIPT))
    .then(toHex));
}

/** Whether `x` is one reply of the REST API: an object with a string `error` or with a `result`. */
function asReply(x: unknown): Reply | null {
  if (typeof x !== "object" || x === null || Array.isArray(x)) return null;
  const o = x as Record<string, unknown>;
  if (typeof o.error === "string") return { error: o.error };
  return Object.prototype.hasOwnProperty.call(o, "result") ? { result: o.result } : null;
}

/**
 * The body as text, at most `limit` bytes, given up when `aborted` rejects: a front that sends
 * without end or trickles forever fails the call on time instead of holding it.
 */
async function readBounded(response: Response, limit: number, aborted: Promise<never>): Promise<string | null> {
  const reader = response.body?.getReader();
  if (!reader) return "";
  const decoder = new TextDecoder();
  let text = "";
  let size = 0;
  try {
    for (;;) {
      const chunk = await Promise.race([reader.read(), aborted]);
      if (chunk.done) return text + decoder.decode();
      size += chunk.value.byteLength;
      if (size > limit) return null;
      text += decoder.decode(chunk.value, { stream: true });
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** Messages to one named exchange, routed and pushed by one script call. */
interface Route {
  exchange: string;
  known: ExchangeType | undefined;
  indexes: number[];
  /** Script calls made so far with a table that turned out stale. */
  attempt: number;
  /** EVAL instead of EVALSHA: the server said it does not have the script. */
  full: boolean;
}

export class RedisRestTransport implements Transport {
  readonly kind = "redis-rest";
  // `declare`d: assigned in the constructor, no class-field definitions in every edge bundle. The
  // rest is `#private`, which a minifier renames.
  declare readonly layout: RedisLayout;
  /** The REST URL's origin, for errors: never a path, query or credentials. */
  declare readonly where: string;
  readonly #endpoint: string;
  readonly #token: string;
  readonly #types: ReadonlyMap<string, ExchangeType>;
  readonly #timeout: number;
  readonly #maxResponseBytes: number;
  readonly #fetch: typeof fetch;
  /** Binding members last read per exchange: routing uses them, the script checks they still hold. */
  readonly #tables = new Map<string, string[]>();
  /** Bindings this transport has recorded (`<set key>\0<member>`). */
  readonly #declared = new Set<string>();
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;

  constructor(options: RedisRestOptions) {
    const bad = (what: string): never => {
      throw new ConfigurationError(`redisRest: ${what}`, { code: "ERR_INVALID_OPTION" });
    };
    let url: URL | undefined;
    try {
      url = new URL(options.url);
    } catch {
      bad("url must be the database's REST URL, e.g. https://eu1-x.upstash.io");
    }
    // Only the origin and path are used; anything else would end up in errors, or leak the token.
    if (url!.username || url!.password || url!.search || url!.hash) bad("url must be the REST URL alone, without credentials, query or fragment; pass the token as `token`");
    if (url!.protocol !== "https:" && !(url!.protocol === "http:" && LOOPBACK.test(url!.hostname))) bad(`url must be https:// (http:// only to loopback), got ${url!.protocol}//`);
    const token = options.token;
    // Printable ASCII only: a header value fetch refuses would be quoted back, token and all.
    if (typeof token !== "string" || !/^[\x21-\x7e]+$/.test(token)) bad(`token must be the REST token (printable ASCII, no spaces), got ${typeof token === "string" ? `${token.length} characters` : typeof token}`);
    const db = options.db ?? 0;
    if (!Number.isSafeInteger(db) || db < 0) bad(`db must be a database number, got ${JSON.stringify(db)}`);
    const positive = (v: number | undefined, name: string, d: number): number => (v === undefined ? d : Number.isFinite(v) && v > 0 ? v : bad(`${name} must be a number above 0, got ${JSON.stringify(v)}`));
    this.#timeout = positive(options.timeout, "timeout", 10_000);
    this.#maxResponseBytes = positive(options.maxResponseBytes, "maxResponseBytes", 1 << 20);
    this.layout = redisLayout(options.transportOptions, db);
    this.where = url!.origin;
    this.#endpoint = url!.origin + url!.pathname.replace(/\/+$/, "");
    this.#token = token;
    this.#types = new Map(Object.entries(options.exchangeTypes ?? {}));
    this.#fetch = options.fetch ?? ((...a) => globalThis.fetch(...a));
  }

  async publish(message: TaskMessage, options?: PublishOptions): Promise<PublishReceipt> {
    const [outcome] = await this.publishMany([message], options);
    if (!outcome!.ok) throw outcome!.error;
    return outcome!.receipt;
  }

  async publishMany(messages: readonly TaskMessage[], options: PublishOptions = {}): Promise<PublishOutcome[]> {
    if (this.#closed) return messages.map(() => ({ ok: false, error: new ConnectionError("transport is closed") }));
    const work = this.#send(messages, options.timeout ?? this.#timeout);
    this.#inflight.add(work);
    try {
      return await work;
    } finally {
      this.#inflight.delete(work);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
  }

  /** Text from the server, fit for an error: the token masked, controls dropped, clipped. */
  #clean(text: string): string {
    return text.split(this.#token).join("***").replace(/[\0-\x1f\x7f]+/g, " ").slice(0, 200);
  }

  /**
   * One call: a first `/pipeline` with every command, then, only for exchanges whose bindings
   * were unknown or changed, further ones with their script calls alone; one deadline for all.
   */
  async #send(messages: readonly TaskMessage[], ms: number): Promise<PublishOutcome[]> {
    const signal = AbortSignal.timeout(ms);
    const { layout, where } = this;
    const tables = this.#tables;
    const declared = this.#declared;
    const outcomes: Array<PublishOutcome | undefined> = new Array(messages.length);
    const payloads = messages.map((m) => kombuMessage(m, crypto.randomUUID()));
    const commands: Command[] = [];
    const handlers: Array<(r: Reply) => void> = [];
    /** Binding ids added by this round's SADDs: forgotten again if the request fails. */
    const declaring: string[] = [];
    const fail = (i: number, error: CeleryError): void => void (outcomes[i] ??= { ok: false, error });
    const ok = (i: number): void => void (outcomes[i] ??= { ok: true, receipt: { id: messages[i]!.meta.id } });
    const id = (i: number): string => messages[i]!.meta.id;
    const refused = (i: number, error: string): void => fail(i, new PublishError("ERR_PUBLISH", `${where} refused task ${id(i)}: ${this.#clean(error)}`));
    // A reply that is not what its command answers: the front is not Redis, and what it did is unknown.
    const odd = (i: number): void => fail(i, new ConnectionError(`${where} answered task ${id(i)}'s command with something Redis does not; it may or may not have been sent`));
    const learn = (exchange: string, members: string[]): void => {
      if (tables.size > 1000 && !tables.has(exchange)) tables.clear();
      tables.set(exchange, members);
    };

    // Declarations first: the pipeline runs in order, so every push below sees them.
    for (const m of messages) {
      const d = m.declare;
      if (!d || d.queue === undefined || d.exchange === "") continue;
      const key = bindingKey(layout, d.exchange);
      const member = bindingMember(layout, declaredBinding(d.exchangeType, d.routingKey, d.queue));
      const bid = `${key}\0${member}`;
      if (declared.has(bid)) continue;
      // Marked now so concurrent calls do not repeat it; forgotten if it may not have happened.
      if (declared.size < 10_000) declared.add(bid);
      declaring.push(bid);
      const table = tables.get(d.exchange);
      if (table && !table.includes(member)) learn(d.exchange, [...table, member]);
      commands.push(["SADD", key, member]);
      handlers.push((r) => "error" in r && declared.delete(bid));
    }

    const groups = new Map<string, Route>();
    messages.forEach((m, i) => {
      if (m.exchange === "") {
        if (m.routingKey === "") return fail(i, new PublishError("ERR_UNROUTABLE", `task ${id(i)} has neither an exchange nor a routing key (queue)`));
        commands.push(["LPUSH", queueKey(layout, m.routingKey, messagePriority(m)), payloads[i]!]);
        handlers.push((r) => ("error" in r ? refused(i, r.error) : typeof r.result === "number" ? ok(i) : odd(i)));
        return;
      }
      const known = declaredTypeOf(m, this.#types);
      if (known === "fanout") {
        commands.push(["PUBLISH", fanoutChannel(layout, m.exchange, m.routingKey), payloads[i]!]);
        handlers.push((r) =>
          "error" in r
            ? refused(i, r.error)
            : typeof r.result !== "number"
              ? odd(i)
              : m.mandatory && r.result === 0
                ? fail(i, new PublishError("ERR_UNROUTABLE", `task ${id(i)} is unroutable: no worker listens on fanout exchange "${m.exchange}"`))
                : ok(i),
        );
        return;
      }
      let group = groups.get(m.exchange);
      if (!group) groups.set(m.exchange, (group = { exchange: m.exchange, known, indexes: [], attempt: 0, full: false }));
      group.indexes.push(i);
    });
    let routes: Route[] = [];
    for (const g of groups.values()) {
      for (let at = 0; at < g.indexes.length; at += SCRIPT_CHUNK) routes.push({ ...g, indexes: g.indexes.slice(at, at + SCRIPT_CHUNK) });
    }
    const sha = routes.length ? await scriptSha() : "";

    for (;;) {
      const again: Route[] = [];
      for (const route of routes) {
        // A script call routing the messages against the table last read; back in `again` when the table changed.
        const { exchange, indexes } = route;
        if (route.attempt >= ROUTE_ATTEMPTS) {
          for (const i of indexes) fail(i, new PublishError("ERR_PUBLISH", `the bindings of exchange "${exchange}" on ${where} kept changing; task ${id(i)} was not sent`));
          continue;
        }
        const members = tables.get(exchange);
        const pushed: number[] = [];
        const unroutable: number[] = [];
        const args = [route.full ? ROUTE_SCRIPT : sha, "1", bindingKey(layout, exchange), ...(members ? [String(members.length), ...members] : ["-1"])];
        if (members) {
          const table = parseTable(layout, members);
          const type = exchangeTypeOf(route.known, table);
          for (const i of indexes) {
            const m = messages[i]!;
            const queues = lookupQueues(type, table, m.routingKey);
            (queues.length ? pushed : unroutable).push(i);
            for (const q of queues) args.push(queueKey(layout, q, messagePriority(m)), payloads[i]!);
          }
        }
        commands.push([route.full ? "EVAL" : "EVALSHA", ...args]);
        handlers.push((r) => {
          if ("error" in r) {
            if (!route.full && r.error.startsWith("NOSCRIPT")) again.push({ ...route, full: true });
            else for (const i of indexes) refused(i, r.error);
          } else if (r.result === 1) {
            for (const i of pushed) ok(i);
            for (const i of unroutable) {
              fail(i, new PublishError("ERR_UNROUTABLE", `task ${id(i)} is unroutable: no queue bound to exchange "${exchange}" with routing key "${messages[i]!.routingKey}" on ${where}`));
            }
          } else if (Array.isArray(r.result) && r.result.every((x) => typeof x === "string")) {
            learn(exchange, r.result);
            again.push({ ...route, attempt: route.attempt + 1 });
          } else for (const i of indexes) odd(i);
        });
      }
      if (commands.length === 0) break;
      let replies: Reply[];
      try {
        replies = await this.#pipeline(commands, signal, ms);
      } catch (err) {
        for (const bid of declaring) declared.delete(bid);
        messages.forEach((_, i) => fail(i, err as CeleryError));
        break;
      }
      replies.forEach((r, k) => handlers[k]!(r));
      commands.length = handlers.length = declaring.length = 0;
      routes = again;
    }
    return outcomes.map((o, i) => o ?? { ok: false, error: new PublishError("ERR_PUBLISH", `task ${id(i)} was not sent`) });
  }

  /** One POST to `/pipeline`: one reply per command, or a typed error for the whole request. */
  async #pipeline(commands: Command[], signal: AbortSignal, ms: number): Promise<Reply[]> {
    const at = `${this.where}/pipeline`;
    let response: Response;
    let text: string | null;
    // Raced, not only passed as `signal`: a `fetch` that ignores its signal must not hold the call either.
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => (onAbort = () => reject(signal.reason)));
    aborted.catch(() => {});
    signal.addEventListener("abort", onAbort);
    if (signal.aborted) onAbort();
    try {
      const request = this.#fetch(`${this.#endpoint}/pipeline`, {
        method: "POST",
        headers: { authorization: `Bearer ${this.#token}`, "content-type": "application/json" },
        body: JSON.stringify(commands),
        signal,
        // A redirect would take the token along to wherever it points.
        redirect: "manual",
      });
      request.catch(() => {});
      response = await Promise.race([request, aborted]);
      text = await readBounded(response, this.#maxResponseBytes, aborted);
    } catch (err) {
      if (signal.aborted) throw new TimeoutError(`no answer from ${at} within ${ms} ms; the tasks may or may not have been sent`);
      throw new ConnectionError(`cannot reach ${at}: ${this.#clean(err instanceof Error ? err.message : String(err))}; the tasks may or may not have been sent`);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    const status = response.status;
    if (text === null) throw new ConnectionError(`${at} answered more than ${this.#maxResponseBytes} bytes (HTTP ${status}); the tasks may or may not have been sent`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const said = asReply(body);
    const error = said && "error" in said ? `: ${this.#clean(said.error)}` : "";
    if (status === 401 || status === 403) throw new AuthenticationError(`${at} refused the REST token (HTTP ${status}${error}); the tasks were not sent`);
    // 0: an opaque redirect, where the runtime hides the status.
    if (status < 200 || (status >= 300 && status < 400)) throw new ConnectionError(`${at} redirected (HTTP ${status}), which is not followed; the tasks were not sent`);
    if (status >= 500) throw new ConnectionError(`${at} failed (HTTP ${status}${error}); the tasks may or may not have been sent`);
    if (status >= 400 || error) throw new PublishError("ERR_PUBLISH", `${at} refused the request (HTTP ${status}${error}); the tasks were not sent`);
    const replies = Array.isArray(body) && body.length === commands.length ? body.map(asReply) : [];
    if (replies.length !== commands.length || replies.some((r) => r === null)) {
      throw new ConnectionError(`${at} answered something other than ${commands.length} pipeline replies (HTTP ${status}); the tasks may or may not have been sent`);
    }
    return replies as Reply[];
  }
}

/** `new Celery({ broker: redisRest({ url, token }) })`: kombu's Redis broker over Upstash's REST API. */
export function redisRest(options: RedisRestOptions): RedisRestTransport {
  return new RedisRestTransport(options);
}
