/**
 * @module
 * Registers the Node-only result backends: `redis://` / `rediss://` (node-redis) and `rpc://`
 * (amqplib, over the app's broker). Imported by the Node entry only, so edge bundles never load them.
 */
import { ConfigurationError } from "../errors.js";
import { registerBackendFactory } from "../registry.js";
import { defaultResultAccept } from "./accept.js";
import { RedisBackend } from "./redis.js";
import { RpcBackend } from "./rpc.js";

export function registerNodeBackends(): void {
  registerBackendFactory(["redis", "rediss"], (url, context) =>
    new RedisBackend({
      url,
      // Names the connections after the app's oid, so CLIENT LIST tells which producer holds them.
      clientName: `celery-edge:${context.replyTo}`,
      ...(context.resultSerializer !== undefined ? { resultSerializer: context.resultSerializer } : {}),
      resultAccept: context.resultAccept ?? defaultResultAccept(context.resultSerializer),
    }),
  );
  registerBackendFactory(["rpc"], (_url, context) => {
    if (context.brokerUrl === undefined) {
      throw new ConfigurationError("the rpc:// result backend needs the broker as an amqp:// URL (it receives results over the broker)");
    }
    return new RpcBackend({
      brokerUrl: context.brokerUrl,
      replyTo: context.replyTo,
      resultAccept: context.resultAccept ?? defaultResultAccept(context.resultSerializer),
    });
  });
}
