/**
 * @module
 * Where a task goes, resolved in the producer exactly as Celery 5 does it (celery/app/routes.py and
 * the sender in celery/app/amqp.py): task routes fill in what the call and task left unset, the
 * default queue fills in the rest, and a direct queue is published through the default exchange
 * `""` with the queue name as routing key.
 */
import { ConfigurationError } from "./errors.js";
import type { HeaderValue } from "./protocol/message.js";

export type ExchangeType = "direct" | "topic" | "fanout" | "headers";

/** RabbitMQ's queue types Celery workers consume (`x-queue-type`); streams need consumer offsets Celery does not send. */
export type QueueType = "classic" | "quorum";

/**
 * A queue as `task_queues` declares it. These settings are used only where the queue is missing:
 * a queue that exists is published into as it is, whatever its arguments (a mismatch is warned
 * about once, see `onWarning`).
 */
export interface QueueSpec {
  /** Exchange the queue is bound to. @default the queue name */
  exchange?: string;
  /** @default "direct" */
  exchangeType?: ExchangeType;
  /** Binding key. @default the queue name */
  routingKey?: string;
  /** Queue arguments such as `{ "x-max-priority": 10 }` or `{ "x-message-ttl": 60000 }`. @default none */
  queueArguments?: Record<string, HeaderValue>;
  /** kombu's `durable`, for the queue and its exchange: survives a broker restart. A quorum queue must be durable. @default true */
  durable?: boolean;
  /**
   * `"quorum"` declares a replicated quorum queue (`x-queue-type: quorum`, as kombu's
   * `queue_arguments={"x-queue-type": "quorum"}`). RabbitMQ 3.10 quorum queues have no priorities:
   * `x-max-priority` with it (or `durable: false`) is a ConfigurationError when a Node app is made,
   * and a task's `priority` is still sent (as Celery sends it) but does not reorder the queue.
   * @default "classic"
   */
  queueType?: QueueType;
}

export interface Route {
  queue?: string;
  exchange?: string;
  routingKey?: string;
  priority?: number;
}

/** A router function, like Celery's: return a route, a queue name, or null to pass. */
export type RouterFn = (name: string, args: readonly unknown[], kwargs: Readonly<Record<string, unknown>>) => Route | string | null | undefined;

/**
 * `task_routes`: an object whose keys are task names or glob patterns (`"video.*"`), a list of
 * `[pattern | RegExp, route]` pairs, router functions, or a list mixing them. First match wins.
 */
export type Routes = Record<string, Route | string> | ReadonlyArray<RouterFn | Record<string, Route | string> | readonly [string | RegExp, Route | string]>;

export interface RoutingDefaults {
  /** `task_default_queue`. @default "celery" */
  defaultQueue?: string;
  /** `task_default_exchange`. @default the default queue's name */
  defaultExchange?: string;
  /** `task_default_exchange_type`. @default "direct" */
  defaultExchangeType?: ExchangeType;
  /** `task_default_routing_key`. @default the default queue's name */
  defaultRoutingKey?: string;
  /** `task_queues`, by name. */
  queues?: Record<string, QueueSpec>;
  /** `task_create_missing_queues`: an unknown queue name becomes a direct queue of that name. @default true */
  createMissingQueues?: boolean;
}

/** What the broker must have before the message is published (kombu's `declare=[queue]`). */
export interface QueueDeclaration {
  /** Queue to declare and bind; absent when only the exchange is declared (control messages). */
  queue?: string;
  exchange: string;
  exchangeType: ExchangeType;
  routingKey: string;
  /** For the queue and its exchange, as kombu's `durable`. @default true */
  durable?: boolean;
  arguments?: Record<string, HeaderValue>;
}

export interface Destination {
  exchange: string;
  routingKey: string;
  /** Set when routing left priority to kombu's default (0) rather than absent. */
  defaultPriority: 0 | undefined;
  declare: QueueDeclaration | null;
}

