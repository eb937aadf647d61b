/**
 * @module
 * The Celery app and its tasks: Celery's producer API (`delay`, `apply_async`, `send_task`) in
 * TypeScript. Resolution order, as in Celery: call options > task options > routes > app defaults >
 * Celery's defaults.
 */
import { BatchPublishError, ConfigurationError, UnsupportedRuntimeError, type CeleryError } from "./errors.js";
import type { ResultBackend } from "./backends/backend.js";
import { instantFromDate, instantFromMillis, isoformat, millisOf, parseIso, type Instant } from "./protocol/isoformat.js";
import { encodeTaskMessage } from "./protocol/encode.js";
import type { TaskFields } from "./protocol/fields.js";
import type { TaskMessage } from "./protocol/message.js";
import { isFarEta } from "./wire/parking.js";
import {
  checkApplyOptions,
  checkSendOptions,
  checkTaskName,
  type ApplyOptions,
  type CompressionName,
  type ProtocolVersion,
  type SendOptions,
  type SerializerName,
  type Signature,
} from "./options.js";
import { backendFor, transportFor } from "./registry.js";
import { revokeTask } from "./revoke.js";
import { AsyncResult, resultWaiting, type GetOptions, type ResultHost } from "./result.js";
import { Router, type Routes, type RoutingDefaults } from "./routing.js";
import { PyTuple } from "./serializers/python-values.js";
import type { PublishOptions, Transport } from "./transport.js";

export interface CeleryOptions extends RoutingDefaults {
  /** Broker URL (`amqp://`, `amqps://`; Node only) or a `Transport` such as `sqsRelay(...)`. */
  broker: string | Transport;
  /** Result backend URL (`redis://`, `rediss://`, `rpc://`) or a `ResultBackend`. @default none */
  backend?: string | ResultBackend;
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
}

/** One task of a `sendMany` batch. */
export type BatchCall = ApplyOptions & { task: string | Task<any, any> };

const uuid = (): string => crypto.randomUUID();

const NO_OPTIONS: SendOptions = Object.freeze({});

function defaultOrigin(): string {
  // Read without importing node:process/node:os so the core stays runtime-neutral.
  const proc = (globalThis as { process?: { pid?: number; env?: Record<string, string | undefined> } }).process;
  const host = proc?.env?.HOSTNAME || proc?.env?.AWS_LAMBDA_FUNCTION_NAME || "celery-edge";
  return `gen${proc?.pid ?? 0}@${host}`;
}

function toInstant(value: Date | string, field: string): Instant {
  return value instanceof Date ? instantFromDate(value) : parseIso(value, field);
}

const asList = (s: Signature | Signature[] | undefined): Signature[] | null => (s === undefined ? null : Array.isArray(s) ? s : [s]);

export class Celery implements ResultHost {
  // `declare`d fields are assigned in the constructor and emit no class-field definition (their
  // names would be in every edge bundle twice).
  declare readonly options: Readonly<CeleryOptions>;
  /** Celery's `oid`: the `reply_to` of every message, and the rpc backend's queue. */
  readonly oid: string = uuid();
  declare private readonly router: Router;
  declare private readonly origin: string;
  declare private readonly brokerTransport: Transport;
  declare private backend: ResultBackend | undefined;
  private closed = false;

  constructor(options: CeleryOptions) {
    if (typeof options !== "object" || options === null || options.broker === undefined) {
      throw new ConfigurationError("new Celery({ broker }) needs a broker URL or Transport");
    }
    if (typeof options.broker !== "string" && typeof options.broker?.publish !== "function") {
      throw new ConfigurationError("broker must be a URL string or a Transport");
    }
    checkSendOptions({
      serializer: options.serializer,
      compression: options.compression,
      protocol: options.protocol,
      priority: options.defaultPriority,
      connectTimeout: options.connectTimeout,
    });
    this.options = options;
    // Built now so a bad URL fails here; the transport connects lazily on the first publish.
    this.brokerTransport = typeof options.broker === "string" ? transportFor(options.broker) : options.broker;
    this.router = new Router(options.routes, options);
    this.origin = options.origin ?? defaultOrigin();
  }

  /** Declares a task by name (it runs in the Python worker). */
  task<A extends unknown[] = unknown[], R = unknown, K extends Record<string, unknown> = Record<string, unknown>>(
    name: string,
    options: SendOptions = {},
  ): Task<A, R, K> {
    checkTaskName(name);
    checkSendOptions(options);
    return new Task<A, R, K>(this, name, options);
  }

