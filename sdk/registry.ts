/**
 * @module
 * Broker and result-backend URLs are resolved through factories that runtime entries register:
 * the Node entry registers `amqp://`, `redis://`, `rpc://`; the universal core registers none, so an
 * edge bundle never pulls in a Node-only client.
 */
import { ConfigurationError, UnsupportedRuntimeError, redact } from "./errors.js";
import type { Transport } from "./transport.js";
import type { ResultBackend } from "./backends/backend.js";

export interface BackendContext {
  /** The app's broker transport factory input, for backends (rpc://) that reuse the broker. */
  brokerUrl: string | undefined;
  /** The producer's reply queue (Celery's `oid`). */
  replyTo: string;
  /** The workers' `result_serializer` (the app's `resultSerializer`), for backends that store bytes without a content type. */
  resultSerializer?: string;
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

function schemeOf(url: string, what: string): string {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (!m) throw new ConfigurationError(`${what} must be a URL such as amqp://user:pass@host:5672//, got ${JSON.stringify(redact(url))}`);
  return m[1]!.toLowerCase();
}

const NODE_ONLY: Record<string, string> = {
  amqp: "the SQS relay transport (sqsRelay from celery-edge/sqs)",
  amqps: "the SQS relay transport (sqsRelay from celery-edge/sqs)",
  redis: "a fetch-capable result backend",
  rediss: "a fetch-capable result backend",
  rpc: "a fetch-capable result backend",
};

export function transportFor(url: string): Transport {
  const scheme = schemeOf(url, "broker");
  const factory = transports.get(scheme);
  if (factory) return factory(url);
  if (scheme in NODE_ONLY) {
    throw new UnsupportedRuntimeError(`broker ${scheme}:// needs Node.js (import "celery-edge" under Node or "celery-edge/amqp"); on edge runtimes use ${NODE_ONLY[scheme]}`);
  }
  throw new ConfigurationError(`unknown broker scheme ${scheme}:// (known: ${[...transports.keys()].join(", ") || "none registered"})`);
}

export function backendFor(url: string, context: BackendContext): ResultBackend {
  const scheme = schemeOf(url, "backend");
  const factory = backends.get(scheme);
  if (factory) return factory(url, context);
  if (scheme in NODE_ONLY) {
    throw new UnsupportedRuntimeError(`result backend ${scheme}:// needs Node.js (import "celery-edge" under Node); on edge runtimes results cannot be awaited over ${scheme}://`);
  }
  throw new ConfigurationError(`unknown result backend scheme ${scheme}:// (known: ${[...backends.keys()].join(", ") || "none registered"})`);
}
