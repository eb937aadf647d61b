/**
 * @module
 * The environment contract between the construct (which writes it) and the functions (which read
 * it, in config.ts): every variable's name in one place, and one writer per function that takes
 * typed values. Values may be CDK tokens (strings that resolve at deploy time), so the writers take
 * strings where the construct only has a token.
 */

/**
 * Backoff for intake records that failed for the broker's sake: visibility = min(base × 2^(n−1),
 * max) at receive n. With the intake queue's 30 receives this spans about 6.5 h of outage.
 */
export const DEFAULT_RETRY_BACKOFF = Object.freeze({ baseSeconds: 30, maxSeconds: 900 });

/**
 * The relay's per-record counts (Powertools Metrics, EMF), one per outcome: published to the broker
 * (tasks and revokes) or a revoke handed to the scheduler; a far-ETA task handed to the scheduler to
 * park; refused for its own content (it will reach the DLQ); failed for the broker's sake (it comes
 * back after a backoff). The construct's alarms and dashboards name the same metrics.
 */
export type RelayMetricName = "Relayed" | "Parked" | "Rejected" | "Failed";

/** Variable names of the relay function. */
export const RELAY_ENV = {
  brokerSecretArn: "BROKER_SECRET_ARN",
  /** Local runs and tests only: a plain broker URL instead of a secret. */
  brokerUrl: "BROKER_URL",
  /**
   * The workers' `broker_transport_options` as JSON, for a `redis://` broker (kombu's names:
   * `global_keyprefix`, `sep`, `priority_steps`, `fanout_prefix`, …); unset: kombu's defaults.
   */
  brokerTransportOptions: "BROKER_TRANSPORT_OPTIONS",
  policy: "RELAY_POLICY",
  trustedForwarders: "TRUSTED_FORWARDERS",
  intakeQueueUrl: "INTAKE_QUEUE_URL",
  retryBaseSeconds: "RELAY_RETRY_BASE_SECONDS",
  retryMaxSeconds: "RELAY_RETRY_MAX_SECONDS",
  parkQueueUrl: "PARK_QUEUE_URL",
  parkThresholdSeconds: "PARK_THRESHOLD_SECONDS",
  forceMandatory: "RELAY_FORCE_MANDATORY",
  /** The intake queue's redrive maxReceiveCount: a record failing on that receive is dead-lettered. */
  maxReceiveCount: "MAX_RECEIVE_COUNT",
  /** EventBridge bus for lifecycle events (Task Parked, Released, Revoked, Rejected, Dead-Lettered); unset: none are put. */
  eventBusName: "EVENT_BUS_NAME",
} as const;

/** Variable names of the scheduler function. */
export const SCHEDULER_ENV = {
  intakeQueueUrl: "INTAKE_QUEUE_URL",
  schedulerQueueArn: "SCHEDULER_QUEUE_ARN",
  schedulerQueueUrl: "SCHEDULER_QUEUE_URL",
  scheduleGroup: "SCHEDULE_GROUP",
  schedulerRoleArn: "SCHEDULER_ROLE_ARN",
  scheduleDlqArn: "SCHEDULE_DLQ_ARN",
  parkThresholdSeconds: "PARK_THRESHOLD_SECONDS",
  leadSeconds: "LEAD_SECONDS",
  policy: "RELAY_POLICY",
  trustedForwarders: "TRUSTED_FORWARDERS",
  /** The scheduler queue's redrive maxReceiveCount. */
  maxReceiveCount: "MAX_RECEIVE_COUNT",
  eventBusName: "EVENT_BUS_NAME",
} as const;

/** What the relay needs; JSON-valued fields are already JSON (the construct may hold tokens in them). */
export interface RelayEnvironment {
  brokerSecretArn: string;
  /** Omitted when the construct has no `brokerTransportOptions`. */
  brokerTransportOptionsJson?: string;
  policyJson: string;
  trustedForwardersJson: string;
  intakeQueueUrl: string;
  retryBaseSeconds: number;
  retryMaxSeconds: number;
  parkQueueUrl: string;
  parkThresholdSeconds: number;
  maxReceiveCount: number;
  /** Omitted when the construct has no `eventBus`. */
  eventBusName?: string;
}

export interface SchedulerEnvironment {
  intakeQueueUrl: string;
  schedulerQueueArn: string;
  scheduleGroup: string;
  schedulerRoleArn: string;
  scheduleDlqArn: string;
  parkThresholdSeconds: number;
  leadSeconds: number;
  policyJson: string;
  trustedForwardersJson: string;
  maxReceiveCount: number;
  eventBusName?: string;
}

export function relayEnvironment(e: RelayEnvironment): Record<string, string> {
  return {
    [RELAY_ENV.brokerSecretArn]: e.brokerSecretArn,
    ...(e.brokerTransportOptionsJson === undefined ? {} : { [RELAY_ENV.brokerTransportOptions]: e.brokerTransportOptionsJson }),
    [RELAY_ENV.policy]: e.policyJson,
    [RELAY_ENV.trustedForwarders]: e.trustedForwardersJson,
    [RELAY_ENV.intakeQueueUrl]: e.intakeQueueUrl,
    [RELAY_ENV.retryBaseSeconds]: String(e.retryBaseSeconds),
    [RELAY_ENV.retryMaxSeconds]: String(e.retryMaxSeconds),
    [RELAY_ENV.parkQueueUrl]: e.parkQueueUrl,
    [RELAY_ENV.parkThresholdSeconds]: String(e.parkThresholdSeconds),
    [RELAY_ENV.maxReceiveCount]: String(e.maxReceiveCount),
    ...(e.eventBusName === undefined ? {} : { [RELAY_ENV.eventBusName]: e.eventBusName }),
  };
}

export function schedulerEnvironment(e: SchedulerEnvironment): Record<string, string> {
  return {
    [SCHEDULER_ENV.intakeQueueUrl]: e.intakeQueueUrl,
    [SCHEDULER_ENV.schedulerQueueArn]: e.schedulerQueueArn,
    [SCHEDULER_ENV.scheduleGroup]: e.scheduleGroup,
    [SCHEDULER_ENV.schedulerRoleArn]: e.schedulerRoleArn,
    [SCHEDULER_ENV.scheduleDlqArn]: e.scheduleDlqArn,
    [SCHEDULER_ENV.parkThresholdSeconds]: String(e.parkThresholdSeconds),
    [SCHEDULER_ENV.leadSeconds]: String(e.leadSeconds),
    [SCHEDULER_ENV.policy]: e.policyJson,
    [SCHEDULER_ENV.trustedForwarders]: e.trustedForwardersJson,
    [SCHEDULER_ENV.maxReceiveCount]: String(e.maxReceiveCount),
    ...(e.eventBusName === undefined ? {} : { [SCHEDULER_ENV.eventBusName]: e.eventBusName }),
  };
}
