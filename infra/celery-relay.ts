/**
 * @module
 * `CeleryRelay`: the AWS half of celery-edge. Producers send Celery envelopes to an SQS intake
 * queue; the relay function republishes them to RabbitMQ; tasks due further out than SQS can delay
 * are parked in EventBridge Scheduler by the scheduler function and come back through the intake
 * queue when due.
 */
import { fileURLToPath } from "node:url";
import { ArnFormat, CfnOutput, Duration, Names, Stack, Token, Validations } from "aws-cdk-lib";
import {
  Alarm,
  ComparisonOperator,
  Metric,
  Stats,
  TreatMissingData,
  type IAlarm,
  type IAlarmAction,
  type IMetric,
  type MetricOptions,
} from "aws-cdk-lib/aws-cloudwatch";
import type { ISecurityGroup, IVpc, SubnetSelection } from "aws-cdk-lib/aws-ec2";
import type { IEventBus } from "aws-cdk-lib/aws-events";
import { PolicyStatement, Role, ServicePrincipal, type Grant, type IGrantable, type IRole } from "aws-cdk-lib/aws-iam";
import { Architecture, Runtime, type IFunction } from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import { NodejsFunction, OutputFormat, type BundlingOptions } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { CfnScheduleGroup } from "aws-cdk-lib/aws-scheduler";
import type { ISecret } from "aws-cdk-lib/aws-secretsmanager";
import { Queue, QueueEncryption, type IQueue, type QueueProps } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { DEFAULT_RETRY_BACKOFF, relayEnvironment, schedulerEnvironment, type RelayMetricName } from "../functions/shared/environment.js";
import { SQS_MAX_DELAY_SECONDS, SQS_MAX_MESSAGE_BYTES } from "../sdk/wire/limits.js";
import { DEFAULT_LEAD_SECONDS, DEFAULT_PARK_THRESHOLD_SECONDS } from "../sdk/wire/parking.js";
import { DEFAULT_RELAY_POLICY, resolvePolicy, type RelayPolicy } from "../functions/shared/policy.js";
import { ConfigurationError } from "../sdk/errors.js";
import { redisLayout, type RedisTransportOptions } from "../sdk/transports/redis-wire.js";

export { DEFAULT_RELAY_POLICY };
export { SQS_MAX_MESSAGE_BYTES } from "../sdk/wire/limits.js";
export type { ExchangeRule, PolicyContentType, QueueDeclare, QueueRule, RelayPolicy, SenderRule } from "../functions/shared/policy.js";

/** AWS Lambda guidance: visibility timeout ≥ 6 × function timeout + batching window. */
const VISIBILITY_TIMEOUT_FACTOR = 6;
const SCHEDULER_TIMEOUT = Duration.seconds(30);
/** The scheduler queue's failures are AWS API errors, not broker outages: dead-letter them early. */
const SCHEDULER_MAX_RECEIVE_COUNT = 5;
const DLQ_RETENTION = Duration.days(14);
/** SQS's own default, set explicitly so the backoff check below compares against a known value. */
const DEFAULT_INTAKE_RETENTION = Duration.days(4);
/** ChangeMessageVisibility accepts at most 12 hours. */
const MAX_VISIBILITY_SECONDS = 43_200;
/**
 * Lambda allows 4 KB of environment per function; the policy shares it with queue URLs and ARNs
 * (about 0.7 KB), so a larger one would only fail at deploy time.
 */
const POLICY_ENV_BUDGET_BYTES = 3072;

const PROJECT_ROOT = fileURLToPath(new URL("..", import.meta.url));
const LOCK_FILE = fileURLToPath(new URL("../package-lock.json", import.meta.url));
const RELAY_ENTRY = fileURLToPath(new URL("../functions/relay/handler.ts", import.meta.url));
const SCHEDULER_ENTRY = fileURLToPath(new URL("../functions/scheduler/handler.ts", import.meta.url));

/** Powertools' service name of each function: the `service` dimension of their metrics. */
const RELAY_SERVICE_NAME = "celery-edge-relay";
const SCHEDULER_SERVICE_NAME = "celery-edge-scheduler";
/** CloudWatch namespace of the relay's Powertools metrics unless `metricsNamespace` says otherwise. */
export const DEFAULT_METRICS_NAMESPACE = "CeleryEdge";
export type { RelayMetricName };
/** Period of the error and failure alarms: long enough to hold a few backoff retries of one record. */
const FAILURE_ALARM_PERIOD = Duration.minutes(5);
/** SQS publishes its queue metrics once a minute: a shorter age threshold would only measure that. */
const MIN_AGE_THRESHOLD_SECONDS = 60;

/** Log level of both functions (Powertools Logger). */
export type RelayLogLevel = "DEBUG" | "INFO" | "WARN" | "ERROR";

/**
 * How long the relay hides a record that failed because the broker is unreachable: `base` after the
 * first receive, doubled on each receive after that, never more than `max`
 * (`min(base × 2^(receiveCount − 1), max)`, through ChangeMessageVisibility).
 */
export interface RelayRetryBackoff {
  /**
   * Visibility after the first failed receive (whole seconds, 1 s–12 h).
   * @default Duration.seconds(30)
   */
  readonly base?: Duration;
  /**
   * Largest visibility (whole seconds, `base`–12 h).
   * @default Duration.minutes(15)
   */
  readonly max?: Duration;
}

