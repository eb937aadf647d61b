/**
 * @module
 * celery-edge for Node.js and Lambda: the universal API plus `amqp://` brokers (amqplib) and the
 * Node result backends. Selected by the package's "node" export condition.
 */
import { registerTransportFactory } from "./registry.js";
import { amqpTransport } from "./transports/amqp.js";
import { registerNodeBackends } from "./backends/node.js";
import { registerAllSerializers } from "./serializers/all.js";
import { enableResults } from "./waiting.js";

registerTransportFactory(["amqp", "amqps", "pyamqp"], (url) => amqpTransport(url));
registerNodeBackends();
registerAllSerializers();
enableResults();

export {
  Celery,
  Task,
  AsyncResult,
  registerSerializer,
  getSerializer,
  PyTuple,
  registerTransportFactory,
  registerBackendFactory,
  CeleryError,
  ConfigurationError,
  SerializationError,
  ConnectionError,
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
  ExchangeType,
  RoutingDefaults,
  Transport,
  PublishOutcome,
  PublishOptions,
  TaskMessage,
  MessageProperties,
  HeaderValue,
  PublishReceipt,
  ResultBackend,
  ResultMeta,
  TaskState,
  Serializer,
  ErrorCode,
} from "./index.js";
export { AmqpTransport, amqpTransport } from "./transports/amqp.js";
export { registerAllSerializers } from "./serializers/all.js";
export { enableResults } from "./waiting.js";
export type { AmqpTransportOptions } from "./transports/amqp.js";
