/**
 * @module
 * The relay and scheduler functions run locally, for `npm run demo`: each real handler is fed by its
 * own Lambda-style SQS event source (`sqs-event-source.ts`) on fauxqs, and the scheduler function
 * talks to a LOCAL STAND-IN FOR AMAZON EVENTBRIDGE SCHEDULER (`test/fixtures/scheduler-standin.ts`:
 * the real Scheduler REST API for the real `@aws-sdk/client-scheduler`, delivering fired schedules to
 * their SQS target). There is no Scheduler emulator; the stand-in fires a due `at()` schedule at the
 * start of its minute, where AWS may fire anywhere within it.
 *
 * Identities are those of a deployment: the functions sign with one key and the schedules deliver
 * with another, and fauxqs reports each as its role (SenderId), so the relay and the scheduler trust
 * exactly those two as forwarders, as the construct configures them.
 */
import { CreateScheduleGroupCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { relayEnvironment, schedulerEnvironment, RELAY_ENV } from "../../functions/shared/environment.js";
import type { RelayPolicy } from "../../functions/shared/policy.js";
import type { RedisTransportOptions } from "../../sdk/transports/redis-wire.js";
import { startSchedulerStandIn, type SchedulerStandIn } from "../../test/fixtures/scheduler-standin.js";
import { LOCAL_CREDENTIALS, LOCAL_REGION, credentialsFor, sqsClientConfig, type CreatedQueue, type SqsEmulator } from "./fauxqs.js";
import { startSqsEventSource, type SqsEventSource } from "./sqs-event-source.js";

/** Access keys the functions and the schedules sign with; `SENDER_IDS` maps them to their roles. */
const FUNCTIONS_KEY = "AKIDLOCALFUNCTIONS";
const SCHEDULES_KEY = "AKIDLOCALSCHEDULES";
const FUNCTIONS_ROLE = "AROALOCALFUNCTIONS";
const SCHEDULES_ROLE = "AROALOCALSCHEDULES";

/** What the construct sets as POWERTOOLS_METRICS_NAMESPACE by default. */
const METRICS_NAMESPACE = "CeleryEdge";

/** For `startSqsEmulator({ senderIds })`: producers (LOCAL_CREDENTIALS) report as a user, the rest as roles. */
export const SENDER_IDS: Readonly<Record<string, string>> = {
  [LOCAL_CREDENTIALS.accessKeyId]: "AIDALOCALPRODUCER",
  [FUNCTIONS_KEY]: `${FUNCTIONS_ROLE}:celery-edge-fn`,
  [SCHEDULES_KEY]: `${SCHEDULES_ROLE}:scheduler-session`,
};

export type FunctionName = "relay" | "scheduler";

/** One record a function handled. */
export interface HandledRecord {
  readonly fn: FunctionName;
  /** The SQS message body (the envelope). */
  readonly body: string;
  /** Whether the handler reported it failed (it comes back after the visibility timeout). */
  readonly failed: boolean;
  /** `Date.now()` when the handler was invoked with it. */
  readonly startedAt: number;
  /** `Date.now()` when the handler returned. */
  readonly finishedAt: number;
}

export interface LocalFunctionsOptions {
  readonly sqs: SqsEmulator;
  readonly brokerUrl: string;
  /** The relay's BROKER_TRANSPORT_OPTIONS for a redis:// broker (the workers' `broker_transport_options`). @default none */
  readonly brokerTransportOptions?: RedisTransportOptions;
  readonly policy: RelayPolicy;
  /** The relay's intake queue (with its DLQ). */
  readonly intake: CreatedQueue;
  /** The scheduler function's queue: park requests, fired schedules, revokes. */
  readonly park: CreatedQueue;
  /** Where Scheduler sends a schedule it could not deliver. */
  readonly scheduleDlq: CreatedQueue;
  /** `PARK_THRESHOLD_SECONDS` for both functions. */
  readonly parkThresholdSeconds: number;
  /** `LEAD_SECONDS`: how long before its ETA a parked task's schedule fires. */
  readonly leadSeconds: number;
  /** @default "celery-edge-local" */
  readonly scheduleGroup?: string;
}

export interface LocalFunctions {
  /** The EventBridge Scheduler stand-in: its `schedules()`, `fired` and `calls` show what happened. */
  readonly standIn: SchedulerStandIn;
  /** Every record either function handled, oldest first. */
  readonly handled: ReadonlyArray<HandledRecord>;
  /** Stops both event sources (in-flight batches finish) and the stand-in. */
  stop(): Promise<void>;
}

type Handler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

/**
 * Starts both functions. Call it once per process: each handler reads its configuration from
 * `process.env` once, when its module is first imported, and the two share some variable names
 * (INTAKE_QUEUE_URL, PARK_THRESHOLD_SECONDS, RELAY_POLICY, MAX_RECEIVE_COUNT, POWERTOOLS_SERVICE_NAME),
 * so each one's environment is written right before its own import, as two Lambdas would each have theirs.
 */
export async function startLocalFunctions(options: LocalFunctionsOptions): Promise<LocalFunctions> {
  const group = options.scheduleGroup ?? "celery-edge-local";
  const policyJson = JSON.stringify(options.policy);
  const trustedForwardersJson = JSON.stringify([FUNCTIONS_ROLE, SCHEDULES_ROLE]);
  // Both functions run as their role: SQS reports their sends as it, and their AWS SDK clients
  // (SQS and Scheduler) find these endpoints in the environment, as on Lambda.
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: FUNCTIONS_KEY,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    AWS_REGION: LOCAL_REGION,
    AWS_ENDPOINT_URL_SQS: options.sqs.endpoint,
  });

  const schedulesClient = new SQSClient(sqsClientConfig(options.sqs.endpoint, credentialsFor(SCHEDULES_KEY)));
  const byArn = new Map([options.intake, options.park, options.scheduleDlq].map((q) => [q.arn, q.url]));
  const standIn = await startSchedulerStandIn({ sqsClient: schedulesClient, queueUrlForArn: (arn) => byArn.get(arn) });
  process.env.AWS_ENDPOINT_URL_SCHEDULER = standIn.endpoint;
  // The construct creates the group; here the real client creates it on the stand-in.
  const admin = new SchedulerClient({ endpoint: standIn.endpoint, region: LOCAL_REGION, credentials: credentialsFor(FUNCTIONS_KEY) });
  await admin.send(new CreateScheduleGroupCommand({ Name: group }));
  admin.destroy();

  Object.assign(process.env, relayEnvironment({
    brokerSecretArn: "",
    ...(options.brokerTransportOptions ? { brokerTransportOptionsJson: JSON.stringify(options.brokerTransportOptions) } : {}),
    policyJson,
    trustedForwardersJson,
    intakeQueueUrl: options.intake.url,
    retryBaseSeconds: 1,
    retryMaxSeconds: 4,
    parkQueueUrl: options.park.url,
    parkThresholdSeconds: options.parkThresholdSeconds,
    maxReceiveCount: 3,
  }), { [RELAY_ENV.brokerUrl]: options.brokerUrl, POWERTOOLS_SERVICE_NAME: "celery-edge-relay", POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE });
  const relay = ((await import("../../functions/relay/handler.js")) as { handler: Handler }).handler;

  Object.assign(process.env, schedulerEnvironment({
    intakeQueueUrl: options.intake.url,
    schedulerQueueArn: options.park.arn,
    scheduleGroup: group,
    schedulerRoleArn: "arn:aws:iam::000000000000:role/celery-edge-schedules",
    scheduleDlqArn: options.scheduleDlq.arn,
    parkThresholdSeconds: options.parkThresholdSeconds,
    leadSeconds: options.leadSeconds,
    policyJson,
    trustedForwardersJson,
    maxReceiveCount: 5,
  }), { POWERTOOLS_SERVICE_NAME: "celery-edge-scheduler", POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE });
  const scheduler = ((await import("../../functions/scheduler/handler.js")) as { handler: Handler }).handler;

  const handled: HandledRecord[] = [];
  const client = new SQSClient(sqsClientConfig(options.sqs.endpoint, credentialsFor(FUNCTIONS_KEY)));
  const run = (fn: FunctionName, handler: Handler, queue: CreatedQueue): SqsEventSource =>
    startSqsEventSource({
      client,
      queueUrl: queue.url,
      queueArn: queue.arn,
      functionName: `celery-edge-${fn}`,
      handler: async (event, context) => {
        const startedAt = Date.now();
        const response = await handler(event, context);
        const finishedAt = Date.now();
        const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
        for (const r of event.Records) handled.push({ fn, body: r.body, failed: failed.has(r.messageId), startedAt, finishedAt });
        return response;
      },
    });
  const sources = [run("relay", relay, options.intake), run("scheduler", scheduler, options.park)];

  let stopping: Promise<void> | undefined;
  return {
    standIn,
    handled,
    stop() {
      stopping ??= (async () => {
        await Promise.all(sources.map((s) => s.stop()));
        await standIn.stop();
        client.destroy();
        schedulesClient.destroy();
      })();
      return stopping;
    },
  };
}