export interface CeleryRelayProps {
  /**
   * Secrets Manager secret with the broker connection. Its SecretString is an `amqp(s)://` URL,
   * JSON `{"url": "amqps://user:pass@host:5671/vhost"}`, or JSON
   * `{"username", "password", "host", "port", "vhost", "scheme"}`; for a Redis fleet a `redis(s)://`
   * URL or `{"scheme": "rediss", "username", "password", "host", "port", "db"}`. Only its ARN (or
   * name) reaches the template; the relay reads the value at cold start.
   */
  readonly brokerSecret: ISecret;
  /**
   * The broker the secret points at. `"redis"` bundles the Redis transport (node-redis, about
   * 530 KB minified) into the relay; a relay bundled for `"rabbitmq"` refuses a `redis://` URL.
   * @default - `"redis"` when `brokerTransportOptions` is given, else `"rabbitmq"`
   */
  readonly brokerType?: "rabbitmq" | "redis";
  /**
   * The workers' `broker_transport_options` when the broker is Redis, in kombu's names
   * (`global_keyprefix`, `sep`, `priority_steps`, `fanout_prefix`, `fanout_patterns`,
   * `visibility_timeout`): the relay writes where the workers read, and parks every task due later
   * than half the `visibility_timeout`. Checked at synth; not allowed with `brokerType: "rabbitmq"`.
   * @default - kombu's defaults
   */
  readonly brokerTransportOptions?: RedisTransportOptions;
  /**
   * VPC to run the relay function in (a private Amazon MQ for RabbitMQ broker). The subnets need a
   * route to Secrets Manager and SQS (NAT gateway or interface endpoints).
   * @default - the relay runs outside any VPC and must reach a public broker endpoint
   */
  readonly vpc?: IVpc;
  /**
   * Subnets of `vpc` for the relay's network interfaces. Requires `vpc`.
   * @default - the VPC's private subnets with egress (Lambda's default)
   */
  readonly vpcSubnets?: SubnetSelection;
  /**
   * Security groups of the relay's network interfaces; the broker's group must admit them on 5671.
   * Requires `vpc`.
   * @default - a new security group allowing all outbound traffic (`relayFunction.connections`)
   */
  readonly securityGroups?: ISecurityGroup[];
  /**
   * What senders may put on the broker (docs/deploy.md, "Relay policy"): queues and exchanges, task
   * names, content types, revokes, per-sender rules and the admins who may revoke any parked task.
   * Validated at synth; values that are tokens (e.g. `role.roleId`) are checked once deployed.
   * Nothing reaches Celery's control plane except a revoke in exactly Celery's shape.
   * @default - `DEFAULT_RELAY_POLICY`: queue `celery` through the default exchange (declared), any
   * task name, JSON bodies only, revokes accepted, no admins, no per-sender rules
   */
  readonly policy?: RelayPolicy;
  /**
   * @deprecated Replaced by `policy`, which also names queues, routing keys and task names; passing
   * this throws an error that shows the equivalent policy.
   */
  readonly allowedExchanges?: string[];
  /**
   * Messages per relay invocation (1–10000; above 10 needs `maxBatchingWindow`).
   * @default 10
   */
  readonly batchSize?: number;
  /**
   * How long the event source gathers messages before invoking the relay (0–300 s).
   * @default - no batching window
   */
  readonly maxBatchingWindow?: Duration;
  /**
   * Most concurrent relay invocations the SQS event source starts (2–1000); caps broker connections.
   * @default 5
   */
  readonly maxConcurrency?: number;
  /**
   * Tasks due later than this are parked in EventBridge Scheduler instead of waiting on SQS
   * (1 s–15 min: SQS `DelaySeconds` cannot exceed 900 s).
   * @default Duration.minutes(15)
   */
  readonly parkThreshold?: Duration;
  /**
   * How long before a parked task's ETA its schedule fires and hands it back to the intake queue
   * (1 s–`parkThreshold`).
   * @default - Duration.minutes(2), or `parkThreshold` if that is shorter
   */
  readonly scheduleLeadTime?: Duration;
  /**
   * Memory of each function, in MiB (128–10240).
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * Instruction set of both functions.
   * @default Architecture.ARM_64
   */
  readonly architecture?: Architecture;
  /**
   * Retention of both functions' log groups.
   * @default RetentionDays.ONE_MONTH
   */
  readonly logRetention?: RetentionDays;
  /**
   * Log level of both functions.
   * @default "INFO"
   */
  readonly logLevel?: RelayLogLevel;
  /**
   * Relay function timeout (1 s–15 min); the intake queue's visibility timeout is six times this
   * plus `maxBatchingWindow`.
   * @default Duration.seconds(30)
   */
  readonly relayTimeout?: Duration;
  /**
   * Receives of an intake message before it moves to `deadLetterQueue` (1–1000). With the default
   * backoff, 30 receives keep a record retrying for about 6.5 hours of broker outage. The
   * scheduler queue always dead-letters after 5: its failures are not broker outages.
   * @default 30
   */
  readonly maxReceiveCount?: number;
  /**
   * Backoff for records that failed because the broker is unreachable. The intake queue's retention
   * must exceed the longest time a record can spend retrying (checked at synth).
   * @default - 30 s, doubling to at most 15 min
   */
  readonly retryBackoff?: RelayRetryBackoff;
  /**
   * How long the intake queue keeps a message (whole seconds, 1 min–14 days). Must exceed
   * `parkThreshold` plus the sum over `maxReceiveCount` receives of the larger of the backoff and
   * the visibility timeout, or a message would expire while still being retried.
   * @default Duration.days(4)
   */
  readonly intakeRetentionPeriod?: Duration;
  /**
   * Age of the oldest intake message that raises `oldestMessageAgeAlarm`.
   * @default Duration.minutes(5)
   */
  readonly oldestMessageAgeThreshold?: Duration;
  /**
   * Age of the oldest scheduler-queue message that raises `schedulerOldestMessageAgeAlarm`. Fired
   * schedules reach that queue `scheduleLeadTime` before their task's ETA, so a message older than
   * the lead time means a released task will run late.
   * @default - `scheduleLeadTime`, but at least 1 minute (SQS's metric period)
   */
  readonly schedulerOldestMessageAgeThreshold?: Duration;
  /**
   * What every alarm in `alarms` does when it fires, e.g. `[new SnsAction(topic)]`.
   * @default - no actions: the alarms only change state
   */
  readonly alarmActions?: IAlarmAction[];
  /**
   * What every alarm does when it returns to OK (the DLQ was drained, the errors stopped), so whoever
   * was told of the problem is told it is over. Pass `[]` for actions that should run only on ALARM
   * (an OpsItem, an incident).
   * @default - `alarmActions`
   */
  readonly okActions?: IAlarmAction[];
  /**
   * EventBridge bus for task lifecycle events (source `celery-edge`; `Task Parked`, `Task Released`,
   * `Task Revoked`, `Task Rejected`, `Task Dead-Lettered`). Both functions may then call
   * `events:PutEvents` on this bus, and on no other.
   * @default - no events are put
   */
  readonly eventBus?: IEventBus;
  /**
   * CloudWatch namespace of the relay's Powertools metrics (`Relayed`, `Parked`, `Rejected`,
   * `Failed`, dimension `service`). 1–255 characters, not starting with `AWS/`.
   * @default "CeleryEdge"
   */
  readonly metricsNamespace?: string;
  /**
   * Name of the EventBridge Scheduler schedule group for parked tasks (1–64 of `[0-9A-Za-z._-]`).
   * @default - derived from the construct path, unique per stack
   */
  readonly scheduleGroupName?: string;
  /**
   * Bundle the AWS SDK v3 (`@aws-sdk/*`, `@smithy/*`) into the functions instead of using the copy
   * the Lambda Node.js runtime ships. Pins SDK versions at the cost of a bundle ~3× larger.
   * @default false
   */
  readonly bundleAwsSdk?: boolean;
}

