/**
 * @module
 * The only place the functions read `process.env`. Read once per container, at module scope.
 */
import { policyFromEnv, type ResolvedPolicy } from "./policy.js";

export interface RelayConfig {
  /** Secrets Manager secret holding the broker URL (deployed), or… */
  brokerSecretArn: string | undefined;
  /** …a plain URL (local runs and tests only). */
  brokerUrl: string | undefined;
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

export function relayConfig(env: Env = process.env): RelayConfig {
  if (env.ALLOWED_EXCHANGES) {
    throw new Error("ALLOWED_EXCHANGES is replaced by RELAY_POLICY (see docs/deploy.md, \"Relay policy\")");
  }
  if (!env.BROKER_SECRET_ARN && !env.BROKER_URL) throw new Error("set BROKER_SECRET_ARN (or BROKER_URL for local runs)");
  return {
    brokerSecretArn: env.BROKER_SECRET_ARN || undefined,
    brokerUrl: env.BROKER_URL || undefined,
    policy: policyFromEnv(env.RELAY_POLICY),
    trustedForwarders: principals(env, "TRUSTED_FORWARDERS"),
    intakeQueueUrl: env.INTAKE_QUEUE_URL || undefined,
    retry: { baseSeconds: seconds(env, "RELAY_RETRY_BASE_SECONDS", 30), maxSeconds: seconds(env, "RELAY_RETRY_MAX_SECONDS", 900) },
    parkQueueUrl: env.PARK_QUEUE_URL || undefined,
    parkThresholdSeconds: seconds(env, "PARK_THRESHOLD_SECONDS", 900),
    forceMandatory: env.RELAY_FORCE_MANDATORY !== "false",
  };
}

export function schedulerConfig(env: Env = process.env): SchedulerConfig {
  return {
    intakeQueueUrl: required(env, "INTAKE_QUEUE_URL"),
    schedulerQueueArn: required(env, "SCHEDULER_QUEUE_ARN"),
    schedulerQueueUrl: env.SCHEDULER_QUEUE_URL || undefined,
    scheduleGroup: required(env, "SCHEDULE_GROUP"),
    schedulerRoleArn: required(env, "SCHEDULER_ROLE_ARN"),
    scheduleDlqArn: env.SCHEDULE_DLQ_ARN || undefined,
    parkThresholdSeconds: seconds(env, "PARK_THRESHOLD_SECONDS", 900),
    leadSeconds: seconds(env, "LEAD_SECONDS", 120),
    policy: policyFromEnv(env.RELAY_POLICY),
    trustedForwarders: principals(env, "TRUSTED_FORWARDERS"),
  };
}
