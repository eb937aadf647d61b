/**
 * @module
 * celery-edge for Node.js and Lambda: the universal API, with a `Celery` that also resolves
 * `amqp://` brokers (amqplib) and the Node result backends, has every serializer and waits for
 * results (`node-app.ts`). Selected by the package's "node" export condition. Only re-exports.
 */
export { Celery, NODE_TRANSPORTS, NODE_BACKENDS } from "./node-app.js";
export { CeleryWarning, TopologyMismatchWarning, warnOnConsole } from "./warnings.js";
export {
  Task,
  AsyncResult,
  resultWaiting,
  PyTuple,
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
} from "./index.js";
export type {
  CeleryOptions,
  BatchCall,
  GetOptions,
  ApplyOptions,
  SendOptions,
  Signature,
  SerializerName,
  CompressionName,
  ProtocolVersion,
  Routes,
  Route,
  RouterFn,
  QueueSpec,
  QueueType,
  WarningCode,
  WarningHandler,
  ExchangeType,
  RoutingDefaults,
  Transport,
  PublishOutcome,
  PublishOptions,
  BrokerFailoverStrategy,
  TaskMessage,
  MessageProperties,
  HeaderValue,
  PublishReceipt,
  ResultBackend,
  ResultMeta,
  TaskState,
  Serializer,
  ErrorCode,
  TransportFactory,
  TransportFactories,
  BackendFactory,
  BackendFactories,
  BackendContext,
  ResultWaiting,
} from "./index.js";
export { AmqpTransport, amqpTransport } from "./transports/amqp.js";
export { allSerializers, jsonSerializer, yamlSerializer, msgpackSerializer, pickleSerializer } from "./serializers/all.js";
export type { AmqpTransportOptions } from "./transports/amqp.js";
export { RedisTransport, redisTransport } from "./transports/redis.js";
export type { RedisBrokerOptions } from "./transports/redis.js";
export type { RedisTransportOptions } from "./transports/redis-wire.js";
