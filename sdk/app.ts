/**
 * @module
 * The Celery app: declares tasks, sends them (one, or a batch pipelined) and closes. Messages come
 * from the builder (`message-builder.ts`); URL strings resolve through the app's own `transports`
 * and `backends` (`registry.ts`); results wait through the app's `resultWaiting` (`waiting.ts`);
 * revoke commands are built by `revoke.ts`. Nothing is global: two apps share nothing.
 */
import { BatchPublishError, ConfigurationError, UnsupportedRuntimeError, type CeleryError } from "./errors.js";
import type { ResultBackend } from "./backends/backend.js";
import { buildTaskMessage, type MessageDefaults } from "./message-builder.js";
import type { TaskMessage } from "./protocol/message.js";
import { isFarEta } from "./wire/parking.js";
import {
  checkSendOptions,
  checkTaskName,
  type ApplyOptions,
  type CompressionName,
  type ProtocolVersion,
  type SendOptions,
  type SerializerName,
  type Signature,
} from "./options.js";
import { backendFor, transportFor, type BackendFactories, type TransportFactories } from "./registry.js";
import { revokeMessage, type RevokeOptions } from "./revoke.js";
import { AsyncResult, type GetOptions, type ResultHost, type ResultWaiting } from "./result.js";
import { createRouter, type Routes, type RoutingDefaults } from "./routing.js";
import { PyTuple } from "./serializers/python-values.js";
import { serializerMap } from "./serializers/registry.js";
import type { Serializer } from "./serializers/serializer.js";
import type { PublishOptions, Transport } from "./transport.js";
import type { WarningHandler } from "./warnings.js";
import type { BrokerFailoverStrategy } from "./transports/failover.js";

export interface CeleryOptions extends RoutingDefaults {
  /**
   * Broker URL (a scheme in `transports`: under Node `amqp://`, `amqps://`) or a `Transport` such as
   * `sqsRelay(...)`. Several hosts as Celery writes them, `"amqp://h1//;amqp://h2//"`, or as a list,
   * all of one kind: tried in `brokerFailoverStrategy` order when connecting and reconnecting.
   */
  broker: string | readonly string[] | Transport;
  /**
   * Celery's `broker_failover_strategy`, for a broker of several URLs: after a host fails, try the
   * next in the list (`"round-robin"`) or one at random (`"shuffle"`). The first URL is tried first
   * either way, and a broken connection is replaced by trying its own host first, as kombu does.
   * @default "round-robin"
   */
  brokerFailoverStrategy?: BrokerFailoverStrategy;
  /** Result backend URL (a scheme in `backends`: under Node `redis://`, `rediss://`, `rpc://`) or a `ResultBackend`. @default none */
  backend?: string | ResultBackend;
  /**
   * What a broker URL's scheme resolves to: `{ amqp: (url) => amqpTransport(url) }`.
   * @default none on the universal entry; the Node entry's `Celery` adds amqp, amqps and pyamqp
   */
  transports?: TransportFactories;
  /**
   * What a backend URL's scheme resolves to: `{ redis: (url, context) => new RedisBackend(...) }`.
   * @default none on the universal entry; the Node entry's `Celery` adds redis, rediss and rpc
   */
  backends?: BackendFactories;
  /**
   * Serializers besides json, by name for tasks and by content type for results, e.g.
   * `[msgpackSerializer]` from `celery-edge/serializers`; a custom one replaces a built-in of the same
   * name. @default json only; the Node entry's `Celery` adds yaml, msgpack and pickle
   */
  serializers?: readonly Serializer[];
  /**
   * How `get()`, `state()` and `gather()` wait on the backend: `resultWaiting` from `celery-edge`.
   * @default none on the universal entry (waiting throws `UnsupportedRuntimeError`; sending works); the Node entry's `Celery` sets it
   */
  resultWaiting?: ResultWaiting;
  /** The workers' `result_serializer`: redis:// reads every stored result with it. @default "json" */
  resultSerializer?: SerializerName;
  /**
   * Celery's `result_accept_content`: serializer names or content types a result may be read in;
   * any other is a `ResultDecodeError` naming the task. @default [resultSerializer], i.e. ["json"]
   */
  resultAccept?: readonly SerializerName[];
  /** `task_routes`. @default none */
  routes?: Routes;
  /** `task_serializer`. @default "json" */
  serializer?: SerializerName;
  /** `task_compression`. @default none */
  compression?: CompressionName;
  /** `task_protocol`. @default 2 */
  protocol?: ProtocolVersion;
  /** `task_default_priority`: used when neither call, task nor route sets one. @default unset */
  defaultPriority?: number;
  /** Milliseconds to wait for the broker connection. @default the transport's (AMQP: 10 000) */
  connectTimeout?: number;
  /** Milliseconds to wait for a publish to be confirmed. @default the transport's (AMQP: 30 000) */
  publishTimeout?: number;
  /** The `origin` header. @default `gen<pid>@<host>` as Celery writes it */
  origin?: string;
  /**
   * Far-future ETAs: tasks due later than `thresholdSeconds` go to `transport` (the scheduler
   * function's queue) instead of the broker. @default none (every task goes to the broker)
   */
  parking?: { transport: Transport; thresholdSeconds?: number };
  /**
   * Celery's `broker_transport_options`, for the transport a broker URL resolves to. A `redis://`
   * broker reads kombu's `global_keyprefix`, `sep`, `priority_steps`, `fanout_prefix`,
   * `fanout_patterns`, `socket_timeout` and `socket_connect_timeout` (which must match the
   * workers'), and keeps `visibility_timeout`. @default none
   */
  brokerTransportOptions?: Readonly<Record<string, unknown>>;
  /**
   * Celery's `task_send_sent_event`: publish a `task-sent` event to the `celeryev` exchange after
   * each task, so Flower and `celery events` show it as sent. Over AMQP the transport publishes it
   * once the task is confirmed (a failed event never fails the task); through the SQS relay the
   * envelope asks the relay to, which does so when its policy allows `sentEvents`. App-wide only,
   * as in Celery. @default false
   */
  taskSendSentEvent?: boolean;
  /**
   * Told what a broker URL's transport worked around, e.g. a queue in `queues` that exists on the
   * broker with other arguments (`TopologyMismatchWarning`, once per queue). Must not throw.
   * @default one console.warn line per warning
   */
  onWarning?: WarningHandler;
}

