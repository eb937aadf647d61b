/**
 * @module
 * The relay policy: what a sender to the intake queue may put on the broker. One typed object,
 * written by the construct into one environment variable (`RELAY_POLICY`) and parsed here at cold
 * start, so the construct and the functions agree on its shape and defaults. The intake queue is
 * reachable with keys that edge platforms hold: nothing passes that the policy does not name.
 */
import { ConfigurationError } from "../../sdk/errors.js";
import type { HeaderValue } from "../../sdk/protocol/message.js";
import { checkQueueSpecs } from "../../sdk/queue-spec.js";
import type { ExchangeType, QueueDeclaration } from "../../sdk/routing.js";

/** Content types a policy can allow; pickle has its own, loudly named switch. */
export type PolicyContentType = "application/json" | "application/x-yaml" | "application/x-msgpack";

export const PICKLE_CONTENT_TYPE = "application/x-python-serialize";

/** How the relay makes sure a queue exists before publishing into it. */
export interface QueueDeclare {
  /** @default true */
  readonly durable?: boolean;
  /** Queue arguments, e.g. `{ "x-max-priority": 10 }`; must match the workers'. @default none */
  readonly arguments?: Readonly<Record<string, HeaderValue>>;
}

/** A queue tasks may be sent to through the default exchange (routing key = queue name). */
export interface QueueRule {
  readonly name: string;
  /**
   * `true` or options: declare the queue (and its exchange and binding, both named after it, direct)
   * as Celery does for a queue it knows; `false`: the queue must already exist (an unroutable
   * publish is retried until it does). @default false
   */
  readonly declare?: boolean | QueueDeclare;
}

/** An exchange tasks may be sent to, with the routing keys allowed on it. */
export interface ExchangeRule {
  readonly exchange: string;
  /** AMQP topic patterns: `*` one word, `#` zero or more words. */
  readonly routingKeys: readonly string[];
  /** Declare the exchange (and optionally one queue bound to it) before publishing. @default the exchange must exist */
  readonly declare?: {
    readonly type: ExchangeType;
    /** @default true */
    readonly durable?: boolean;
    readonly queue?: { readonly name: string; readonly bindingKey: string; readonly arguments?: Readonly<Record<string, HeaderValue>> };
  };
}

/** Narrower rules for one sender. Each list set here must also pass the policy's own lists. */
export interface SenderRule {
  /** SQS `SenderId`: an IAM user id (`AIDA…`), or a role id (`AROA…`) matching every session of that role. */
  readonly principal: string;
  readonly queues?: readonly string[];
  readonly exchanges?: ReadonlyArray<{ readonly exchange: string; readonly routingKeys: readonly string[] }>;
  readonly tasks?: readonly string[];
  readonly revokes?: boolean;
}

export interface RelayPolicy {
  /** @default [{ name: "celery", declare: true }] */
  readonly queues?: readonly QueueRule[];
  /** @default [] */
  readonly exchanges?: readonly ExchangeRule[];
  /** Task-name globs (`*` any run of characters, `?` one). @default ["*"] */
  readonly tasks?: readonly string[];
  /** @default ["application/json"] */
  readonly contentTypes?: readonly PolicyContentType[];
  /** Lets pickle bodies through. Any worker that accepts pickle then runs code the sender chose. @default false */
  readonly dangerouslyAllowPickle?: boolean;
  /** Whether Celery's `revoke` broadcast passes (the only control message that ever can). @default true */
  readonly revokes?: boolean;
  /** Principals that may revoke any parked task (others only the tasks they parked). @default [] */
  readonly admins?: readonly string[];
  /** @default [] */
  readonly senders?: readonly SenderRule[];
  /**
   * Publish Celery's `task-sent` event (to `celeryev`, declared as Celery declares it) for a task
   * whose envelope asks for it (`sendSentEvent`), so Flower and `celery events` see relayed tasks
   * sent. The relay makes the event itself from the checked message; no envelope ever reaches
   * `celeryev` directly. Off: the task is still published, without the event. @default false
   */
  readonly sentEvents?: boolean;
}

