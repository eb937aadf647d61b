/**
 * @module
 * `CeleryRelay`: the AWS half of celery-edge. Producers send Celery envelopes to an SQS intake
 * queue; the relay function republishes them to RabbitMQ; tasks due further out than SQS can delay
 * are parked in EventBridge Scheduler by the scheduler function and come back through the intake
 * queue when due.
 */
import { fileURLToPath } from "node:url";
import { ArnFormat, CfnOutput, Duration, Names, Stack, Token, Validations } from "aws-cdk-lib";
import { Alarm, ComparisonOperator, TreatMissingData, type IAlarm } from "aws-cdk-lib/aws-cloudwatch";
import type { ISecurityGroup, IVpc, SubnetSelection } from "aws-cdk-lib/aws-ec2";
import { PolicyStatement, Role, ServicePrincipal, type Grant, type IGrantable, type IRole } from "aws-cdk-lib/aws-iam";
import { Architecture, Runtime, type IFunction } from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import { NodejsFunction, OutputFormat, type BundlingOptions } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { CfnScheduleGroup } from "aws-cdk-lib/aws-scheduler";
import type { ISecret } from "aws-cdk-lib/aws-secretsmanager";
import { Queue, QueueEncryption, type IQueue, type QueueProps } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { ConfigurationError } from "../sdk/errors.js";

/** SQS's largest message (1 MiB since August 2025; it was 256 KiB). Set explicitly, never inherited. */
export const SQS_MAX_MESSAGE_BYTES = 1_048_576;
/** SQS `DelaySeconds` tops out at 15 minutes, so nothing may wait on the intake queue longer. */
const MAX_PARK_THRESHOLD_SECONDS = 900;
/** AWS Lambda guidance: visibility timeout ≥ 6 × function timeout + batching window. */
const VISIBILITY_TIMEOUT_FACTOR = 6;
const SCHEDULER_TIMEOUT = Duration.seconds(30);
const DLQ_RETENTION = Duration.days(14);

const PROJECT_ROOT = fileURLToPath(new URL("..", import.meta.url));
const LOCK_FILE = fileURLToPath(new URL("../package-lock.json", import.meta.url));
const RELAY_ENTRY = fileURLToPath(new URL("../functions/relay/handler.ts", import.meta.url));
const SCHEDULER_ENTRY = fileURLToPath(new URL("../functions/scheduler/handler.ts", import.meta.url));

/** Log level of both functions (Powertools Logger). */
export type RelayLogLevel = "DEBUG" | "INFO" | "WARN" | "ERROR";

export interface CeleryRelayProps {
  /**
   * Secrets Manager secret with the broker connection. Its SecretString is an `amqp(s)://` URL,
   * JSON `{"url": "amqps://user:pass@host:5671/vhost"}`, or JSON
   * `{"username", "password", "host", "port", "vhost", "scheme"}`. Only its ARN (or name) reaches
   * the template; the relay reads the value at cold start.
   */
  readonly brokerSecret: ISecret;
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
   * Exchanges the relay will publish to; envelopes naming any other exchange are dead-lettered.
   * `""` is the AMQP default exchange Celery uses for direct routing to a queue.
   * @default ["", "celery.pidbox"]
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
   * Deliveries of a message before it is moved to its dead-letter queue (1–1000).
   * @default 5
   */
  readonly maxReceiveCount?: number;
  /**
   * Age of the oldest intake message that raises `oldestMessageAgeAlarm`.
   * @default Duration.minutes(5)
   */
  readonly oldestMessageAgeThreshold?: Duration;
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
  /** Every alarm above, to wire to an SNS topic in one loop. */
  public readonly alarms: readonly IAlarm[];

