/**
 * @module
 * The Node-only result backends by URL scheme: `redis://` / `rediss://` (node-redis) and `rpc://`
 * (amqplib, over the app's broker). The Node entry's `Celery` gives them to every app, so edge
 * bundles never load them.
 */
import { ConfigurationError } from "../errors.js";
import type { BackendFactories, BackendFactory } from "../registry.js";
import { defaultResultAccept } from "./accept.js";
import { RedisBackend } from "./redis.js";
import { RpcBackend } from "./rpc.js";

const redis: BackendFactory = (url, context) =>
  new RedisBackend({
    url,
    // Names the connections after the app's oid, so CLIENT LIST tells which producer holds them.
    clientName: `celery-edge:${context.replyTo}`,
    ...(context.resultSerializer !== undefined ? { resultSerializer: context.resultSerializer } : {}),
    resultAccept: context.resultAccept ?? defaultResultAccept(context.resultSerializer),
    serializers: context.serializers,
  });

const rpc: BackendFactory = (_url, context) => {
  if (context.brokerUrl === undefined) {
    throw new ConfigurationError("the rpc:// result backend needs the broker as an amqp:// URL (it receives results over the broker)");
  }
  return new RpcBackend({
    brokerUrl: context.brokerUrl,
    ...(context.brokerFailoverStrategy ? { failoverStrategy: context.brokerFailoverStrategy } : {}),
    replyTo: context.replyTo,
    resultAccept: context.resultAccept ?? defaultResultAccept(context.resultSerializer),
    serializers: context.serializers,
  });
};

export const NODE_BACKENDS: BackendFactories = { redis, rediss: redis, rpc };