/**
 * Intake queue → relay → RabbitMQ, plus the far-ETA scheduler, with dead-letter queues, alarms and
 * least-privilege roles. Give producers access with {@link CeleryRelay.grantSend}.
 */
export class CeleryRelay extends Construct {
  /** Where producers send task envelopes (`SqsTransport` queue URL: `intakeQueue.queueUrl`). */
  public readonly intakeQueue: IQueue;
  /** Envelopes the relay failed `maxReceiveCount` times. */
  public readonly deadLetterQueue: IQueue;
  /** The scheduler function's queue: park requests from the relay and fired schedules. */
  public readonly schedulerQueue: IQueue;
  /** Scheduler-queue messages the scheduler function failed `maxReceiveCount` times. */
  public readonly schedulerDeadLetterQueue: IQueue;
  /** Dead-letter queue of the schedules' target: deliveries EventBridge Scheduler gave up on. */
  public readonly scheduleDeadLetterQueue: IQueue;
  /** SQS → RabbitMQ relay. Open the broker to it with `relayFunction.connections` (VPC only). */
  public readonly relayFunction: IFunction;
  /** Creates and deletes the schedules of parked tasks and hands due tasks back to the intake. */
  public readonly schedulerFunction: IFunction;
  /** Schedule group holding one schedule per parked task. */
  public readonly scheduleGroupName: string;
  /** ARN of the schedule group. */
  public readonly scheduleGroupArn: string;
  /** Role EventBridge Scheduler assumes to deliver fired schedules to `schedulerQueue`. */
  public readonly scheduleRole: IRole;
  /** Fires when `deadLetterQueue` holds at least one message. */
  public readonly deadLetterQueueAlarm: IAlarm;
  /** Fires when `schedulerDeadLetterQueue` holds at least one message. */
  public readonly schedulerDeadLetterQueueAlarm: IAlarm;
  /** Fires when `scheduleDeadLetterQueue` holds at least one message. */
  public readonly scheduleDeadLetterQueueAlarm: IAlarm;
  /** Fires when the oldest intake message is older than `oldestMessageAgeThreshold`. */
  public readonly oldestMessageAgeAlarm: IAlarm;
  /** Fires when the oldest scheduler-queue message is older than `schedulerOldestMessageAgeThreshold`. */
  public readonly schedulerOldestMessageAgeAlarm: IAlarm;
  /** Fires when relay invocations fail as a whole (timeout, crash, unreadable broker secret). */
  public readonly relayErrorsAlarm: IAlarm;
  /** Fires when records keep failing to reach the broker (the relay's `Failed` metric). */
  public readonly relayFailuresAlarm: IAlarm;
  /** Fires when scheduler invocations fail as a whole. */
  public readonly schedulerErrorsAlarm: IAlarm;
  /** Every alarm above; each has `alarmActions` and `okActions`. */
  public readonly alarms: readonly IAlarm[];
  /** The bus lifecycle events go to, when one was given. */
  public readonly eventBus?: IEventBus;
  /** CloudWatch namespace of the relay's metrics. */
  public readonly metricsNamespace: string;

  constructor(scope: Construct, id: string, props: CeleryRelayProps) {
    super(scope, id);
    const config = resolveProps(props);
    const stack = Stack.of(this);
    this.metricsNamespace = config.metricsNamespace;

    // Queues -------------------------------------------------------------------------------
    const deadLetterQueue = secureQueue(this, "DeadLetterQueue", { retentionPeriod: DLQ_RETENTION });
    const intakeQueue = secureQueue(this, "IntakeQueue", {
      visibilityTimeout: config.intakeVisibilityTimeout,
      retentionPeriod: config.intakeRetentionPeriod,
      deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount: config.maxReceiveCount },
    });
    const schedulerDeadLetterQueue = secureQueue(this, "SchedulerDeadLetterQueue", { retentionPeriod: DLQ_RETENTION });
    const schedulerQueue = secureQueue(this, "SchedulerQueue", {
      visibilityTimeout: visibilityTimeoutFor(SCHEDULER_TIMEOUT, undefined),
      deadLetterQueue: { queue: schedulerDeadLetterQueue, maxReceiveCount: SCHEDULER_MAX_RECEIVE_COUNT },
    });
    const scheduleDeadLetterQueue = secureQueue(this, "ScheduleDeadLetterQueue", { retentionPeriod: DLQ_RETENTION });
    Validations.of(scheduleDeadLetterQueue).acknowledge({
      id: "AwsSolutions-SQS3",
      reason:
        "This queue is itself a dead-letter queue: the DeadLetterConfig of every schedule's target. " +
        "cdk-nag only recognises SQS redrive policies and Lambda DLQs as DLQ users.",
    });

    // Schedule group and the role EventBridge Scheduler assumes ----------------------------
    const scheduleGroupName = props.scheduleGroupName ?? Names.uniqueResourceName(this, { maxLength: 64, separator: "-" });
    const scheduleGroup = new CfnScheduleGroup(this, "ScheduleGroup", { name: scheduleGroupName });
    const scheduleRole = new Role(this, "ScheduleRole", {
      description: "Assumed by EventBridge Scheduler to deliver parked Celery tasks to the scheduler queue",
      // Confused-deputy guard: only schedules of this account's group may use the role.
      assumedBy: new ServicePrincipal("scheduler.amazonaws.com", {
        conditions: {
          StringEquals: { "aws:SourceAccount": stack.account, "aws:SourceArn": scheduleGroup.attrArn },
        },
      }),
    });
    schedulerQueue.grant(scheduleRole, "sqs:SendMessage");
    // Scheduler writes dead-letter events with the target's execution role.
    scheduleDeadLetterQueue.grant(scheduleRole, "sqs:SendMessage");

    // Both functions' roles first: each function trusts the other's role id to forward
    // records on behalf of their original sender (TRUSTED_FORWARDERS).
    const relayRole = lambdaRole(this, "RelayRole", "celery-edge relay: SQS intake to RabbitMQ");
    const schedulerRole = lambdaRole(this, "SchedulerRole", "celery-edge scheduler: parks far-ETA tasks in EventBridge Scheduler");
    // One JSON string: role ids in the policy are tokens that CloudFormation fills in.
    const relayPolicy = stack.toJsonString(config.policy);
    // PutEvents takes a bus name or ARN; only the ARN reaches a bus in another account.
    const eventBusName = props.eventBus?.eventBusArn;

