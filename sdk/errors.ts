/**
 * @module
 * The error family. Every error the SDK raises is a `CeleryError` with a stable string `code`
 * so callers can branch on `err.code` without parsing messages.
 */

export type ErrorCode =
  | "ERR_CONFIGURATION"
  | "ERR_INVALID_OPTION"
  | "ERR_SERIALIZATION"
  | "ERR_CONNECTION"
  | "ERR_AUTH"
  | "ERR_PUBLISH"
  | "ERR_NACKED"
  | "ERR_UNROUTABLE"
  | "ERR_NO_CONSUMERS"
  | "ERR_EXCHANGE_NOT_FOUND"
  | "ERR_CHANNEL_CLOSED"
  | "ERR_TIMEOUT"
  | "ERR_UNSUPPORTED_RUNTIME"
  | "ERR_SCHEDULING"
  | "ERR_TASK_FAILED"
  | "ERR_PAYLOAD_TOO_LARGE"
  | "ERR_ENVELOPE"
  | "ERR_POLICY"
  | "ERR_BATCH"
  | "ERR_RESULT_BACKEND"
  | "ERR_RESULT_DECODE"
  | "ERR_CLOSED";

// Fields are `declare`d and assigned in constructors: no class-field definitions in every bundle.
export class CeleryError extends Error {
  declare readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad app, task or call options: raised before anything is sent. */
export class ConfigurationError extends CeleryError {
  constructor(message: string, options?: ErrorOptions & { code?: "ERR_CONFIGURATION" | "ERR_INVALID_OPTION" }) {
    super(options?.code ?? "ERR_CONFIGURATION", message, options);
  }
}

/** A value the chosen serializer cannot carry; `path` names where it sits (e.g. `args[1].when`). */
export class SerializationError extends CeleryError {
  declare readonly path: string;
  constructor(message: string, path: string, options?: ErrorOptions) {
    super("ERR_SERIALIZATION", message, options);
    this.path = path;
  }
}

export class ConnectionError extends CeleryError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_CONNECTION", message, options);
  }
}

/** The broker refused the credentials (a REST front's HTTP 401/403). The message never shows them. */
export class AuthenticationError extends ConnectionError {
  declare readonly code: ErrorCode;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = "ERR_AUTH";
  }
}

/** The broker did not take the task: nacked, unroutable, exchange missing, channel closed. */
export class PublishError extends CeleryError {
  constructor(
    code: "ERR_PUBLISH" | "ERR_NACKED" | "ERR_UNROUTABLE" | "ERR_NO_CONSUMERS" | "ERR_EXCHANGE_NOT_FOUND" | "ERR_CHANNEL_CLOSED",
    message: string,
    options?: ErrorOptions,
  ) {
    super(code, message, options);
  }
}

export class TimeoutError extends CeleryError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_TIMEOUT", message, options);
  }
}

export class UnsupportedRuntimeError extends CeleryError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_UNSUPPORTED_RUNTIME", message, options);
  }
}

export class SchedulingError extends CeleryError {
  declare readonly taskId: string | undefined;
  constructor(message: string, taskId?: string, options?: ErrorOptions) {
    super("ERR_SCHEDULING", message, options);
    this.taskId = taskId;
  }
}

export class PayloadTooLargeError extends CeleryError {
  declare readonly size: number;
  declare readonly limit: number;
  constructor(what: string, size: number, limit: number, options?: ErrorOptions) {
    super("ERR_PAYLOAD_TOO_LARGE", `${what} is ${size} bytes, over the ${limit}-byte limit`, options);
    this.size = size;
    this.limit = limit;
  }
}

/** An SQS envelope that cannot be decoded or is not allowed. */
export class EnvelopeError extends CeleryError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_ENVELOPE", message, options);
  }
}

/** An envelope the relay's policy does not allow (destination, task, content type, control message). */
export class PolicyError extends CeleryError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_POLICY", message, options);
  }
}

export class ResultBackendError extends CeleryError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_RESULT_BACKEND", message, options);
  }
}

/**
 * A result that reached the backend but cannot be read: a format outside `resultAccept`, bytes the
 * format cannot decode, a decoder limit exceeded, or no Celery task meta. `taskId` names the task
 * when the backend knows it. A `ResultBackendError`, so code that caught those still catches it.
 */
export class ResultDecodeError extends ResultBackendError {
  override readonly code: ErrorCode = "ERR_RESULT_DECODE";
  declare readonly taskId: string | undefined;
  constructor(message: string, taskId?: string, options?: ErrorOptions) {
    super(message, options);
    this.taskId = taskId;
  }
}

/** A task that raised in the worker; carries Python's exception type, message and traceback. */
export class TaskFailedError extends CeleryError {
  declare readonly taskId: string;
  declare readonly excType: string;
  declare readonly excMessage: string;
  declare readonly traceback: string | null;
  constructor(taskId: string, excType: string, excMessage: string, traceback: string | null) {
    super("ERR_TASK_FAILED", `task ${taskId} raised ${excType}: ${excMessage}`);
    this.taskId = taskId;
    this.excType = excType;
    this.excMessage = excMessage;
    this.traceback = traceback;
  }
}

/** Some tasks of a batch were not sent; `outcomes` says, per task in call order, which and why. */
export class BatchPublishError extends CeleryError {
  declare readonly outcomes: ReadonlyArray<{ ok: true; id: string } | { ok: false; id: string; error: CeleryError }>;
  constructor(outcomes: BatchPublishError["outcomes"]) {
    const failed = outcomes.filter((o) => !o.ok).length;
    super("ERR_BATCH", `${failed} of ${outcomes.length} tasks were not sent`);
    this.outcomes = outcomes;
  }
}

/** Wraps anything thrown by a dependency (amqplib, AWS SDK) so callers only ever see our family. */
export function asCeleryError(err: unknown, wrap: (message: string, cause: unknown) => CeleryError): CeleryError {
  if (err instanceof CeleryError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const safe = redact(message);
  // An error that shows a URL stays behind: its fields and causes would show the URL again (a URL
  // parser's TypeError says only "Invalid URL" but keeps the raw `input`).
  return wrap(safe, safe == message && !(err as { input?: unknown })?.input ? err : undefined);
}

/**
 * Masks the password of anything URL-shaped (`amqp://user:***@host`) so errors and logs never leak
 * credentials. The user info runs to the last `@`: a password holding `/`, `?`, `#`, `@` or spaces
 * unencoded is masked whole, at the price of masking more than needed when an `@` follows the URL.
 */
export function redact(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/(?:[^/?#@:]*:)?)[^]*@/gi, "$1***@");
}
