/**
 * @module
 * The only place the functions read `process.env`. Read once per container, at module scope.
 */
import { ConfigurationError } from "../../sdk/errors.js";
import { redisLayout, type RedisTransportOptions } from "../../sdk/transports/redis-wire.js";
import { DEFAULT_LEAD_SECONDS, DEFAULT_PARK_THRESHOLD_SECONDS } from "../../sdk/wire/parking.js";
import { DEFAULT_RETRY_BACKOFF, RELAY_ENV as R, SCHEDULER_ENV as S } from "./environment.js";
import { policyFromEnv, type ResolvedPolicy } from "./policy.js";

export interface RelayConfig {
  /** Secrets Manager secret holding the broker URL (deployed), or… */
  brokerSecretArn: string | undefined;
  /** …a plain URL (local runs and tests only). */
  brokerUrl: string | undefined;
  /**
   * The workers' `broker_transport_options` for a `redis://` broker (`BROKER_TRANSPORT_OPTIONS`,
   * JSON), checked at cold start; undefined: kombu's defaults.
   */
  brokerTransportOptions: RedisTransportOptions | undefined;
  /** What senders may publish (`RELAY_POLICY`, JSON; unset: the default policy). */
  policy: ResolvedPolicy;
  /**
   * Role ids whose records may speak for another sender (`TRUSTED_FORWARDERS`, JSON array): the
   * scheduler function, which hands back tasks and revokes that others sent.
   */
  trustedForwarders: readonly string[];
  /** The intake queue's URL, for backing off records with ChangeMessageVisibility. */
  intakeQueueUrl: string | undefined;
  /** Backoff for records that failed for the broker's sake: base doubled per receive, capped. */
  retry: RetryBackoff;
  /** The scheduler function's queue; far-ETA envelopes go there. */
  parkQueueUrl: string | undefined;
  parkThresholdSeconds: number;
  /** Publish every message as mandatory so an unroutable one fails instead of vanishing. */
  forceMandatory: boolean;
  /** The intake queue's maxReceiveCount: a record failing on that receive goes to the DLQ. @default 30 */
  maxReceiveCount: number;
  /** EventBridge bus for lifecycle events; undefined: none are put. */
  eventBusName: string | undefined;
}

export interface RetryBackoff {
  /** Visibility, in seconds, after the first failed receive (`RELAY_RETRY_BASE_SECONDS`). @default 30 */
  baseSeconds: number;
  /** Upper bound (`RELAY_RETRY_MAX_SECONDS`). @default 900 */
  maxSeconds: number;
}

export interface SchedulerConfig {
  intakeQueueUrl: string;
  schedulerQueueArn: string;
  schedulerQueueUrl: string | undefined;
  scheduleGroup: string;
  schedulerRoleArn: string;
  scheduleDlqArn: string | undefined;
  parkThresholdSeconds: number;
  leadSeconds: number;
  /** The relay's policy: its `admins` may revoke any parked task. */
  policy: ResolvedPolicy;
  /** Role ids (the relay's, the schedules' own) whose records carry the original sender in the envelope. */
  trustedForwarders: readonly string[];
  /** The scheduler queue's maxReceiveCount. @default 5 */
  maxReceiveCount: number;
  eventBusName: string | undefined;
}

type Env = Record<string, string | undefined>;



function required(env: Env, name: string): string {
  const v = env[name];
  if (!v) throw new Error(`environment variable ${name} is required`);
  return v;
}

function seconds(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`environment variable ${name} must be a number of seconds, got ${JSON.stringify(raw)}`);
  return n;
}

function principals(env: Env, name: string): string[] {
  const raw = env[name];
  if (raw === undefined || raw === "") return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === "string" && x.length > 0)) {
    throw new Error(`environment variable ${name} must be a JSON array of principal ids`);
  }
  return parsed as string[];
}

/** Longest `BROKER_TRANSPORT_OPTIONS` read: a few options, never a document. */
const MAX_TRANSPORT_OPTIONS_CHARS = 4096;

/**
 * `BROKER_TRANSPORT_OPTIONS`: a JSON object of kombu's Redis transport options, checked as the
 * Redis transport will use them, so a bad value stops the cold start instead of every record.
 */
function transportOptions(env: Env, name: string): RedisTransportOptions | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  let parsed: unknown;
  try {
    parsed = raw.length <= MAX_TRANSPORT_OPTIONS_CHARS ? JSON.parse(raw) : undefined;
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigurationError(`environment variable ${name} must be a JSON object of at most ${MAX_TRANSPORT_OPTIONS_CHARS} characters (kombu's broker_transport_options)`);
  }
  const options = parsed as RedisTransportOptions;
  redisLayout(options, 0); // throws ERR_INVALID_OPTION naming the option
  return options;
}

export function relayConfig(env: Env = process.env): RelayConfig {
  if (env.ALLOWED_EXCHANGES) {
    throw new Error("ALLOWED_EXCHANGES is replaced by RELAY_POLICY (see docs/deploy.md, \"Relay policy\")");
  }
  if (!env[R.brokerSecretArn] && !env[R.brokerUrl]) throw new Error("set BROKER_SECRET_ARN (or BROKER_URL for local runs)");
  return {
    brokerSecretArn: env[R.brokerSecretArn] || undefined,
    brokerUrl: env[R.brokerUrl] || undefined,
    brokerTransportOptions: transportOptions(env, R.brokerTransportOptions),
    policy: policyFromEnv(env[R.policy]),
    trustedForwarders: principals(env, R.trustedForwarders),
    intakeQueueUrl: env[R.intakeQueueUrl] || undefined,
    retry: { baseSeconds: seconds(env, R.retryBaseSeconds, DEFAULT_RETRY_BACKOFF.baseSeconds), maxSeconds: seconds(env, R.retryMaxSeconds, DEFAULT_RETRY_BACKOFF.maxSeconds) },
    parkQueueUrl: env[R.parkQueueUrl] || undefined,
    parkThresholdSeconds: seconds(env, R.parkThresholdSeconds, DEFAULT_PARK_THRESHOLD_SECONDS),
    forceMandatory: env[R.forceMandatory] !== "false",
    maxReceiveCount: seconds(env, R.maxReceiveCount, 30),
    eventBusName: env[R.eventBusName] || undefined,
  };
}

export function schedulerConfig(env: Env = process.env): SchedulerConfig {
  return {
    intakeQueueUrl: required(env, S.intakeQueueUrl),
    schedulerQueueArn: required(env, S.schedulerQueueArn),
    schedulerQueueUrl: env[S.schedulerQueueUrl] || undefined,
    scheduleGroup: required(env, S.scheduleGroup),
    schedulerRoleArn: required(env, S.schedulerRoleArn),
    scheduleDlqArn: env[S.scheduleDlqArn] || undefined,
    parkThresholdSeconds: seconds(env, S.parkThresholdSeconds, DEFAULT_PARK_THRESHOLD_SECONDS),
    leadSeconds: seconds(env, S.leadSeconds, DEFAULT_LEAD_SECONDS),
    policy: policyFromEnv(env[S.policy]),
    trustedForwarders: principals(env, S.trustedForwarders),
    maxReceiveCount: seconds(env, S.maxReceiveCount, 5),
    eventBusName: env[S.eventBusName] || undefined,
  };
}