    // Relay function -----------------------------------------------------------------------
    const relayLogGroup = new LogGroup(this, "RelayLogGroup", { retention: config.logRetention });
    relayLogGroup.grantWrite(relayRole);
    const relayFunction = new NodejsFunction(this, "RelayFunction", {
      description: "celery-edge relay: SQS intake queue to RabbitMQ",
      entry: RELAY_ENTRY,
      handler: "handler",
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: LOCK_FILE,
      runtime: Runtime.NODEJS_24_X,
      architecture: config.architecture,
      memorySize: config.memorySize,
      timeout: config.relayTimeout,
      role: relayRole,
      logGroup: relayLogGroup,
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: props.securityGroups,
      bundling: bundlingOptions(config.bundleAwsSdk, config.brokerType === "redis"),
      environment: {
        // A full ARN when known; an imported-by-name secret's ARN ends in a `-??????` pattern
        // that GetSecretValue rejects, so its name is passed instead (SecretId takes either).
        ...relayEnvironment({
          brokerSecretArn: props.brokerSecret.secretFullArn ?? props.brokerSecret.secretName,
          brokerTransportOptionsJson: config.brokerTransportOptionsJson,
          policyJson: relayPolicy,
          trustedForwardersJson: stack.toJsonString([schedulerRole.roleId]),
          intakeQueueUrl: intakeQueue.queueUrl,
          retryBaseSeconds: config.retryBase.toSeconds(),
          retryMaxSeconds: config.retryMax.toSeconds(),
          parkQueueUrl: schedulerQueue.queueUrl,
          parkThresholdSeconds: config.parkThreshold.toSeconds(),
          maxReceiveCount: config.maxReceiveCount,
          eventBusName,
        }),
        POWERTOOLS_SERVICE_NAME: RELAY_SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: config.metricsNamespace,
        POWERTOOLS_LOG_LEVEL: config.logLevel,
        NODE_OPTIONS: "--enable-source-maps",
      },
    });
    relayRole.addToPrincipalPolicy(
      new PolicyStatement({ actions: ["secretsmanager:GetSecretValue"], resources: [props.brokerSecret.secretArn] }),
    );
    if (props.brokerSecret.encryptionKey) {
      // In the role's own policy so an imported key works too (its key policy must delegate to IAM,
      // as the default key policy does); usable only through Secrets Manager.
      relayRole.addToPrincipalPolicy(
        new PolicyStatement({
          actions: ["kms:Decrypt"],
          resources: [props.brokerSecret.encryptionKey.keyArn],
          conditions: { StringEquals: { "kms:ViaService": `secretsmanager.${stack.region}.amazonaws.com` } },
        }),
      );
    }
    schedulerQueue.grant(relayRole, "sqs:SendMessage");
    if (props.vpc) {
      // What AWSLambdaVPCAccessExecutionRole grants minus its account-wide logs:* statements.
      relayRole.addToPrincipalPolicy(
        new PolicyStatement({
          actions: [
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSubnets",
            "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
          ],
          resources: ["*"],
        }),
      );
      Validations.of(relayRole).acknowledge({
        id: "AwsSolutions-IAM5[Resource::*]",
        reason:
          "Lambda manages the relay's VPC network interfaces itself; ec2:Describe* and the ENI actions " +
          "Lambda requires do not support resource-level permissions (same statement as AWS's " +
          "AWSLambdaVPCAccessExecutionRole, without its account-wide logs grant).",
      });
    }
    // The event source's consume grant includes sqs:ChangeMessageVisibility, which the relay's
    // backoff uses on the records it received (asserted in the tests).
    relayFunction.addEventSource(
      new SqsEventSource(intakeQueue, {
        batchSize: config.batchSize,
        maxBatchingWindow: config.maxBatchingWindow,
        maxConcurrency: config.maxConcurrency,
        reportBatchItemFailures: true,
      }),
    );