/** The policy with every default filled in and every pattern compiled. */
export interface ResolvedPolicy {
  readonly queues: ReadonlyMap<string, QueueDeclaration | null>;
  readonly exchanges: ReadonlyArray<{ exchange: string; routingKeys: readonly Matcher[]; declare: QueueDeclaration | null }>;
  readonly tasks: readonly Matcher[];
  readonly contentTypes: ReadonlySet<string>;
  readonly revokes: boolean;
  readonly admins: readonly string[];
  readonly senders: ReadonlyArray<{
    principal: string;
    queues: ReadonlySet<string> | null;
    exchanges: ReadonlyArray<{ exchange: string; routingKeys: readonly Matcher[] }> | null;
    tasks: readonly Matcher[] | null;
    revokes: boolean | null;
  }>;
  readonly sentEvents: boolean;
  /** The policy as written (after defaults), for the cold-start log line. */
  readonly source: RelayPolicy;
}

export const DEFAULT_RELAY_POLICY: RelayPolicy = Object.freeze<RelayPolicy>({
  queues: [{ name: "celery", declare: true }],
  exchanges: [],
  tasks: ["*"],
  contentTypes: ["application/json"],
  dangerouslyAllowPickle: false,
  revokes: true,
  admins: [],
  senders: [],
  sentEvents: false,
});

/**
 * Destinations no policy can open: Celery's control plane (pidbox broadcast and reply exchanges,
 * worker mailboxes), its event stream, RabbitMQ's built-in exchanges, and on Redis the keys kombu
 * and the result backend keep. Only a revoke of exactly
 * Celery's shape reaches `celery.pidbox`, checked elsewhere.
 */
export function controlPlaneReason(exchange: string, routingKey: string): string | null {
  if (exchange.endsWith(".pidbox")) return "Celery's control exchange";
  if (exchange === "celeryev" || exchange.startsWith("celeryev.")) return "Celery's event exchange";
  if (exchange.startsWith("amq.")) return "a RabbitMQ built-in exchange";
  if (exchange === "" && (routingKey.endsWith(".pidbox") || routingKey.startsWith("celeryev.") || routingKey.startsWith("amq."))) {
    return "a Celery control, event or broker-owned queue";
  }
  // On a Redis broker a queue is a key: these are kombu's own (binding sets, the unacked hash, its
  // index and mutex) and the result backend's, which a push would break for the whole fleet.
  if (exchange.startsWith("_kombu.")) return "kombu's Redis binding table";
  if (exchange === "" && (REDIS_OWNED_KEYS.has(routingKey) || REDIS_OWNED_PREFIXES.some((p) => routingKey.startsWith(p)))) {
    return "a key kombu or the result backend keeps on a Redis broker";
  }
  return null;
}

const REDIS_OWNED_KEYS: ReadonlySet<string> = new Set(["unacked", "unacked_index", "unacked_mutex"]);
const REDIS_OWNED_PREFIXES: readonly string[] = ["_kombu.", "celery-task-meta-", "celery-taskset-meta-", "chord-unlock-"];

const NAME = /^[A-Za-z0-9._:\-]{1,255}$/;
const CONTENT_TYPES: readonly string[] = ["application/json", "application/x-yaml", "application/x-msgpack"];
const EXCHANGE_TYPES: readonly string[] = ["direct", "topic", "fanout", "headers"];

function invalid(path: string, value: unknown, why: string): ConfigurationError {
  const shown = JSON.stringify(value) ?? String(value);
  return new ConfigurationError(`relay policy: ${path} ${why}, got ${shown.length > 120 ? `${shown.slice(0, 120)}…` : shown}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function only(o: Record<string, unknown>, path: string, keys: readonly string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw invalid(`${path}.${k}`, o[k], `is not a policy field (known: ${keys.join(", ")})`);
}

function list(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) throw invalid(path, v, "must be an array");
  return v;
}

function name(v: unknown, path: string, allowEmpty = false): string {
  if (typeof v !== "string" || !(NAME.test(v) || (allowEmpty && v === ""))) {
    throw invalid(path, v, "must be an AMQP name (1-255 of A-Z a-z 0-9 . _ : -)");
  }
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== "boolean") throw invalid(path, v, "must be true or false");
  return v;
}

function args(v: unknown, path: string): Record<string, HeaderValue> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw invalid(path, v, "must be an object of queue arguments");
  for (const [k, x] of Object.entries(v)) {
    if (k === "__proto__" || !["string", "number", "boolean"].includes(typeof x)) throw invalid(`${path}.${k}`, x, "must be a string, number or boolean");
  }
  return { ...v } as Record<string, HeaderValue>;
}

/** fnmatch-style glob over task names: `*` any run of characters, `?` one character. */
export function taskGlob(glob: string): Matcher {
  let re = "";
  for (const ch of glob) re += ch === "*" ? ".*" : ch === "?" ? "." : ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${re}$`, "s");
}

