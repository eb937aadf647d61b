/**
 * @module
 * Broker and result-backend URLs are resolved through factories that runtime entries register:
 * the Node entry registers `amqp://`, `redis://`, `rpc://`; the universal core registers none, so an
 * edge bundle never pulls in a Node-only client.
 */
import { ConfigurationError, UnsupportedRuntimeError } from "./errors.js";
import type { Transport } from "./transport.js";
import type { ResultBackend } from "./backends/backend.js";

export interface BackendContext {
  /** The app's broker transport factory input, for backends (rpc://) that reuse the broker. */
  brokerUrl: string | undefined;
  /** The producer's reply queue (Celery's `oid`). */
  replyTo: string;
  /** The workers' `result_serializer` (the app's `resultSerializer`), for backends that store bytes without a content type. */
  resultSerializer?: string;
  /** The app's `resultAccept` (Celery's `result_accept_content`): the formats a result may be read in. */
  resultAccept?: readonly string[];
}

export type TransportFactory = (url: string) => Transport;
export type BackendFactory = (url: string, context: BackendContext) => ResultBackend;

const transports = new Map<string, TransportFactory>();
const backends = new Map<string, BackendFactory>();

export function registerTransportFactory(schemes: readonly string[], factory: TransportFactory): void {
  for (const s of schemes) transports.set(s, factory);
}

export function registerBackendFactory(schemes: readonly string[], factory: BackendFactory): void {
  for (const s of schemes) backends.set(s, factory);
}

/** The URL's scheme; a string without one is shown only after its last `@` (what precedes may be a password). */
function schemeOf(url: string, what: string): string {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (!m) throw new ConfigurationError(`${what} must be a URL such as amqp://user:pass@host:5672//, got ${JSON.stringify(url.replace(/^[^]*@/, "***@"))}`);
  return m[1]!.toLowerCase();
}

/** Schemes whose clients need Node (raw TCP); the universal entry registers none of them. */
const NODE_ONLY = { broker: new Set(["amqp", "amqps", "pyamqp"]), "result backend": new Set(["redis", "rediss", "rpc"]) };

function unknownScheme(what: keyof typeof NODE_ONLY, scheme: string, known: Map<string, unknown>): Error {
  if (NODE_ONLY[what].has(scheme) && !known.has(scheme)) {
    return new UnsupportedRuntimeError(
      `${what} ${scheme}:// needs Node.js (import "celery-edge" under Node); on edge runtimes publish with sqsRelay from "celery-edge/sqs"`,
    );
  }
  return new ConfigurationError(`unknown ${what} scheme ${scheme}:// (known: ${[...known.keys()].join(", ") || "none registered"})`);
}

export function transportFor(url: string): Transport {
  const scheme = schemeOf(url, "broker");
  const factory = transports.get(scheme);
  if (!factory) throw unknownScheme("broker", scheme, transports);
  return factory(url);
}

export function backendFor(url: string, context: BackendContext): ResultBackend {
  const scheme = schemeOf(url, "backend");
  const factory = backends.get(scheme);
  if (!factory) throw unknownScheme("result backend", scheme, backends);
  return factory(url, context);
}
