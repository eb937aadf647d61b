/**
 * @module
 * What a broker or result-backend URL resolves to, per app: the app's `transports` and `backends`
 * (scheme → factory). The Node entry's `Celery` gives each app `amqp://`, `redis://` and `rpc://`;
 * the universal `Celery` has none, so an edge bundle never pulls in a Node-only client. Nothing is
 * registered globally, so no bundler can drop a registration.
 */
import { ConfigurationError, UnsupportedRuntimeError } from "./errors.js";
import type { Transport } from "./transport.js";
import type { ResultBackend } from "./backends/backend.js";
import type { Serializers } from "./serializers/registry.js";
import type { RoutingDefaults } from "./routing.js";
import type { WarningHandler } from "./warnings.js";
import { BROKER_URL_SEPARATOR, type BrokerFailoverStrategy } from "./transports/failover.js";

export interface BackendContext {
  /** The app's broker URL, for backends (rpc://) that reuse the broker; several hosts joined by `;`, as Celery writes them. */
  brokerUrl: string | undefined;
  /** The app's `brokerFailoverStrategy`, for backends that reuse the broker. @default "round-robin" */
  brokerFailoverStrategy?: BrokerFailoverStrategy;
  /** The producer's reply queue (Celery's `oid`). */
  replyTo: string;
  /** The workers' `result_serializer` (the app's `resultSerializer`), for backends that store bytes without a content type. */
  resultSerializer?: string;
  /** The app's `resultAccept` (Celery's `result_accept_content`): the formats a result may be read in. */
  resultAccept?: readonly string[];
  /** The app's serializers, which results are read with. */
  serializers: Serializers;
}

/** What a broker URL's transport may need from the app besides the URL. */
export interface TransportContext {
  /** The app's `brokerTransportOptions` (Celery's `broker_transport_options`). */
  transportOptions?: Readonly<Record<string, unknown>>;
  /** The app's routing config: its `queues` tell a Redis broker which exchanges are topic or fanout. */
  routing?: RoutingDefaults;
  /** The app's `brokerFailoverStrategy` (Celery's `broker_failover_strategy`), for a broker of several URLs. */
  failoverStrategy?: BrokerFailoverStrategy;
  /** The app's `onWarning`, for what the transport works around (e.g. a queue that exists with other arguments). */
  onWarning?: WarningHandler;
}

export type TransportFactory = (url: string, context?: TransportContext) => Transport;
export type BackendFactory = (url: string, context: BackendContext) => ResultBackend;
/** Broker URL schemes (`amqp`, without `://`) and the transport each makes. */
export type TransportFactories = Readonly<Record<string, TransportFactory>>;
/** Result-backend URL schemes (`redis`, `rpc`) and the backend each makes. */
export type BackendFactories = Readonly<Record<string, BackendFactory>>;

/** Schemes whose clients need Node (raw TCP); the universal `Celery` has none of them. */
const NODE_ONLY = { broker: ["amqp", "amqps", "pyamqp", "redis", "rediss"], "result backend": ["redis", "rediss", "rpc"] };

function factoryFor<F>(url: string, what: keyof typeof NODE_ONLY, factories: Readonly<Record<string, F>> = {}): F {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  // A string without a scheme is shown only after its last `@` (what precedes may be a password).
  if (!m) throw new ConfigurationError(`${what} must be a URL such as amqp://user:pass@host:5672//, got ${JSON.stringify(url.replace(/^[^]*@/, "***@"))}`);
  const scheme = m[1]!.toLowerCase();
  if (Object.hasOwn(factories, scheme)) return factories[scheme]!;
  if (NODE_ONLY[what].includes(scheme)) {
    throw new UnsupportedRuntimeError(
      `${what} ${scheme}:// needs Node.js (import "celery-edge" under Node); on edge runtimes publish with sqsRelay from "celery-edge/sqs"`,
    );
  }
  throw new ConfigurationError(`unknown ${what} scheme ${scheme}:// (known: ${Object.keys(factories).join(", ") || "none"})`);
}

/**
 * The transport of a broker URL, or of several (`"amqp://h1//;amqp://h2//"` or a list, as Celery
 * takes them): one transport for all, which gets them joined by `;`, splits and checks them, and
 * tries them in turn. Every URL must resolve to the same transport (amqp://, amqps:// and
 * pyamqp:// do); a mix is refused.
 */
export function transportFor(broker: string | readonly string[], factories: TransportFactories | undefined, context?: TransportContext): Transport {
  const url = [broker].flat().join(";");
  const factory = factoryFor(url, "broker", factories);
  for (const other of url.split(BROKER_URL_SEPARATOR).slice(1)) {
    if (factoryFor(other.trim(), "broker", factories) !== factory) throw new ConfigurationError("broker URLs must all be served by one transport (one scheme family)");
  }
  return factory(url, context);
}

export const backendFor = (url: string, context: BackendContext, factories: BackendFactories | undefined): ResultBackend =>
  factoryFor(url, "result backend", factories)(url, context);