    // Scheduler function -------------------------------------------------------------------
    const schedulerLogGroup = new LogGroup(this, "SchedulerLogGroup", { retention: config.logRetention });
    schedulerLogGroup.grantWrite(schedulerRole);
    const schedulesArn = stack.formatArn({
      service: "scheduler",
      resource: "schedule",
      resourceName: `${scheduleGroupName}/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    schedulerRole.addToPrincipalPolicy(
      // GetSchedule: on a revoke the scheduler reads a schedule (whose task is it?) before deleting it.
      new PolicyStatement({
        actions: ["scheduler:CreateSchedule", "scheduler:DeleteSchedule", "scheduler:GetSchedule"],
        resources: [schedulesArn],
      }),
    );
    Validations.of(schedulerRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${flattenForNag(stack.resolve(schedulesArn))}]`,
      reason:
        "Schedule names are per task and only known at run time; the wildcard is confined to this " +
        "construct's own schedule group (schedule/<group>/*).",
    });
    schedulerRole.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ["iam:PassRole"],
        resources: [scheduleRole.roleArn],
        conditions: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
      }),
    );
    intakeQueue.grant(schedulerRole, "sqs:SendMessage");
    const schedulerFunction = new NodejsFunction(this, "SchedulerFunction", {
      description: "celery-edge scheduler: far-ETA tasks via EventBridge Scheduler",
      entry: SCHEDULER_ENTRY,
      handler: "handler",
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: LOCK_FILE,
      runtime: Runtime.NODEJS_24_X,
      architecture: config.architecture,
      memorySize: config.memorySize,
      timeout: SCHEDULER_TIMEOUT,
      role: schedulerRole,
      logGroup: schedulerLogGroup,
      bundling: bundlingOptions(config.bundleAwsSdk, false),
      environment: {
        ...schedulerEnvironment({
          intakeQueueUrl: intakeQueue.queueUrl,
          schedulerQueueArn: schedulerQueue.queueArn,
          scheduleGroup: scheduleGroup.ref,
          schedulerRoleArn: scheduleRole.roleArn,
          scheduleDlqArn: scheduleDeadLetterQueue.queueArn,
          parkThresholdSeconds: config.parkThreshold.toSeconds(),
          leadSeconds: config.scheduleLeadTime.toSeconds(),
          policyJson: relayPolicy,
          // The relay forwards park requests and revokes; fired schedules arrive as the schedule
          // role. Both carry the original sender, and only a schedule's own record may say "release".
          trustedForwardersJson: stack.toJsonString([relayRole.roleId, scheduleRole.roleId]),
          maxReceiveCount: SCHEDULER_MAX_RECEIVE_COUNT,
          eventBusName,
        }),
        POWERTOOLS_SERVICE_NAME: SCHEDULER_SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: config.metricsNamespace,
        POWERTOOLS_LOG_LEVEL: config.logLevel,
        NODE_OPTIONS: "--enable-source-maps",
      },
    });
    schedulerFunction.addEventSource(
      new SqsEventSource(schedulerQueue, { batchSize: 10, reportBatchItemFailures: true }),
    );
    // Exactly events:PutEvents on the bus's ARN, for both functions: both report lifecycle events.
    props.eventBus?.grantPutEventsTo(relayRole);
    props.eventBus?.grantPutEventsTo(schedulerRole);

    // Alarms and outputs -------------------------------------------------------------------
    const deadLetterQueueAlarm = depthAlarm(this, "DeadLetterQueueAlarm", deadLetterQueue, "relay dead-letter queue");
    const schedulerDeadLetterQueueAlarm = depthAlarm(
      this,
      "SchedulerDeadLetterQueueAlarm",
      schedulerDeadLetterQueue,
      "scheduler dead-letter queue",
    );
    const scheduleDeadLetterQueueAlarm = depthAlarm(
      this,
      "ScheduleDeadLetterQueueAlarm",
      scheduleDeadLetterQueue,
      "EventBridge Scheduler target dead-letter queue",
    );
    const oldestMessageAgeAlarm = new Alarm(this, "OldestMessageAgeAlarm", {
      alarmDescription: `celery-edge: the oldest message on the intake queue is ${config.oldestMessageAgeThreshold.toHumanString()} old or more; the relay is not keeping up or the broker is unreachable`,
      metric: intakeQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: "Maximum" }),
      threshold: config.oldestMessageAgeThreshold.toSeconds(),
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    const schedulerOldestMessageAgeAlarm = new Alarm(this, "SchedulerOldestMessageAgeAlarm", {
      alarmDescription: `celery-edge: the oldest message on the scheduler queue is ${config.schedulerOldestMessageAgeThreshold.toHumanString()} old or more; fired schedules come ${config.scheduleLeadTime.toHumanString()} before their ETA, so released tasks will run late (see the scheduler's errors and logs)`,
      metric: schedulerQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: Stats.MAXIMUM }),
      threshold: config.schedulerOldestMessageAgeThreshold.toSeconds(),
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    // Lambda's Errors and the relay's Failed count see different faults, so both are alarmed.
    // Errors: an invocation failed as a whole (timeout, crash, broker secret unreadable); a timeout
    // or a crash ends it before it prints any count, so Failed cannot see it. Record failures never
    // count here: the functions report them per record (throwOnFullBatchFailure: false).
    const relayErrorsAlarm = errorsAlarm(this, "RelayErrorsAlarm", relayFunction, "relay");
    const schedulerErrorsAlarm = errorsAlarm(this, "SchedulerErrorsAlarm", schedulerFunction, "scheduler");
    // Failed: records the broker did not take (unreachable, connection lost). They back off for
    // hours before they are dead-lettered, and SQS's ApproximateAgeOfOldestMessage skips a message
    // received three times or more, so during a long outage neither the DLQ nor the age alarm
    // speaks. Two periods in a row: a blip retried within the backoff's first minutes stays quiet.
    const relayFailuresAlarm = new Alarm(this, "RelayFailuresAlarm", {
      alarmDescription:
        "celery-edge: the relay failed to publish records to the broker in each of the last two 5-minute periods; " +
        "they are retried with backoff, but the broker is likely unreachable (see the relay's logs)",
      metric: this.metricRelay("Failed"),
      threshold: 1,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    const alarms = [
      deadLetterQueueAlarm,
      schedulerDeadLetterQueueAlarm,
      scheduleDeadLetterQueueAlarm,
      oldestMessageAgeAlarm,
      schedulerOldestMessageAgeAlarm,
      relayErrorsAlarm,
      relayFailuresAlarm,
      schedulerErrorsAlarm,
    ];
    for (const alarm of alarms) {
      alarm.addAlarmAction(...config.alarmActions);
      alarm.addOkAction(...config.okActions);
    }

    new CfnOutput(this, "IntakeQueueUrl", { description: "Producers send task envelopes here", value: intakeQueue.queueUrl });
    new CfnOutput(this, "DeadLetterQueueUrl", { description: "Envelopes the relay gave up on", value: deadLetterQueue.queueUrl });
    new CfnOutput(this, "SchedulerQueueUrl", { description: "Far-ETA tasks waiting to be scheduled", value: schedulerQueue.queueUrl });
    new CfnOutput(this, "SchedulerDeadLetterQueueUrl", { description: "Messages the scheduler gave up on", value: schedulerDeadLetterQueue.queueUrl });
    new CfnOutput(this, "ScheduleDeadLetterQueueUrl", { description: "Schedules EventBridge Scheduler failed to deliver", value: scheduleDeadLetterQueue.queueUrl });

    this.intakeQueue = intakeQueue;
    this.deadLetterQueue = deadLetterQueue;
    this.schedulerQueue = schedulerQueue;
    this.schedulerDeadLetterQueue = schedulerDeadLetterQueue;
    this.scheduleDeadLetterQueue = scheduleDeadLetterQueue;
    this.relayFunction = relayFunction;
    this.schedulerFunction = schedulerFunction;
    this.scheduleGroupName = scheduleGroupName;
    this.scheduleGroupArn = scheduleGroup.attrArn;
    this.scheduleRole = scheduleRole;
    this.deadLetterQueueAlarm = deadLetterQueueAlarm;
    this.schedulerDeadLetterQueueAlarm = schedulerDeadLetterQueueAlarm;
    this.scheduleDeadLetterQueueAlarm = scheduleDeadLetterQueueAlarm;
    this.oldestMessageAgeAlarm = oldestMessageAgeAlarm;
    this.schedulerOldestMessageAgeAlarm = schedulerOldestMessageAgeAlarm;
    this.relayErrorsAlarm = relayErrorsAlarm;
    this.relayFailuresAlarm = relayFailuresAlarm;
    this.schedulerErrorsAlarm = schedulerErrorsAlarm;
    this.alarms = alarms;
    this.eventBus = props.eventBus;
  }

  /**
   * One of the relay's per-record counts (`Relayed`, `Parked`, `Rejected`, `Failed`), summed over
   * 5 minutes unless `options` says otherwise: for dashboards and alarms of your own.
   */
  public metricRelay(name: RelayMetricName, options: MetricOptions = {}): IMetric {
    return new Metric({
      namespace: this.metricsNamespace,
      metricName: name,
      // Powertools Metrics' default dimension: POWERTOOLS_SERVICE_NAME.
      dimensionsMap: { service: RELAY_SERVICE_NAME },
      statistic: Stats.SUM,
      period: FAILURE_ALARM_PERIOD,
      ...options,
    });
  }

  /**
   * Lets `grantee` (a producer Lambda, a role) send task envelopes to the intake queue: exactly
   * `sqs:SendMessage`, which also authorizes SendMessageBatch, the only call the SDK makes. The
   * queue URL comes from configuration, so GetQueueUrl and GetQueueAttributes are not granted.
   */
  public grantSend(grantee: IGrantable): Grant {
    return this.intakeQueue.grant(grantee, "sqs:SendMessage");
  }
}

