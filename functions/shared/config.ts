/**
 * @module
 * The only place the functions read `process.env`. Read once per container, at module scope.
 */

export interface RelayConfig {
  /** Secrets Manager secret holding the broker URL (deployed), or… */
  brokerSecretArn: string | undefined;
  /** …a plain URL (local runs and tests only). */
  brokerUrl: string | undefined;
  allowedExchanges: ReadonlySet<string>;
  /** The scheduler function's queue; far-ETA envelopes go there. */
  parkQueueUrl: string | undefined;
  parkThresholdSeconds: number;
  /** Publish every message as mandatory so an unroutable one fails instead of vanishing. */
  forceMandatory: boolean;
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

export const DEFAULT_ALLOWED_EXCHANGES = ["", "celery.pidbox"];

export function relayConfig(env: Env = process.env): RelayConfig {
  let allowed = DEFAULT_ALLOWED_EXCHANGES;
  if (env.ALLOWED_EXCHANGES) {
    const parsed: unknown = JSON.parse(env.ALLOWED_EXCHANGES);
    if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === "string")) {
      throw new Error("ALLOWED_EXCHANGES must be a JSON array of exchange names");
    }
    allowed = parsed;
  }
  if (!env.BROKER_SECRET_ARN && !env.BROKER_URL) throw new Error("set BROKER_SECRET_ARN (or BROKER_URL for local runs)");
  return {
    brokerSecretArn: env.BROKER_SECRET_ARN || undefined,
    brokerUrl: env.BROKER_URL || undefined,
    allowedExchanges: new Set(allowed),
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
  };
}