  constructor(scope: Construct, id: string, props: CeleryRelayProps) {
    super(scope, id);
    const config = resolveProps(props);
    const stack = Stack.of(this);

    // Queues -------------------------------------------------------------------------------
    const deadLetterQueue = secureQueue(this, "DeadLetterQueue", { retentionPeriod: DLQ_RETENTION });
    const intakeQueue = secureQueue(this, "IntakeQueue", {
      visibilityTimeout: visibilityTimeoutFor(config.relayTimeout, config.maxBatchingWindow),
      deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount: config.maxReceiveCount },
    });
    const schedulerDeadLetterQueue = secureQueue(this, "SchedulerDeadLetterQueue", { retentionPeriod: DLQ_RETENTION });
    const schedulerQueue = secureQueue(this, "SchedulerQueue", {
      visibilityTimeout: visibilityTimeoutFor(SCHEDULER_TIMEOUT, undefined),
      deadLetterQueue: { queue: schedulerDeadLetterQueue, maxReceiveCount: config.maxReceiveCount },
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

    // Relay function -----------------------------------------------------------------------
    const relayLogGroup = new LogGroup(this, "RelayLogGroup", { retention: config.logRetention });
    const relayRole = lambdaRole(this, "RelayRole", "celery-edge relay: SQS intake to RabbitMQ");
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
      bundling: bundlingOptions(config.bundleAwsSdk),
      environment: {
        // A full ARN when known; an imported-by-name secret's ARN ends in a `-??????` pattern
        // that GetSecretValue rejects, so its name is passed instead (SecretId takes either).
        BROKER_SECRET_ARN: props.brokerSecret.secretFullArn ?? props.brokerSecret.secretName,
        ALLOWED_EXCHANGES: JSON.stringify(config.allowedExchanges),
        PARK_QUEUE_URL: schedulerQueue.queueUrl,
        PARK_THRESHOLD_SECONDS: String(config.parkThreshold.toSeconds()),
        POWERTOOLS_SERVICE_NAME: "celery-edge-relay",
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
    const schedulerRole = lambdaRole(this, "SchedulerRole", "celery-edge scheduler: parks far-ETA tasks in EventBridge Scheduler");
    schedulerLogGroup.grantWrite(schedulerRole);
    const schedulesArn = stack.formatArn({
      service: "scheduler",
      resource: "schedule",
      resourceName: `${scheduleGroupName}/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    schedulerRole.addToPrincipalPolicy(
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
      bundling: bundlingOptions(config.bundleAwsSdk),
      environment: {
        INTAKE_QUEUE_URL: intakeQueue.queueUrl,
        SCHEDULER_QUEUE_ARN: schedulerQueue.queueArn,
        SCHEDULE_GROUP: scheduleGroup.ref,
        SCHEDULER_ROLE_ARN: scheduleRole.roleArn,
        SCHEDULE_DLQ_ARN: scheduleDeadLetterQueue.queueArn,
        PARK_THRESHOLD_SECONDS: String(config.parkThreshold.toSeconds()),
        LEAD_SECONDS: String(config.scheduleLeadTime.toSeconds()),
        POWERTOOLS_SERVICE_NAME: "celery-edge-scheduler",
        POWERTOOLS_LOG_LEVEL: config.logLevel,
        NODE_OPTIONS: "--enable-source-maps",
      },
    });
    schedulerFunction.addEventSource(
      new SqsEventSource(schedulerQueue, { batchSize: 10, reportBatchItemFailures: true }),
    );

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
    this.alarms = [deadLetterQueueAlarm, schedulerDeadLetterQueueAlarm, scheduleDeadLetterQueueAlarm, oldestMessageAgeAlarm];
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
  readonly allowedExchanges: string[];
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
  readonly oldestMessageAgeThreshold: Duration;
  readonly bundleAwsSdk: boolean;
}

const EXCHANGE_NAME = /^[A-Za-z0-9._:-]{0,255}$/;
const SCHEDULE_GROUP_NAME = /^[0-9A-Za-z._-]{1,64}$/;
const LOG_LEVELS: readonly RelayLogLevel[] = ["DEBUG", "INFO", "WARN", "ERROR"];

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

  const allowedExchanges = props.allowedExchanges ?? ["", "celery.pidbox"];
  if (allowedExchanges.length === 0) throw invalid("allowedExchanges", allowedExchanges, "must name at least one exchange");
  for (const name of allowedExchanges) {
    if (typeof name !== "string" || Token.isUnresolved(name) || !EXCHANGE_NAME.test(name)) {
      throw invalid("allowedExchanges", name, "entries must be AMQP exchange names (up to 255 of [A-Za-z0-9._:-]; \"\" is the default exchange)");
    }
  }

  const maxBatchingWindow = props.maxBatchingWindow && secondsIn("maxBatchingWindow", props.maxBatchingWindow, 0, 300);
  const batchSize = integerIn("batchSize", props.batchSize ?? 10, 1, 10_000);
  if (!Token.isUnresolved(batchSize) && batchSize > 10 && !maxBatchingWindow) {
    throw invalid("batchSize", batchSize, "above 10 requires maxBatchingWindow");
  }

  const parkThreshold = secondsIn("parkThreshold", props.parkThreshold ?? Duration.minutes(15), 1, MAX_PARK_THRESHOLD_SECONDS);
  const defaultLead = Duration.minutes(2);
  const scheduleLeadTime = secondsIn(
    "scheduleLeadTime",
    props.scheduleLeadTime ??
      (parkThreshold.isUnresolved() || parkThreshold.toSeconds() >= defaultLead.toSeconds() ? defaultLead : parkThreshold),
    1,
    parkThreshold.isUnresolved() ? MAX_PARK_THRESHOLD_SECONDS : parkThreshold.toSeconds(),
  );

  const logLevel = props.logLevel ?? "INFO";
  if (!LOG_LEVELS.includes(logLevel)) throw invalid("logLevel", logLevel, `must be one of ${LOG_LEVELS.join(", ")}`);

  const scheduleGroupName = props.scheduleGroupName;
  if (scheduleGroupName !== undefined && !Token.isUnresolved(scheduleGroupName) && !SCHEDULE_GROUP_NAME.test(scheduleGroupName)) {
    throw invalid("scheduleGroupName", scheduleGroupName, "must be 1 to 64 of [0-9A-Za-z._-]");
  }

  return {
    allowedExchanges,
    batchSize,
    maxBatchingWindow,
    maxConcurrency: integerIn("maxConcurrency", props.maxConcurrency ?? 5, 2, 1000),
    parkThreshold,
    scheduleLeadTime,
    memorySize: integerIn("memorySize", props.memorySize ?? 256, 128, 10_240),
    architecture: props.architecture ?? Architecture.ARM_64,
    logRetention: props.logRetention ?? RetentionDays.ONE_MONTH,
    logLevel,
    relayTimeout: secondsIn("relayTimeout", props.relayTimeout ?? Duration.seconds(30), 1, 900),
    maxReceiveCount: integerIn("maxReceiveCount", props.maxReceiveCount ?? 5, 1, 1000),
    oldestMessageAgeThreshold: secondsIn(
      "oldestMessageAgeThreshold",
      props.oldestMessageAgeThreshold ?? Duration.minutes(5),
      1,
      1_209_600,
    ),
    bundleAwsSdk: props.bundleAwsSdk ?? false,
  };
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

function bundlingOptions(bundleAwsSdk: boolean): BundlingOptions {
  return {
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