interface ResolvedProps {
  /** The policy as the functions get it: defaults filled in, tokens left in place. */
  readonly policy: RelayPolicy;
  readonly batchSize: number;
  readonly maxBatchingWindow: Duration | undefined;
  readonly maxConcurrency: number;
  readonly parkThreshold: Duration;
  readonly scheduleLeadTime: Duration;
  readonly memorySize: number;
  readonly architecture: Architecture;
  readonly logRetention: RetentionDays;
  readonly logLevel: RelayLogLevel;
  readonly relayTimeout: Duration;
  readonly maxReceiveCount: number;
  readonly retryBase: Duration;
  readonly retryMax: Duration;
  readonly intakeVisibilityTimeout: Duration;
  readonly intakeRetentionPeriod: Duration;
  readonly oldestMessageAgeThreshold: Duration;
  readonly schedulerOldestMessageAgeThreshold: Duration;
  readonly alarmActions: IAlarmAction[];
  readonly okActions: IAlarmAction[];
  readonly metricsNamespace: string;
  readonly bundleAwsSdk: boolean;
  /** `brokerTransportOptions` as the relay reads them (JSON), or undefined. */
  readonly brokerTransportOptionsJson: string | undefined;
  readonly brokerType: "rabbitmq" | "redis";
}

const SCHEDULE_GROUP_NAME = /^[0-9A-Za-z._-]{1,64}$/;
const LOG_LEVELS: readonly RelayLogLevel[] = ["DEBUG", "INFO", "WARN", "ERROR"];
/** CloudWatch's rule for a namespace; `AWS/` is reserved for AWS services. */
const METRICS_NAMESPACE = /^[0-9A-Za-z.\-_/#: ]{1,255}$/;

function invalid(prop: string, value: unknown, rule: string): ConfigurationError {
  const shown = value instanceof Duration ? value.toHumanString() : JSON.stringify(value);
  return new ConfigurationError(`CeleryRelay: ${prop} ${rule}, got ${shown}`, { code: "ERR_INVALID_OPTION" });
}

function integerIn(prop: string, value: number, min: number, max: number): number {
  if (Token.isUnresolved(value)) return value;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(prop, value, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** Whole seconds in [min, max]; a fraction would be silently truncated by CloudFormation. */
function secondsIn(prop: string, value: Duration, min: number, max: number): Duration {
  if (value.isUnresolved()) return value;
  const millis = value.toMilliseconds();
  if (millis % 1000 !== 0 || millis / 1000 < min || millis / 1000 > max) {
    throw invalid(prop, value, `must be a whole number of seconds from ${min} to ${max}`);
  }
  return value;
}

function resolveProps(props: CeleryRelayProps): ResolvedProps {
  if (!props.vpc && props.vpcSubnets) throw invalid("vpcSubnets", "(subnet selection)", "requires vpc");
  if (!props.vpc && props.securityGroups) throw invalid("securityGroups", `${props.securityGroups.length} group(s)`, "requires vpc");

  if (props.allowedExchanges !== undefined) throw allowedExchangesRemoved(props.allowedExchanges);
  const policy = checkedPolicy(props.policy);
  const brokerTransportOptionsJson = checkedTransportOptions(props.brokerTransportOptions);
  const brokerType = props.brokerType ?? (props.brokerTransportOptions === undefined ? "rabbitmq" : "redis");
  if (brokerType !== "rabbitmq" && brokerType !== "redis") throw invalid("brokerType", brokerType, 'must be "rabbitmq" or "redis"');
  if (brokerType === "rabbitmq" && props.brokerTransportOptions !== undefined) throw invalid("brokerTransportOptions", props.brokerTransportOptions, 'are for brokerType "redis"');

  const maxBatchingWindow = props.maxBatchingWindow && secondsIn("maxBatchingWindow", props.maxBatchingWindow, 0, 300);
  const batchSize = integerIn("batchSize", props.batchSize ?? 10, 1, 10_000);
  if (!Token.isUnresolved(batchSize) && batchSize > 10 && !maxBatchingWindow) {
    throw invalid("batchSize", batchSize, "above 10 requires maxBatchingWindow");
  }

  const parkThreshold = secondsIn("parkThreshold", props.parkThreshold ?? Duration.seconds(DEFAULT_PARK_THRESHOLD_SECONDS), 1, SQS_MAX_DELAY_SECONDS);
  const defaultLead = Duration.seconds(DEFAULT_LEAD_SECONDS);
  const scheduleLeadTime = secondsIn(
    "scheduleLeadTime",
    props.scheduleLeadTime ??
      (parkThreshold.isUnresolved() || parkThreshold.toSeconds() >= defaultLead.toSeconds() ? defaultLead : parkThreshold),
    1,
    parkThreshold.isUnresolved() ? SQS_MAX_DELAY_SECONDS : parkThreshold.toSeconds(),
  );

  const logLevel = props.logLevel ?? "INFO";
  if (!LOG_LEVELS.includes(logLevel)) throw invalid("logLevel", logLevel, `must be one of ${LOG_LEVELS.join(", ")}`);

  const scheduleGroupName = props.scheduleGroupName;
  if (scheduleGroupName !== undefined && !Token.isUnresolved(scheduleGroupName) && !SCHEDULE_GROUP_NAME.test(scheduleGroupName)) {
    throw invalid("scheduleGroupName", scheduleGroupName, "must be 1 to 64 of [0-9A-Za-z._-]");
  }

  const metricsNamespace = props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE;
  if (!Token.isUnresolved(metricsNamespace) && (!METRICS_NAMESPACE.test(metricsNamespace) || metricsNamespace.startsWith("AWS/"))) {
    throw invalid("metricsNamespace", metricsNamespace, "must be 1 to 255 of [0-9A-Za-z.-_/#: ] and not start with AWS/");
  }
  const alarmActions = props.alarmActions ?? [];

  const relayTimeout = secondsIn("relayTimeout", props.relayTimeout ?? Duration.seconds(30), 1, 900);
  const maxReceiveCount = integerIn("maxReceiveCount", props.maxReceiveCount ?? 30, 1, 1000);
  const retryBase = secondsIn("retryBackoff.base", props.retryBackoff?.base ?? Duration.seconds(DEFAULT_RETRY_BACKOFF.baseSeconds), 1, MAX_VISIBILITY_SECONDS);
  const retryMax = secondsIn(
    "retryBackoff.max",
    props.retryBackoff?.max ?? Duration.seconds(DEFAULT_RETRY_BACKOFF.maxSeconds),
    retryBase.isUnresolved() ? 1 : retryBase.toSeconds(),
    MAX_VISIBILITY_SECONDS,
  );
  const intakeVisibilityTimeout = visibilityTimeoutFor(relayTimeout, maxBatchingWindow);
  const intakeRetentionPeriod = secondsIn("intakeRetentionPeriod", props.intakeRetentionPeriod ?? DEFAULT_INTAKE_RETENTION, 60, 1_209_600);
  const span = retrySpanSeconds({ parkThreshold, visibilityTimeout: intakeVisibilityTimeout, retryBase, retryMax, maxReceiveCount });
  if (span !== undefined && !intakeRetentionPeriod.isUnresolved() && intakeRetentionPeriod.toSeconds() <= span) {
    throw invalid(
      "intakeRetentionPeriod",
      intakeRetentionPeriod,
      `must exceed the ${Duration.seconds(span).toHumanString()} a message can spend on the intake queue before it is ` +
        `dead-lettered (parkThreshold + ${maxReceiveCount} receives at retryBackoff up to ${retryMax.toHumanString()}), ` +
        "or it would expire while still being retried; lower maxReceiveCount or retryBackoff.max, or raise intakeRetentionPeriod (at most 14 days)",
    );
  }

  return {
    policy,
    batchSize,
    maxBatchingWindow,
    maxConcurrency: integerIn("maxConcurrency", props.maxConcurrency ?? 5, 2, 1000),
    parkThreshold,
    scheduleLeadTime,
    memorySize: integerIn("memorySize", props.memorySize ?? 256, 128, 10_240),
    architecture: props.architecture ?? Architecture.ARM_64,
    logRetention: props.logRetention ?? RetentionDays.ONE_MONTH,
    logLevel,
    relayTimeout,
    maxReceiveCount,
    retryBase,
    retryMax,
    intakeVisibilityTimeout,
    intakeRetentionPeriod,
    oldestMessageAgeThreshold: secondsIn(
      "oldestMessageAgeThreshold",
      props.oldestMessageAgeThreshold ?? Duration.minutes(5),
      1,
      1_209_600,
    ),
    schedulerOldestMessageAgeThreshold: secondsIn(
      "schedulerOldestMessageAgeThreshold",
      props.schedulerOldestMessageAgeThreshold ??
        (scheduleLeadTime.isUnresolved() ? Duration.seconds(DEFAULT_LEAD_SECONDS) : Duration.seconds(Math.max(scheduleLeadTime.toSeconds(), MIN_AGE_THRESHOLD_SECONDS))),
      1,
      1_209_600,
    ),
    alarmActions,
    okActions: props.okActions ?? alarmActions,
    metricsNamespace,
    bundleAwsSdk: props.bundleAwsSdk ?? false,
    brokerTransportOptionsJson,
    brokerType,
  };
}

/** Room `brokerTransportOptions` may take in the relay's 4 KB environment, beside the policy. */
const TRANSPORT_OPTIONS_ENV_BUDGET_BYTES = 512;

/** Checks `brokerTransportOptions` as the relay will at cold start; the JSON it is written as. */
function checkedTransportOptions(options: RedisTransportOptions | undefined): string | undefined {
  if (options === undefined) return undefined;
  try {
    redisLayout(options, 0);
  } catch (err) {
    if (!(err instanceof ConfigurationError)) throw err;
    throw new ConfigurationError(`CeleryRelay: ${err.message}`, { code: "ERR_INVALID_OPTION", cause: err });
  }
  const json = JSON.stringify(options);
  const bytes = new TextEncoder().encode(json).length;
  if (bytes > TRANSPORT_OPTIONS_ENV_BUDGET_BYTES) throw invalid("brokerTransportOptions", `${bytes} bytes of JSON`, `must fit in ${TRANSPORT_OPTIONS_ENV_BUDGET_BYTES} bytes of JSON`);
  return json;
}

/**
 * The longest a message can stay on the intake queue before it is dead-lettered: its delivery
 * delay (at most `parkThreshold`), then per receive the longer of the relay's backoff and the
 * queue's visibility timeout (a relay that times out sets no backoff). With the defaults:
 * 900 s + 3 × 180 s + 240 s + 480 s + 25 × 900 s = 24 660 s, about 6.9 h, against 4 days of
 * retention. `undefined` when a token makes it unknowable at synth.
 */
export function retrySpanSeconds(o: {
  parkThreshold: Duration;
  visibilityTimeout: Duration;
  retryBase: Duration;
  retryMax: Duration;
  maxReceiveCount: number;
}): number | undefined {
  const durations = [o.parkThreshold, o.visibilityTimeout, o.retryBase, o.retryMax];
  if (durations.some((d) => d.isUnresolved()) || Token.isUnresolved(o.maxReceiveCount)) return undefined;
  const [visibility, base, max] = [o.visibilityTimeout.toSeconds(), o.retryBase.toSeconds(), o.retryMax.toSeconds()];
  let span = o.parkThreshold.toSeconds();
  for (let receive = 1; receive <= o.maxReceiveCount; receive++) {
    span += Math.max(visibility, Math.min(base * 2 ** (receive - 1), max));
  }
  return span;
}

/**
 * Validates the policy as `resolvePolicy` will at cold start. A token (e.g. `role.roleId`) cannot be
 * checked until deployment: it is validated as a stand-in that passes any string rule, and written
 * unchanged. Top-level keys set to `undefined` are dropped, as JSON drops them on the way to the
 * functions, so synth validates exactly what they will read.
 */
function checkedPolicy(input: RelayPolicy | undefined): RelayPolicy {
  const given = Object.fromEntries(Object.entries(input ?? {}).filter(([, v]) => v !== undefined));
  const policy = { ...DEFAULT_RELAY_POLICY, ...given } as RelayPolicy;
  try {
    resolvePolicy(withoutTokens(policy, ""));
  } catch (err) {
    if (!(err instanceof ConfigurationError)) throw err;
    throw new ConfigurationError(`CeleryRelay: ${err.message}`, { code: "ERR_INVALID_OPTION", cause: err });
  }
  const bytes = new TextEncoder().encode(JSON.stringify(policy)).length;
  if (bytes > POLICY_ENV_BUDGET_BYTES) {
    throw invalid(
      "policy",
      `${bytes} bytes of JSON`,
      `must fit in ${POLICY_ENV_BUDGET_BYTES} bytes of JSON (it shares Lambda's 4 KB environment with the queue URLs); use task-name globs and fewer sender rules`,
    );
  }
  return policy;
}

const TOKEN_STAND_IN = "cdk-token";

/** A copy of `value` with each token replaced by a value that passes the rule at `path`. */
function withoutTokens(value: unknown, path: string): unknown {
  const standIn = /^contentTypes\b/.test(path) ? "application/json" : TOKEN_STAND_IN;
  if (typeof value === "string") return Token.isUnresolved(value) ? standIn : value;
  if (typeof value === "number") return value;
  if (Array.isArray(value)) {
    if (Token.isUnresolved(value)) return [standIn];
    return value.map((v, i) => withoutTokens(v, `${path}[${i}]`));
  }
  if (typeof value === "object" && value !== null) {
    if (Token.isUnresolved(value)) return standIn;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutTokens(v, path ? `${path}.${k}` : k)]));
  }
  return value;
}