/** Something that tells whether a name matches: a compiled glob or topic pattern. */
export interface Matcher {
  test(value: string): boolean;
}

/** AMQP topic pattern: words split on `.`, `*` exactly one word, `#` zero or more words. */
export function topicPattern(pattern: string): Matcher {
  // As RabbitMQ's split_topic_key: the empty string has no words ("a." has two, the second empty).
  const split = (s: string): string[] => (s === "" ? [] : s.split("."));
  const pat = split(pattern);
  return {
    test(key: string): boolean {
      const words = split(key);
      // reachable[j]: the pattern so far can consume exactly the first j words.
      let reachable = new Array<boolean>(words.length + 1).fill(false);
      reachable[0] = true;
      for (const p of pat) {
        const next = new Array<boolean>(words.length + 1).fill(false);
        for (let j = 0; j <= words.length; j++) {
          if (!reachable[j]) continue;
          if (p === "#") for (let k = j; k <= words.length; k++) next[k] = true;
          else if (j < words.length && (p === "*" || p === words[j])) next[j + 1] = true;
        }
        reachable = next;
      }
      return reachable[words.length]!;
    },
  };
}

function globs(v: unknown, path: string, compile: (s: string) => Matcher): Matcher[] {
  return list(v, path).map((g, i) => {
    if (typeof g !== "string" || g.length === 0 || g.length > 255) throw invalid(`${path}[${i}]`, g, "must be a pattern of 1-255 characters");
    return compile(g);
  });
}

function queueDeclaration(rule: Record<string, unknown>, path: string): QueueDeclaration | null {
  const d = rule.declare;
  if (d === undefined || d === false) return null;
  const q = rule.name as string;
  const base: QueueDeclaration = { queue: q, exchange: q, exchangeType: "direct", routingKey: q, durable: true };
  if (d === true) return base;
  if (!isObject(d)) throw invalid(`${path}.declare`, d, "must be true, false or { durable, arguments }");
  only(d, `${path}.declare`, ["durable", "arguments"]);
  const a = args(d.arguments, `${path}.declare.arguments`);
  return checkedByRabbitRules({ ...base, ...(d.durable !== undefined ? { durable: bool(d.durable, `${path}.declare.durable`) } : {}), ...(a ? { arguments: a } : {}) }, `${path}.declare`);
}

/**
 * A declaration RabbitMQ refuses (a non-durable or prioritised quorum queue) is refused only when the
 * queue is missing, at the first publish, and the relay would retry it for hours: say so at synth
 * and cold start instead, by the same rules as the app's `queues`.
 */
function checkedByRabbitRules(d: QueueDeclaration, path: string): QueueDeclaration {
  try {
    checkQueueSpecs({ [d.queue!]: { ...(d.durable !== undefined ? { durable: d.durable } : {}), ...(d.arguments ? { queueArguments: d.arguments } : {}) } });
  } catch (err) {
    throw new ConfigurationError(`relay policy: ${path} is refused by RabbitMQ's rules: ${(err as Error).message}`);
  }
  return d;
}

