/**
 * @module
 * The Node.js app: the universal `Celery` composed with what only Node can run. Every app made
 * here resolves `amqp://` and `redis://` brokers and `redis://` / `rpc://` backends, has kombu's four serializers
 * and waits for results. It is passed in, not registered on import, so no bundler can drop it.
 */
import { Celery as UniversalCelery, type CeleryOptions } from "./app.js";
import { NODE_BACKENDS } from "./backends/node.js";
import type { TransportFactories, TransportFactory } from "./registry.js";
import { checkQueueSpecs } from "./queue-spec.js";
import { allSerializers } from "./serializers/all.js";
import { amqpTransport } from "./transports/amqp.js";
import { exchangeTypesOf, redisTransport } from "./transports/redis.js";
import type { RedisTransportOptions } from "./transports/redis-wire.js";
import { resultWaiting } from "./waiting.js";

const amqp: TransportFactory = (url, context) =>
  amqpTransport(url, { onWarning: context?.onWarning, ...(context?.failoverStrategy ? { failoverStrategy: context.failoverStrategy } : {}) });
const redis: TransportFactory = (url, context) =>
  redisTransport(url, { transportOptions: context?.transportOptions as RedisTransportOptions | undefined, exchangeTypes: exchangeTypesOf(context?.routing) });

/** Broker schemes the Node entry resolves. */
export const NODE_TRANSPORTS: TransportFactories = { amqp, amqps: amqp, pyamqp: amqp, redis, rediss: redis };

export { NODE_BACKENDS };

/**
 * `Celery` under Node: `amqp://`, `amqps://` and `pyamqp://` brokers, `redis://`, `rediss://` and
 * `rpc://` backends, json/yaml/msgpack/pickle and `resultWaiting`, then whatever `options` add or
 * replace (a `transports`, `backends` or `serializers` entry of the same name wins). Its `queues`
 * are checked as RabbitMQ would judge them (`queue-spec.ts`).
 */
export class Celery extends UniversalCelery {
  constructor(options: CeleryOptions) {
    // Before the router reads them; RabbitMQ would refuse these only at the first publish.
    checkQueueSpecs(options?.queues);
    super(
      options === null || typeof options !== "object"
        ? options
        : {
            ...options,
            transports: { ...NODE_TRANSPORTS, ...options.transports },
            backends: { ...NODE_BACKENDS, ...options.backends },
            serializers: [...allSerializers, ...(options.serializers ?? [])],
            resultWaiting: options.resultWaiting ?? resultWaiting,
          },
    );
  }
}
