/**
 * @module
 * `CeleryEdgeStack`, the one stack of the app `cdk.json` runs (infra/app.ts), and how that app's
 * settings are read from CDK context or the environment. Synthesizes offline: no context lookups,
 * no AWS credentials.
 */
import { Stack, type StackProps } from "aws-cdk-lib";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import { EventBus } from "aws-cdk-lib/aws-events";
import { Secret } from "aws-cdk-lib/aws-secretsmanager";
import { Topic, type ITopic } from "aws-cdk-lib/aws-sns";
import type { Construct, Node } from "constructs";
import { ConfigurationError } from "../sdk/errors.js";
import { AlarmTopic } from "./alarm-topic.js";
import { CeleryRelay, type RelayPolicy } from "./celery-relay.js";

export interface CeleryEdgeStackProps extends StackProps {
  /** Name of the Secrets Manager secret holding the broker connection. */
  readonly brokerSecretName: string;
  /**
   * What senders may put on the broker.
   * @default - the construct's default policy
   */
  readonly policy?: RelayPolicy;
  /**
   * Email addresses told of every alarm (and of its return to OK), through a new encrypted topic.
   * @default - no topic is created
   */
  readonly alarmEmails?: readonly string[];
  /**
   * ARN of an existing SNS topic told of every alarm. Not with `alarmEmails`.
   * @default - none
   */
  readonly alarmTopicArn?: string;
  /**
   * Name or ARN of the EventBridge bus for task lifecycle events (`default` for the account's).
   * @default - no events are put
   */
  readonly eventBus?: string;
}

/** The app's stack: a `CeleryRelay`, and the alarm topic when one was asked for. */
export class CeleryEdgeStack extends Stack {
  public readonly relay: CeleryRelay;
  /** Where the alarms go, when `alarmEmails` or `alarmTopicArn` was given. */
  public readonly alarmTopic?: ITopic;

  constructor(scope: Construct, id: string, props: CeleryEdgeStackProps) {
    super(scope, id, { description: "celery-edge: SQS intake queue, relay to RabbitMQ and far-ETA scheduler", ...props });
    if (props.alarmEmails?.length && props.alarmTopicArn) {
      throw new ConfigurationError(
        `CeleryEdgeStack: alarmEmails and alarmTopicArn are exclusive, got both (subscribe the addresses to ${props.alarmTopicArn} instead)`,
        { code: "ERR_INVALID_OPTION" },
      );
    }
    const alarmTopic = props.alarmTopicArn
      ? Topic.fromTopicArn(this, "AlarmTopic", props.alarmTopicArn)
      : props.alarmEmails?.length
        ? new AlarmTopic(this, "Alarms", { emails: props.alarmEmails }).topic
        : undefined;
    const eventBus = props.eventBus
      ? props.eventBus.startsWith("arn:")
        ? EventBus.fromEventBusArn(this, "EventBus", props.eventBus)
        : EventBus.fromEventBusName(this, "EventBus", props.eventBus)
      : undefined;
    this.relay = new CeleryRelay(this, "Relay", {
      brokerSecret: Secret.fromSecretNameV2(this, "BrokerSecret", props.brokerSecretName),
      policy: props.policy,
      alarmActions: alarmTopic ? [new SnsAction(alarmTopic)] : undefined,
      eventBus,
    });
    this.alarmTopic = alarmTopic;
  }
}

/**
 * The app's settings, each from `-c name=…` (or `cdk.json`'s context), else an environment variable,
 * else its default. `-c` values arrive as strings, `cdk.json` values as JSON; either is accepted.
 *
 * | context | environment | |
 * | --- | --- | --- |
 * | `brokerSecretName` | `CELERY_EDGE_BROKER_SECRET_NAME` | default `celery-edge/broker` |
 * | `relayPolicy` | `CELERY_EDGE_RELAY_POLICY` | JSON; default policy |
 * | `alarmEmail` | `CELERY_EDGE_ALARM_EMAIL` | one address or several, comma-separated |
 * | `alarmTopicArn` | `CELERY_EDGE_ALARM_TOPIC_ARN` | an existing topic |
 * | `eventBus` | `CELERY_EDGE_EVENT_BUS` | a bus name or ARN |
 */
export function settingsFromContext(node: Node, env: Record<string, string | undefined> = process.env): CeleryEdgeStackProps {
  const read = (key: string, variable: string): unknown => {
    const value = node.tryGetContext(key) ?? env[variable];
    return value === "" ? undefined : value;
  };
  const text = (key: string, variable: string): string | undefined => {
    const value = read(key, variable);
    if (value === undefined || typeof value === "string") return value;
    throw new ConfigurationError(`${key} (context or ${variable}) must be a string, got ${JSON.stringify(value)}`, { code: "ERR_INVALID_OPTION" });
  };
  const emails = read("alarmEmail", "CELERY_EDGE_ALARM_EMAIL");
  return {
    brokerSecretName: text("brokerSecretName", "CELERY_EDGE_BROKER_SECRET_NAME") ?? "celery-edge/broker",
    policy: relayPolicy(read("relayPolicy", "CELERY_EDGE_RELAY_POLICY")),
    alarmEmails:
      emails === undefined
        ? undefined
        : (Array.isArray(emails) ? emails.map(String) : String(emails).split(",")).map((e) => e.trim()).filter((e) => e !== ""),
    alarmTopicArn: text("alarmTopicArn", "CELERY_EDGE_ALARM_TOPIC_ARN"),
    eventBus: text("eventBus", "CELERY_EDGE_EVENT_BUS"),
  };
}

/** The construct validates the policy; this only turns a JSON string into a value. */
function relayPolicy(value: unknown): RelayPolicy | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string") return value as RelayPolicy;
  try {
    return JSON.parse(value) as RelayPolicy;
  } catch (err) {
    throw new ConfigurationError(`relayPolicy (context or CELERY_EDGE_RELAY_POLICY) must be JSON, got ${JSON.stringify(value.slice(0, 80))}`, {
      code: "ERR_INVALID_OPTION",
      cause: err,
    });
  }
}