function exchangeDeclaration(exchange: string, d: unknown, path: string): QueueDeclaration | null {
  if (d === undefined) return null;
  if (!isObject(d)) throw invalid(path, d, "must be { type, durable?, queue? }");
  only(d, path, ["type", "durable", "queue"]);
  if (typeof d.type !== "string" || !EXCHANGE_TYPES.includes(d.type)) throw invalid(`${path}.type`, d.type, "must be direct, topic, fanout or headers");
  const out: QueueDeclaration = { exchange, exchangeType: d.type as ExchangeType, routingKey: "", durable: d.durable === undefined ? true : bool(d.durable, `${path}.durable`) };
  if (d.queue !== undefined) {
    if (!isObject(d.queue)) throw invalid(`${path}.queue`, d.queue, "must be { name, bindingKey, arguments? }");
    only(d.queue, `${path}.queue`, ["name", "bindingKey", "arguments"]);
    out.queue = name(d.queue.name, `${path}.queue.name`);
    refuseControl("", out.queue, `${path}.queue.name`);
    if (typeof d.queue.bindingKey !== "string" || d.queue.bindingKey.length > 255) throw invalid(`${path}.queue.bindingKey`, d.queue.bindingKey, "must be a routing key");
    out.routingKey = d.queue.bindingKey;
    const a = args(d.queue.arguments, `${path}.queue.arguments`);
    if (a) out.arguments = a;
    checkedByRabbitRules(out, `${path}.queue`);
  }
  return out;
}

function principal(v: unknown, path: string): string {
  if (typeof v !== "string" || !/^[A-Za-z0-9:._@=,+\-]{1,256}$/.test(v)) throw invalid(path, v, "must be an SQS SenderId or role id");
  return v;
}

/** Whether an SQS `SenderId` is `principal` (a user id, or any session of a role id). */
export function isPrincipal(senderId: string | undefined, principal: string): boolean {
  return senderId !== undefined && (senderId === principal || senderId.startsWith(`${principal}:`));
}

function refuseControl(exchange: string, routingKey: string, path: string): void {
  const why = controlPlaneReason(exchange, routingKey);
  if (why) throw invalid(path, exchange || routingKey, `names ${why}, which no policy can open`);
}

/** Validates a policy (from the construct or the environment) and fills in its defaults. */
export function resolvePolicy(input: unknown = {}): ResolvedPolicy {
  if (!isObject(input)) throw invalid("(top level)", input, "must be an object");
  only(input, "policy", ["queues", "exchanges", "tasks", "contentTypes", "dangerouslyAllowPickle", "revokes", "admins", "senders", "sentEvents"]);
  // `{ queues: undefined }` means "the default", as an omitted key does.
  const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const p = { ...DEFAULT_RELAY_POLICY, ...given } as Record<string, unknown>;

  const queues = new Map<string, QueueDeclaration | null>();
  list(p.queues, "queues").forEach((r, i) => {
    const path = `queues[${i}]`;
    if (!isObject(r)) throw invalid(path, r, "must be { name, declare? }");
    only(r, path, ["name", "declare"]);
    const q = name(r.name, `${path}.name`);
    refuseControl("", q, `${path}.name`);
    queues.set(q, queueDeclaration(r, path));
  });

  const exchanges = list(p.exchanges, "exchanges").map((r, i) => {
    const path = `exchanges[${i}]`;
    if (!isObject(r)) throw invalid(path, r, "must be { exchange, routingKeys, declare? }");
    only(r, path, ["exchange", "routingKeys", "declare"]);
    const exchange = name(r.exchange, `${path}.exchange`);
    refuseControl(exchange, "", `${path}.exchange`);
    return { exchange, routingKeys: globs(r.routingKeys, `${path}.routingKeys`, topicPattern), declare: exchangeDeclaration(exchange, r.declare, `${path}.declare`) };
  });

  const contentTypes = new Set(
    list(p.contentTypes, "contentTypes").map((c, i) => {
      if (typeof c !== "string" || !CONTENT_TYPES.includes(c)) {
        throw invalid(`contentTypes[${i}]`, c, `must be one of ${CONTENT_TYPES.join(", ")} (pickle: dangerouslyAllowPickle)`);
      }
      return c;
    }),
  );
  if (bool(p.dangerouslyAllowPickle, "dangerouslyAllowPickle")) contentTypes.add(PICKLE_CONTENT_TYPE);

  const senders = list(p.senders, "senders").map((s, i) => {
    const path = `senders[${i}]`;
    if (!isObject(s)) throw invalid(path, s, "must be { principal, queues?, exchanges?, tasks?, revokes? }");
    only(s, path, ["principal", "queues", "exchanges", "tasks", "revokes"]);
    return {
      principal: principal(s.principal, `${path}.principal`),
      queues: s.queues === undefined ? null : new Set(list(s.queues, `${path}.queues`).map((q, j) => name(q, `${path}.queues[${j}]`))),
      exchanges:
        s.exchanges === undefined
          ? null
          : list(s.exchanges, `${path}.exchanges`).map((x, j) => {
              const xp = `${path}.exchanges[${j}]`;
              if (!isObject(x)) throw invalid(xp, x, "must be { exchange, routingKeys }");
              only(x, xp, ["exchange", "routingKeys"]);
              return { exchange: name(x.exchange, `${xp}.exchange`), routingKeys: globs(x.routingKeys, `${xp}.routingKeys`, topicPattern) };
            }),
      tasks: s.tasks === undefined ? null : globs(s.tasks, `${path}.tasks`, taskGlob),
      revokes: s.revokes === undefined ? null : bool(s.revokes, `${path}.revokes`),
    };
  });

  return {
    queues,
    exchanges,
    tasks: globs(p.tasks, "tasks", taskGlob),
    contentTypes,
    revokes: bool(p.revokes, "revokes"),
    admins: list(p.admins, "admins").map((a, i) => principal(a, `admins[${i}]`)),
    senders,
    sentEvents: bool(p.sentEvents, "sentEvents"),
    source: p as RelayPolicy,
  };
}

