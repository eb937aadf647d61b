/**
 * @module
 * Warnings: something the SDK worked around that the app should still hear about. Nothing is
 * thrown; the transport (or the app, which passes its own on) hands each to its `onWarning`. Like
 * errors, each has a stable `code` to branch on, and no warning shows a password.
 */

export type WarningCode =
  /** A queue the app would declare exists with other settings (arguments, durability, type). */
  | "WARN_QUEUE_MISMATCH"
  /** An exchange the app would declare exists with another type or durability. */
  | "WARN_EXCHANGE_MISMATCH";

// Fields are `declare`d and assigned in the constructor: no class-field definitions in every bundle.
export class CeleryWarning {
  declare readonly code: WarningCode;
  declare readonly message: string;
  constructor(code: WarningCode, message: string) {
    this.code = code;
    this.message = message;
  }
}

/**
 * The broker holds a queue or exchange the app knows other settings for. The broker's own one was
 * used as it is and the task was published; the app's settings only apply where it creates one.
 */
export class TopologyMismatchWarning extends CeleryWarning {
  declare readonly kind: "queue" | "exchange";
  /** The queue's or exchange's name. */
  declare readonly entity: string;
  /**
   * What the broker answered a declare with the app's settings (RabbitMQ names the setting that
   * differs, e.g. `inequivalent arg 'x-max-priority' … received none but current is the value '10'`).
   */
  declare readonly brokerReply: string;
  constructor(kind: "queue" | "exchange", entity: string, brokerReply: string, where: string) {
    super(
      kind === "queue" ? "WARN_QUEUE_MISMATCH" : "WARN_EXCHANGE_MISMATCH",
      `${kind} ${JSON.stringify(entity)} on ${where} differs from the app's declaration of it; it was used as it is. ` +
        `Broker: ${brokerReply}. Make the app's queues config match the workers' to silence this.`,
    );
    this.kind = kind;
    this.entity = entity;
    this.brokerReply = brokerReply;
  }
}

/** Receives warnings; it must not throw (what it throws is dropped). */
export type WarningHandler = (warning: CeleryWarning) => void;

/** The default handler: one `console.warn` line per warning. */
export const warnOnConsole: WarningHandler = (warning) => {
  console.warn(`celery-edge ${warning.code}: ${warning.message}`);
};