/** The `allowedExchanges` → `policy` migration, written out for the exchanges the user passed. */
function allowedExchangesRemoved(allowedExchanges: readonly string[]): ConfigurationError {
  const list = Array.isArray(allowedExchanges) ? allowedExchanges : [];
  const exchanges = list.filter((x) => typeof x === "string" && x !== "" && x !== "celery.pidbox");
  const rules = exchanges.map((x) => `{ exchange: ${JSON.stringify(x)}, routingKeys: ["#"] }`);
  const suggestion =
    `policy: { queues: [{ name: "celery" }${list.includes("") ? " /* and one { name } per queue your tasks are routed to */" : ""}]` +
    (rules.length ? `, exchanges: [${rules.join(", ")}]` : "") +
    " }";
  return new ConfigurationError(
    `CeleryRelay: allowedExchanges is replaced by policy, got ${JSON.stringify(allowedExchanges)}. ` +
      `A policy names the queues, routing keys and task names a sender may use, not just exchanges. Instead write ${suggestion}` +
      (list.includes("celery.pidbox")
        ? `; "celery.pidbox" needs no entry: revokes in Celery's own shape pass (policy.revokes, default true) and nothing else reaches the control plane`
        : "") +
      `. See docs/deploy.md, "Relay policy".`,
    { code: "ERR_INVALID_OPTION" },
  );
}