/** One task of a `sendMany` batch. */
export type BatchCall = ApplyOptions & { task: string | Task<any, any> };

const NO_OPTIONS: SendOptions = Object.freeze({});

const isBrokerUrl = (broker: CeleryOptions["broker"]): broker is string | readonly string[] => typeof broker === "string" || Array.isArray(broker);

function defaultOrigin(): string {
  // Read without importing node:process/node:os so the core stays runtime-neutral.
  const proc = (globalThis as { process?: { pid?: number; env?: Record<string, string | undefined> } }).process;
  const host = proc?.env?.HOSTNAME || proc?.env?.AWS_LAMBDA_FUNCTION_NAME || "celery-edge";
  return `gen${proc?.pid ?? 0}@${host}`;
}

export class Celery {
  // `declare`d fields are assigned in the constructor and emit no class-field definition (their
  // names would be in every edge bundle twice); the private ones are `#private`, which a minifier
  // renames.
  declare readonly options: Readonly<CeleryOptions>;
  /** Celery's `oid`: the `reply_to` of every message, and the rpc backend's queue. */
  readonly oid: string = crypto.randomUUID();
  readonly #defaults: MessageDefaults;
  readonly #brokerTransport: Transport;
  #resultBackend: ResultBackend | undefined;
  /** What this app's results wait and revoke through. */
  readonly #host: ResultHost;
  #closed = false;
  /** kombu's per-producer clock header of control commands. */
  #revokeClock = 0;

