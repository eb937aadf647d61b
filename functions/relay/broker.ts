/**
 * @module
 * The relay's broker, chosen by the URL's scheme as Celery chooses its transport: RabbitMQ
 * (`amqp://`, `amqps://`, a failover list) or a kombu Redis broker (`redis://`, `rediss://`), where
 * the relay writes the same message kombu's Redis transport would, under the workers' transport
 * options (`global_keyprefix`, `sep`, `priority_steps`, fanout prefix).
 */
import { ConfigurationError } from "../../sdk/errors.js";
import type { Transport } from "../../sdk/transport.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import type { RedisLayout, RedisTransportOptions } from "../../sdk/transports/redis-wire.js";
import type { WarningHandler } from "../../sdk/warnings.js";

/**
 * Set by the construct's bundling (esbuild `define`, from `CeleryRelay`'s `brokerType`): `false`
 * leaves the Redis transport and node-redis (about 530 KB minified) out of a relay for RabbitMQ.
 * Undefined when the code runs unbundled (tests, local runs): Redis is then available.
 */
declare const CELERY_EDGE_RELAY_REDIS: boolean | undefined;

export interface RelayBrokerOptions {
  /** The workers' `broker_transport_options`; only a Redis broker uses them. @default kombu's defaults */
  transportOptions?: RedisTransportOptions;
  /** Told once when options are given for a broker that does not use them. */
  warn?: (message: string) => void;
  /** The broker's own warnings (a fleet queue whose settings differ from the policy's declaration). @default console.warn */
  onWarning?: WarningHandler;
}

const REDIS_SCHEME = /^rediss?:\/\//i;

/** Whether the URL names a Redis broker (the scheme only; the URL itself is checked by the transport). */
export const isRedisBrokerUrl = (url: string): boolean => REDIS_SCHEME.test(url.trim());

export async function relayBroker(url: string, options: RelayBrokerOptions = {}): Promise<Transport> {
  const text = url.trim();
  if (isRedisBrokerUrl(text)) {
    // kombu's Redis transport takes one server; a list would be read as a database named "0;redis:".
    if (/;\s*[a-z][a-z0-9+.-]*:\/\//i.test(text)) throw new ConfigurationError("a redis:// broker URL names one server (failover lists are for amqp://)", { code: "ERR_INVALID_OPTION" });
    // The test is written so that esbuild drops the import when the constant is defined false.
    if (typeof CELERY_EDGE_RELAY_REDIS === "undefined" || CELERY_EDGE_RELAY_REDIS) {
      const { RedisTransport } = await import("../../sdk/transports/redis.js");
      return new RedisTransport({ url: text, transportOptions: options.transportOptions, clientName: "celery-edge:relay" });
    }
    throw new ConfigurationError('the broker URL is redis:// but this relay was bundled for RabbitMQ only: deploy CeleryRelay with brokerType: "redis"');
  }
  if (options.transportOptions !== undefined) options.warn?.("BROKER_TRANSPORT_OPTIONS is set but the broker is not redis://: the options are ignored");
  return new AmqpTransport({ url: text, ...(options.onWarning ? { onWarning: options.onWarning } : {}) });
}

/**
 * The relay's park threshold for this broker. A Redis worker holding a task for its ETA longer than
 * kombu's `visibility_timeout` has it given out again (it runs twice), so on Redis the relay parks
 * every task due later than half of it (a task it publishes at the threshold is held that long at
 * most, leaving the rest for clock skew); RabbitMQ holds a task as long as needed.
 */
export function parkThresholdFor(broker: Transport, configuredSeconds: number): number {
  const layout = broker.kind === "redis" ? (broker as Transport & { layout?: RedisLayout }).layout : undefined;
  if (!layout) return configuredSeconds;
  return Math.min(configuredSeconds, Math.floor(layout.visibilityTimeout / 2));
}