/** fnmatch-style glob, as Celery's MapRoute uses for string keys. */
function globToRegExp(glob: string): RegExp {
  let re = "";
  for (const ch of glob) {
    if (ch === "*") re += ".*";
    else if (ch === "?") re += ".";
    else re += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}

const normalise = (r: Route | string): Route => (typeof r === "string" ? { queue: r } : r);

/**
 * A `queues` entry as the queue is declared: durability and arguments, the queue type folded into
 * `x-queue-type`. What RabbitMQ would refuse (a non-durable or prioritised quorum queue) is refused
 * when a Node app is made (`queue-spec.ts`); the edge app's queues are never declared by it (the
 * relay declares what its policy says), so the check stays out of edge bundles.
 */
export function queueSettings(spec: QueueSpec): { durable: boolean; arguments?: Record<string, HeaderValue> } {
  const given = spec.queueArguments;
  const args = spec.queueType === "quorum" && given?.["x-queue-type"] === undefined ? { ...given, "x-queue-type": "quorum" } : given;
  const durable = spec.durable ?? true;
  return args ? { durable, arguments: args } : { durable };
}

/** Resolves where each task goes: `task_routes`, then the queues and defaults. */
export interface Router {
  /**
   * `given` holds what the call and task set (unset = undefined). Returns the publish target and
   * the priority default Celery ends up with.
   */
  resolve(name: string, args: readonly unknown[], kwargs: Readonly<Record<string, unknown>>, given: Route): Destination & { priority?: number };
}

type Rule = (name: string, args: readonly unknown[], kwargs: Readonly<Record<string, unknown>>) => Route | null;

/** The rules of `task_routes`, in order; first match wins. */
function rulesOf(routes: Routes | undefined): Rule[] {
  const rules: Rule[] = [];
  const entries = routes === undefined ? [] : Array.isArray(routes) ? routes : [routes];
  for (const entry of entries) {
    if (typeof entry === "function") {
      const fn = entry as RouterFn;
      rules.push((n, a, k) => {
        const r = fn(n, a, k);
        return r ? normalise(r) : null;
      });
    } else if (Array.isArray(entry)) {
      const [pattern, route] = entry as unknown as readonly [string | RegExp, Route | string];
      const re = typeof pattern === "string" ? globToRegExp(pattern) : pattern;
      rules.push((n) => (re.test(n) ? normalise(route) : null));
    } else {
      // Celery's MapRoute: exact names first, then patterns in order.
      const map = entry as Record<string, Route | string>;
      const patterns = Object.entries(map).map(([k, v]) => [globToRegExp(k), normalise(v)] as const);
      rules.push((n) => {
        const exact = map[n];
        if (exact !== undefined) return normalise(exact);
        for (const [re, r] of patterns) if (re.test(n)) return r;
        return null;
      });
    }
  }
  return rules;
}

type ResolvedQueue = Required<Pick<QueueSpec, "exchange" | "exchangeType" | "routingKey">> & { settings?: ReturnType<typeof queueSettings> };

/**
 * The app's router. Closures rather than a class: its state stays local, so a minifier renames it
 * (class members keep their names in every edge bundle).
 */
export function createRouter(routes: Routes | undefined, defaults: RoutingDefaults = {}): Router {
  const defaultQueue = defaults.defaultQueue ?? "celery";
  const defaultExchange = defaults.defaultExchange ?? defaultQueue;
  const defaultExchangeType = defaults.defaultExchangeType ?? "direct";
  const defaultRoutingKey = defaults.defaultRoutingKey ?? defaultQueue;
  const queues = defaults.queues ?? {};
  const createMissingQueues = defaults.createMissingQueues ?? true;
  /** One frozen declaration per queue, shared by every message to it: a batch then allocates none, and the AMQP transport can tell an already-declared queue by identity. */
  const declarations = new Map<string, QueueDeclaration>();
  /** Each `queues` entry as it would be declared, worked out when the app is made. */
  const settings = new Map<string, ReturnType<typeof queueSettings>>();
  for (const [name, spec] of Object.entries(queues)) settings.set(name, queueSettings(spec));
  const rules = rulesOf(routes);

  const queueSpec = (name: string): ResolvedQueue => {
    const spec = Object.hasOwn(queues, name) ? queues[name] : undefined;
    if (spec === undefined && name === defaultQueue) {
      return { exchange: defaultExchange, exchangeType: defaultExchangeType, routingKey: defaultRoutingKey };
    }
    if (spec === undefined && !createMissingQueues) {
      throw new ConfigurationError(`queue ${JSON.stringify(name)} is not in the app's queues and createMissingQueues is false`, {
        code: "ERR_INVALID_OPTION",
      });
    }
    return {
      exchange: spec?.exchange ?? name,
      exchangeType: spec?.exchangeType ?? "direct",
      routingKey: spec?.routingKey ?? name,
      ...(spec ? { settings: settings.get(name) } : {}),
    };
  };

  const declaration = (qname: string, queue: ResolvedQueue): QueueDeclaration => {
    let d = declarations.get(qname);
    if (d === undefined) {
      d = Object.freeze({
        queue: qname,
        exchange: queue.exchange,
        exchangeType: queue.exchangeType,
        routingKey: queue.routingKey,
        ...(queue.settings && !queue.settings.durable ? { durable: false } : {}),
        ...(queue.settings?.arguments ? { arguments: queue.settings.arguments } : {}),
      });
      declarations.set(qname, d);
    }
    return d;
  };

  return {
    resolve(name, args, kwargs, given) {
      let route: Route | null = null;
      for (const rule of rules) if ((route = rule(name, args, kwargs))) break;
      // lpmerge: the call's set values win; the route fills the gaps.
      const merged: Route = { ...(route ?? {}) };
      for (const k of ["queue", "exchange", "routingKey", "priority"] as const) {
        if (given[k] !== undefined) (merged as Record<string, unknown>)[k] = given[k];
      }
      // Celery keeps a `priority=None` only on the path where neither a route nor the default queue
      // was merged in; on every other path lpmerge drops it and kombu's default 0 goes on the wire.
      const keepsUnsetPriority = given.queue !== undefined && route === null;
      const qname = merged.queue ?? defaultQueue;
      const queue = queueSpec(qname);
      let exchange = merged.exchange;
      let routingKey = merged.routingKey;
      if ((!exchange || !routingKey) && queue.exchangeType === "direct") {
        exchange = "";
        routingKey = qname;
      } else if (exchange === undefined) {
        exchange = queue.exchange || defaultExchange;
        routingKey = routingKey || queue.routingKey || defaultRoutingKey;
      }
      return {
        exchange,
        routingKey: routingKey ?? "",
        priority: merged.priority,
        defaultPriority: keepsUnsetPriority ? undefined : 0,
        declare: declaration(qname, queue),
      };
    },
  };
}