/** Parses `RELAY_POLICY` (JSON); unset means the default policy. */
export function policyFromEnv(raw: string | undefined): ResolvedPolicy {
  if (raw === undefined || raw === "") return resolvePolicy({});
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigurationError("RELAY_POLICY must be JSON (a relay policy object)");
  }
  return resolvePolicy(parsed);
}

/** What the relay is asked to publish, as the worker will see it. */
export interface PolicyRequest {
  exchange: string;
  routingKey: string;
  task: string;
  contentType: string;
  senderId: string | undefined;
}

/** Why a task may not pass, or null. The declaration to use comes back when it may. */
export function checkTask(policy: ResolvedPolicy, r: PolicyRequest, only?: { anyTask: true }): { refused: string } | { declare: QueueDeclaration | null } {
  const control = controlPlaneReason(r.exchange, r.routingKey);
  if (control) return { refused: `destination is ${control}` };
  if (!policy.contentTypes.has(r.contentType)) {
    return { refused: r.contentType === PICKLE_CONTENT_TYPE ? "pickle bodies are not allowed (policy.dangerouslyAllowPickle)" : "content type is not allowed by the policy" };
  }
  let declare: QueueDeclaration | null;
  if (r.exchange === "") {
    if (!policy.queues.has(r.routingKey)) return { refused: "queue is not in the policy" };
    declare = policy.queues.get(r.routingKey)!;
  } else {
    const rule = policy.exchanges.find((x) => x.exchange === r.exchange && x.routingKeys.some((k) => k.test(r.routingKey)));
    if (!rule) return { refused: "exchange and routing key are not in the policy" };
    declare = rule.declare;
  }
  if (only?.anyTask) return { declare };
  if (!policy.tasks.some((t) => t.test(r.task))) return { refused: "task name is not allowed by the policy" };
  for (const s of policy.senders) {
    if (!isPrincipal(r.senderId, s.principal)) continue;
    if (r.exchange === "" ? s.queues !== null && !s.queues.has(r.routingKey) : s.exchanges !== null && !s.exchanges.some((x) => x.exchange === r.exchange && x.routingKeys.some((k) => k.test(r.routingKey)))) {
      return { refused: "destination is not allowed for this sender" };
    }
    if (s.tasks !== null && !s.tasks.some((t) => t.test(r.task))) return { refused: "task name is not allowed for this sender" };
  }
  return { declare };
}

/** Whether this sender may revoke at all. */
export function mayRevoke(policy: ResolvedPolicy, senderId: string | undefined): boolean {
  if (!policy.revokes) return false;
  return policy.senders.every((s) => !isPrincipal(senderId, s.principal) || s.revokes !== false);
}

export function isAdmin(policy: ResolvedPolicy, senderId: string | undefined): boolean {
  return policy.admins.some((a) => isPrincipal(senderId, a));
}