function visibilityTimeoutFor(functionTimeout: Duration, batchingWindow: Duration | undefined): Duration {
  return Duration.seconds(VISIBILITY_TIMEOUT_FACTOR * functionTimeout.toSeconds() + (batchingWindow?.toSeconds() ?? 0));
}

function secureQueue(
  scope: Construct,
  id: string,
  props: Pick<QueueProps, "visibilityTimeout" | "deadLetterQueue" | "retentionPeriod">,
): Queue {
  return new Queue(scope, id, {
    ...props,
    encryption: QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    maxMessageSizeBytes: SQS_MAX_MESSAGE_BYTES,
  });
}

/** A function role with no managed policies: each grant is added explicitly and scoped. */
function lambdaRole(scope: Construct, id: string, description: string): Role {
  return new Role(scope, id, { description, assumedBy: new ServicePrincipal("lambda.amazonaws.com") });
}

function bundlingOptions(bundleAwsSdk: boolean, redis: boolean): BundlingOptions {
  return {
    // functions/relay/broker.ts: false drops the Redis transport and node-redis from the bundle.
    define: { CELERY_EDGE_RELAY_REDIS: JSON.stringify(redis) },
    forceDockerBundling: false,
    format: OutputFormat.ESM,
    target: "node24",
    mainFields: ["module", "main"],
    minify: true,
    sourceMap: true,
    sourcesContent: false,
    // CommonJS dependencies (amqplib) call require(); an ES module has none until it is made.
    banner: "import { createRequire as __celeryEdgeCreateRequire } from 'node:module'; const require = __celeryEdgeCreateRequire(import.meta.url);",
    // The nodejs24.x runtime ships AWS SDK v3; bundling it would triple the bundle.
    externalModules: bundleAwsSdk ? [] : ["@aws-sdk/*", "@smithy/*"],
  };
}

function depthAlarm(scope: Construct, id: string, queue: IQueue, what: string): Alarm {
  return new Alarm(scope, id, {
    alarmDescription: `celery-edge: the ${what} has messages; inspect and redrive them`,
    metric: queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: "Maximum" }),
    threshold: 1,
    evaluationPeriods: 1,
    comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    treatMissingData: TreatMissingData.NOT_BREACHING,
  });
}

/**
 * Any failed invocation of `fn` within 5 minutes. With per-record failure reports an invocation fails
 * only when the function itself cannot run, so every one is worth a look.
 */
function errorsAlarm(scope: Construct, id: string, fn: IFunction, what: string): Alarm {
  return new Alarm(scope, id, {
    alarmDescription: `celery-edge: ${what} invocations failed as a whole (timeout, crash or configuration), so their batches went back to the queue unfinished (see the ${what}'s logs)`,
    metric: fn.metricErrors({ period: FAILURE_ALARM_PERIOD, statistic: Stats.SUM }),
    threshold: 1,
    evaluationPeriods: 1,
    comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    treatMissingData: TreatMissingData.NOT_BREACHING,
  });
}

/** The form cdk-nag gives a resolved CloudFormation value in a finding id (`<Ref>`, `<Id.Attr>`). */
function flattenForNag(value: unknown): string {
  if (typeof value === "string") return value;
  const node = value as Record<string, unknown>;
  if (Array.isArray(node["Fn::Join"])) {
    const [delimiter, parts] = node["Fn::Join"] as [string, unknown[]];
    return parts.map(flattenForNag).join(delimiter);
  }
  if (typeof node.Ref === "string") return `<${node.Ref}>`;
  if (Array.isArray(node["Fn::GetAtt"])) return `<${(node["Fn::GetAtt"] as string[]).join(".")}>`;
  return JSON.stringify(value);
}
