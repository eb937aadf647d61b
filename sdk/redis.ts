/**
 * @module
 * `celery-edge/redis`: publish to a Celery fleet whose broker is Redis from anywhere `fetch` runs
 * (Cloudflare Workers, Vercel Edge, Deno, Node), through Upstash's REST API. Only re-exports.
 */
export { redisRest, RedisRestTransport } from "./transports/redis-rest.js";
export type { RedisRestOptions } from "./transports/redis-rest.js";
export type { RedisTransportOptions } from "./transports/redis-wire.js";
export { AuthenticationError } from "./errors.js";
