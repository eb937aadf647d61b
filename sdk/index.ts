/**
 * @module
 * celery-edge, universal entry: the Celery producer API with no Node built-ins. Runs on Node,
 * Lambda, Cloudflare Workers (workerd) and Vercel Edge. Under Node, the package's "node" export
 * condition loads `node.ts`, whose `Celery` adds amqp:// brokers, redis:// / rpc:// result backends,
 * every serializer and result waiting. Only re-exports: nothing runs on import.
 */
export { Celery, Task } from "./app.js";
export type { CeleryOptions, BatchCall } from "./app.js";
export { AsyncResult } from "./result.js";
export { resultWaiting } from "./waiting.js";
export type { GetOptions, ResultWaiting } from "./result.js";
export type { ApplyOptions, SendOptions, Signature, SerializerName, CompressionName, ProtocolVersion } from "./options.js";
export type { Routes, Route, RouterFn, QueueSpec, QueueType, ExchangeType, RoutingDefaults } from "./routing.js";
// Only Node transports raise warnings today: the classes are exported by the Node entry.
export type { CeleryWarning, TopologyMismatchWarning, WarningCode, WarningHandler } from "./warnings.js";
export type { Transport, PublishOutcome, PublishOptions } from "./transport.js";
export type { BrokerFailoverStrategy } from "./transports/failover.js";
export type { TaskMessage, MessageProperties, HeaderValue, PublishReceipt } from "./protocol/message.js";
export type { ResultBackend, ResultMeta, TaskState } from "./backends/backend.js";
export type { Serializer } from "./serializers/serializer.js";
export { PyTuple } from "./serializers/python-values.js";
export type { TransportFactory, TransportFactories, BackendFactory, BackendFactories, BackendContext } from "./registry.js";
export {
  CeleryError,
  ConfigurationError,
  SerializationError,
  ConnectionError,
  AuthenticationError,
  PublishError,
  TimeoutError,
  UnsupportedRuntimeError,
  SchedulingError,
  PayloadTooLargeError,
  EnvelopeError,
  PolicyError,
  ResultDecodeError,
  ResultBackendError,
  TaskFailedError,
  BatchPublishError,
} from "./errors.js";
export type { ErrorCode } from "./errors.js";