  /** Celery's `send_task`: sends by name without declaring the task. */
  sendTask<R = unknown>(name: string, options: ApplyOptions = {}): Promise<AsyncResult<R>> {
    return this.apply<R>(name, {}, options, false);
  }

  /** Re-attaches to a task sent elsewhere (e.g. by another Lambda). */
  asyncResult<R = unknown>(id: string): AsyncResult<R> {
    return new AsyncResult<R>(id, this);
  }

  /** @internal Shared by `Task` and `sendTask`. */
  async apply<R>(name: string, taskOptions: SendOptions, callOptions: ApplyOptions, argsAsTuple: boolean): Promise<AsyncResult<R>> {
    const message = await this.compose(name, taskOptions, callOptions, argsAsTuple);
    const ignoreResult = callOptions.ignoreResult ?? taskOptions.ignoreResult ?? false;
    // As Celery's send_task: the backend may prepare (rpc:// declares its reply queue) unless ignore_result.
    if (!ignoreResult) await this.backendForSend()?.onTaskCall?.(message.meta.id);
    await this.transportFor(message).publish(message, this.publishOptions(callOptions));
    return new AsyncResult<R>(message.meta.id, this, { ignoreResult });
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
      const built = this.compose(declared ? declared.name : (task as string), declared ? declared.options : NO_OPTIONS, call, false);
      messages[i] = built instanceof Promise ? await built : built;
    }
    const backend = messages.length > 0 ? this.backendForSend() : undefined;
    if (backend?.onTaskCall) for (const m of messages) await backend.onTaskCall(m.meta.id);
    const byTransport = new Map<Transport, number[]>();
    messages.forEach((m, i) => {
      const t = this.transportFor(m);
      const indexes = byTransport.get(t);
      if (indexes) indexes.push(i);
      else byTransport.set(t, [i]);
    });
    const outcomes: Array<{ ok: true; id: string } | { ok: false; id: string; error: CeleryError }> = new Array(messages.length);
    await Promise.all(
      [...byTransport].map(async ([transport, indexes]) => {
        const results = await transport.publishMany(indexes.map((i) => messages[i]!), this.publishOptions({}));
        results.forEach((r, j) => {
          const i = indexes[j]!;
          const id = messages[i]!.meta.id;
          outcomes[i] = r.ok ? { ok: true, id } : { ok: false, id, error: r.error };
        });
      }),
    );
    if (outcomes.some((o) => !o.ok)) throw new BatchPublishError(outcomes);
    return outcomes.map((o) => new AsyncResult(o.id, this));
  }

  /** Builds the exact message without sending it (used by tests, batch and the relay envelope). */
  async buildMessage(name: string, taskOptions: SendOptions, callOptions: ApplyOptions, argsAsTuple: boolean): Promise<TaskMessage> {
    return this.compose(name, taskOptions, callOptions, argsAsTuple);
  }

  /** `buildMessage` without a promise unless compression needs one. */
  private compose(name: string, taskOptions: SendOptions, callOptions: ApplyOptions, argsAsTuple: boolean): TaskMessage | Promise<TaskMessage> {
    if (this.closed) throw new ConfigurationError("this app was closed");
    checkTaskName(name);
    checkApplyOptions(callOptions);
    const o: ApplyOptions = { ...taskOptions, ...stripUndefined(callOptions) } as ApplyOptions;
    const now = Date.now();
    const args = o.args ?? [];
    const kwargs = o.kwargs ?? {};
    const id = o.taskId ?? uuid();

    let eta: Instant | null = null;
    if (o.countdown) eta = instantFromMillis(now + o.countdown * 1000);
    else if (o.eta !== undefined) eta = toInstant(o.eta, "eta");

    let expires: Instant | null = null;
    let expirationMs: number | undefined;
    if (o.expires !== undefined) {
      if (typeof o.expires === "number") {
        expires = instantFromMillis(now + o.expires * 1000);
        expirationMs = o.expires * 1000;
      } else {
        expires = toInstant(o.expires, "expires");
        expirationMs = millisOf(expires) - now;
      }
    }

    const dest = this.router.resolve(name, args, kwargs, { queue: o.queue, exchange: o.exchange, routingKey: o.routingKey, priority: o.priority });

    const fields: TaskFields = {
      id,
      name,
      args: argsAsTuple ? PyTuple.fromArray(args) : args,
      kwargs,
      eta: eta ? isoformat(eta) : null,
      expires: expires ? isoformat(expires) : null,
      retries: o.retries ?? 0,
      timeLimit: o.timeLimit ?? null,
      softTimeLimit: o.softTimeLimit ?? null,
      rootId: o.rootId ?? id,
      parentId: o.parentId ?? null,
      groupId: null,
      groupIndex: null,
      shadow: o.shadow ?? null,
      ignoreResult: o.ignoreResult ?? false,
      origin: this.origin,
      callbacks: asList(o.link),
      errbacks: asList(o.linkError),
    };
    return encodeTaskMessage(fields, {
      protocol: o.protocol ?? this.options.protocol ?? 2,
      serializer: o.serializer ?? this.options.serializer ?? "json",
      compression: o.compression ?? this.options.compression,
      exchange: dest.exchange,
      routingKey: dest.routingKey,
      priority: dest.priority ?? this.options.defaultPriority ?? dest.defaultPriority,
      expirationMs,
      replyTo: this.oid,
      headers: o.headers,
      mandatory: o.mandatory ?? false,
      immediate: o.immediate ?? false,
      declare: dest.declare,
    });
  }

  /** The broker transport (created on first use; connections open lazily inside it). */
  get transport(): Transport {
    return this.brokerTransport;
  }

  private transportFor(message: TaskMessage): Transport {
    const parking = this.options.parking;
    if (parking && message.meta.eta !== null) {
      if (isFarEta(message.meta, parking.thresholdSeconds)) return parking.transport;
    }
    return this.transport;
  }

  private publishOptions(o: { connectTimeout?: number }): PublishOptions {
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
  private backendForSend(): ResultBackend | undefined {
    if (this.options.backend === undefined) return undefined;
    try {
      return this.resultBackendOrThrow();
    } catch (err) {
      if (err instanceof UnsupportedRuntimeError) return undefined;
      throw err;
    }
  }

  resultBackendOrThrow(): ResultBackend {
    if (!this.backend) {
      const b = this.options.backend;
      if (b === undefined) throw new ConfigurationError("no result backend configured: pass `backend` (e.g. redis://host:6379/0) to new Celery()");
      this.backend =
        typeof b === "string"
          ? backendFor(b, {
              brokerUrl: typeof this.options.broker === "string" ? this.options.broker : undefined,
              replyTo: this.oid,
              resultSerializer: this.options.resultSerializer,
              resultAccept: this.options.resultAccept,
            })
          : b;
    }
    return this.backend;
  }

  /**
   * Waits for many results at once through one backend wait (one subscription, not one per task)
   * and returns their values in order. With `propagate` (default) the first failed task, in order,
   * rejects with its `TaskFailedError`; `timeout` bounds the whole wait.
   */
  /** Waits for many results on one backend subscription (not one poller per result). */
  async gather<T extends readonly AsyncResult<any>[]>(
    results: T,
    options: GetOptions = {},
  ): Promise<{ -readonly [K in keyof T]: T[K] extends AsyncResult<infer R> ? R : never }> {
    const values = await resultWaiting().gather(this.resultBackendOrThrow(), results, options);
    return values as { -readonly [K in keyof T]: T[K] extends AsyncResult<infer R> ? R : never };
  }

  /** Revokes a task (parked: schedule deleted; queued: Celery's broadcast revoke). */
  async revoke(taskId: string, options: { terminate?: boolean; signal?: string } = {}): Promise<void> {
    await revokeTask(this, taskId, options);
  }

  /** Closes the broker connection and the result backend. The app cannot send afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([this.brokerTransport.close(), this.options.parking?.transport.close(), this.backend?.close()]);
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out as Partial<T>;
}

/** A task declared with `app.task(name)`: typed arguments and result. */
export class Task<A extends unknown[] = unknown[], R = unknown, K extends Record<string, unknown> = Record<string, unknown>> {
  constructor(
    readonly app: Celery,
    readonly name: string,
    readonly options: SendOptions,
  ) {}

  /** `task.delay(*args)`: positional arguments, sent as a Python tuple. */
  delay(...args: A): Promise<AsyncResult<R>> {
    return this.app.apply<R>(this.name, this.options, { args }, true);
  }

  /** `task.apply_async(args, kwargs, **options)`. */
  applyAsync(options: ApplyOptions<A, K> = {}): Promise<AsyncResult<R>> {
    return this.app.apply<R>(this.name, this.options, options as ApplyOptions, false);
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