  constructor(options: CeleryOptions) {
    if (typeof options !== "object" || options === null || options.broker === undefined) {
      throw new ConfigurationError("new Celery({ broker }) needs a broker URL or Transport");
    }
    if (!isBrokerUrl(options.broker) && typeof options.broker?.publish !== "function") {
      throw new ConfigurationError("broker must be a URL string or a Transport (or a list of URL strings)");
    }
    checkSendOptions({
      serializer: options.serializer,
      compression: options.compression,
      protocol: options.protocol,
      priority: options.defaultPriority,
      connectTimeout: options.connectTimeout,
      taskSendSentEvent: options.taskSendSentEvent,
    });
    this.options = options;
    // Built now so a bad URL fails here; the transport connects lazily on the first publish.
    this.#brokerTransport =
      isBrokerUrl(options.broker)
        ? transportFor(options.broker, options.transports, { failoverStrategy: options.brokerFailoverStrategy, transportOptions: options.brokerTransportOptions, routing: options, onWarning: options.onWarning })
        : options.broker;
    this.#defaults = {
      ...options,
      router: createRouter(options.routes, options),
      serializers: serializerMap(options.serializers),
      replyTo: this.oid,
      origin: options.origin ?? defaultOrigin(),
    };
    this.#host = { waiting: () => this.#waiting(), backend: () => this.backend, revoke: (id, o) => this.revoke(id, o) };
  }

  /** Declares a task by name (it runs in the Python worker). */
  task<A extends unknown[] = unknown[], R = unknown, K extends Record<string, unknown> = Record<string, unknown>>(
    name: string,
    options: SendOptions = {},
  ): Task<A, R, K> {
    checkTaskName(name);
    checkSendOptions(options);
    return new Task<A, R, K>(this, name, options, (call) => this.#send(name, options, call));
  }

  /** Celery's `send_task`: sends by name without declaring the task. */
  sendTask<R = unknown>(name: string, options: ApplyOptions = {}): Promise<AsyncResult<R>> {
    return this.#send<R>(name, NO_OPTIONS, options);
  }

  /** Re-attaches to a task sent elsewhere (e.g. by another Lambda). */
  asyncResult<R = unknown>(id: string): AsyncResult<R> {
    return new AsyncResult<R>(id, this.#host);
  }

  /**
   * The exact message `sendTask(name, options)` would publish, without sending it (for the relay
   * envelope, tests and benchmarks). `delay(...)`'s Python tuple is `args: PyTuple.of(...)`.
   */
  async buildMessage(name: string, options: ApplyOptions = {}): Promise<TaskMessage> {
    return this.#build(name, options, NO_OPTIONS);
  }

  /**
   * Sends many tasks, pipelined: confirms are awaited once for the whole batch. Resolves with one
   * result per call in order, or rejects with `BatchPublishError` saying which were not sent.
   */
  async sendMany(calls: readonly BatchCall[]): Promise<AsyncResult[]> {
    // Every message is built (and so every call checked) before the first is published.
    const messages: TaskMessage[] = new Array(calls.length);
    for (let i = 0; i < calls.length; i++) {
      const call = calls[i]!;
      const task: unknown = call.task;
      // A non-string, non-Task `task` reaches checkTaskName and fails there with a clear message.
      const declared = typeof task === "object" && task !== null ? (task as Task) : undefined;
      const built = this.#build(declared ? declared.name : (task as string), call, declared ? declared.options : NO_OPTIONS);
      messages[i] = built instanceof Promise ? await built : built;
    }
    const backend = messages.length > 0 ? this.#backendForSend() : undefined;
    if (backend?.onTaskCall) for (const m of messages) await backend.onTaskCall(m.meta.id);
    const byTransport = new Map<Transport, number[]>();
    messages.forEach((m, i) => {
      const t = this.#transportFor(m);
      const indexes = byTransport.get(t);
      if (indexes) indexes.push(i);
      else byTransport.set(t, [i]);
    });
    const outcomes: Array<{ ok: true; id: string } | { ok: false; id: string; error: CeleryError }> = new Array(messages.length);
    await Promise.all(
      [...byTransport].map(async ([transport, indexes]) => {
        const results = await transport.publishMany(indexes.map((i) => messages[i]!), this.#publishOptions({}));
        results.forEach((r, j) => {
          const i = indexes[j]!;
          const id = messages[i]!.meta.id;
          outcomes[i] = r.ok ? { ok: true, id } : { ok: false, id, error: r.error };
        });
      }),
    );
    if (outcomes.some((o) => !o.ok)) throw new BatchPublishError(outcomes);
    return outcomes.map((o) => new AsyncResult(o.id, this.#host));
  }

  /** The broker transport (built with the app; connections open lazily inside it). */
  get transport(): Transport {
    return this.#brokerTransport;
  }

  /**
   * The result backend (Celery's `app.backend`), made on first use from a URL; throws
   * `ConfigurationError` when none is configured.
   */
  get backend(): ResultBackend {
    if (!this.#resultBackend) {
      const b = this.options.backend;
      if (b === undefined) throw new ConfigurationError("no result backend configured: pass `backend` (e.g. redis://host:6379/0) to new Celery()");
      this.#resultBackend =
        typeof b === "string"
          ? backendFor(
              b,
              {
                // The backend splits and checks them, as the transport did.
                brokerUrl: isBrokerUrl(this.options.broker) ? [this.options.broker].flat().join(";") : undefined,
                brokerFailoverStrategy: this.options.brokerFailoverStrategy,
                replyTo: this.oid,
                resultSerializer: this.options.resultSerializer,
                resultAccept: this.options.resultAccept,
                serializers: this.#defaults.serializers,
              },
              this.options.backends,
            )
          : b;
    }
    return this.#resultBackend;
  }

  /**
   * Waits for many results at once through one backend wait (one subscription, not one poller per
   * result) and returns their values in order. With `propagate` (default) the first failed task, in
   * order, rejects with its `TaskFailedError`; `timeout` bounds the whole wait.
   */
  async gather<T extends readonly AsyncResult<any>[]>(
    results: T,
    options: GetOptions = {},
  ): Promise<{ -readonly [K in keyof T]: T[K] extends AsyncResult<infer R> ? R : never }> {
    const values = await this.#waiting().gather(this.backend, results, options);
    return values as { -readonly [K in keyof T]: T[K] extends AsyncResult<infer R> ? R : never };
  }

  /** Revokes a task (parked: schedule deleted; queued: Celery's broadcast revoke). */
  async revoke(taskId: string, options: RevokeOptions = {}): Promise<void> {
    const message = revokeMessage(taskId, options, ++this.#revokeClock);
    const parking = this.options.parking?.transport;
    // The scheduler function deletes a parked schedule; the broker copy reaches running workers.
    await Promise.all([parking?.publish(message), this.#brokerTransport === parking ? undefined : this.#brokerTransport.publish(message)]);
  }

  /** Closes the broker connection and the result backend. The app cannot send afterwards. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([this.#brokerTransport.close(), this.options.parking?.transport.close(), this.#resultBackend?.close()]);
  }

  /** Sends one call of task `name` (`task` holds its declared options). */
  async #send<R>(name: string, task: SendOptions, call: ApplyOptions): Promise<AsyncResult<R>> {
    const message = await this.#build(name, call, task);
    const ignoreResult = call.ignoreResult ?? task.ignoreResult ?? false;
    // As Celery's send_task: the backend may prepare (rpc:// declares its reply queue) unless ignore_result.
    if (!ignoreResult) await this.#backendForSend()?.onTaskCall?.(message.meta.id);
    await this.#transportFor(message).publish(message, this.#publishOptions(call));
    return new AsyncResult<R>(message.meta.id, this.#host, { ignoreResult });
  }

  #build(name: string, call: ApplyOptions, task: SendOptions): TaskMessage | Promise<TaskMessage> {
    if (this.#closed) throw new ConfigurationError("this app was closed");
    return buildTaskMessage(name, call, task, this.#defaults);
  }

  #transportFor(message: TaskMessage): Transport {
    const parking = this.options.parking;
    if (parking && message.meta.eta !== null && isFarEta(message.meta, parking.thresholdSeconds)) return parking.transport;
    return this.#brokerTransport;
  }

  #publishOptions(o: { connectTimeout?: number }): PublishOptions {
    // Unset values stay unset so a transport's own defaults apply.
    const options: PublishOptions = {};
    const connectTimeout = o.connectTimeout ?? this.options.connectTimeout;
    if (connectTimeout !== undefined) options.connectTimeout = connectTimeout;
    if (this.options.publishTimeout !== undefined) options.publishTimeout = this.options.publishTimeout;
    return options;
  }

  /**
   * The backend to prepare before a send, if one is configured and this runtime has it: an edge
   * bundle configured with redis:// still sends; only waiting throws UnsupportedRuntimeError.
   */
  #backendForSend(): ResultBackend | undefined {
    if (this.options.backend === undefined) return undefined;
    try {
      return this.backend;
    } catch (err) {
      if (err instanceof UnsupportedRuntimeError) return undefined;
      throw err;
    }
  }

  #waiting(): ResultWaiting {
    const waiting = this.options.resultWaiting;
    if (!waiting) {
      throw new UnsupportedRuntimeError(
        'waiting for results is not enabled here: import "celery-edge" under Node, or pass resultWaiting and a fetch-based backend',
      );
    }
    return waiting;
  }
}

type Send = (call: ApplyOptions) => Promise<AsyncResult<any>>;

/** A task declared with `app.task(name)`: typed arguments and result. */
export class Task<A extends unknown[] = unknown[], R = unknown, K extends Record<string, unknown> = Record<string, unknown>> {
  // `declare`d and assigned below: parameter properties would add class-field definitions.
  declare readonly app: Celery;
  declare readonly name: string;
  declare readonly options: SendOptions;
  declare private readonly send: Send;

  /** Made by `app.task(name, options)`, with the app's way to send it. */
  constructor(app: Celery, name: string, options: SendOptions, send: Send) {
    this.app = app;
    this.name = name;
    this.options = options;
    this.send = send;
  }

  /** `task.delay(*args)`: positional arguments, sent as a Python tuple. */
  delay(...args: A): Promise<AsyncResult<R>> {
    return this.send({ args: PyTuple.fromArray(args) });
  }

  /** `task.apply_async(args, kwargs, **options)`. */
  applyAsync(options: ApplyOptions<A, K> = {}): Promise<AsyncResult<R>> {
    return this.send(options as ApplyOptions);
  }

  /** A signature for `link`/`linkError` (Celery's `task.s(...)`). */
  s(...args: unknown[]): Signature {
    return { task: this.name, args };
  }

  /** An immutable signature (Celery's `task.si(...)`). */
  si(...args: unknown[]): Signature {
    return { task: this.name, args, immutable: true };
  }
}
