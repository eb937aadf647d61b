/**
 * @module
 * `CeleryRelay` against `aws-cdk-lib/assertions`: every resource and setting, the exact IAM each
 * principal gets, prop validation, and cdk-nag's AWS Solutions pack. Bundling is skipped here
 * (`aws:cdk:bundling-stacks: []`); `synth.test.ts` bundles for real through the CDK CLI.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { App, Duration, Stack, Validations } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import { SecurityGroup, SubnetType, Vpc } from "aws-cdk-lib/aws-ec2";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import { EventBus } from "aws-cdk-lib/aws-events";
import { AccountPrincipal, Role, ServicePrincipal, type CfnRole, type IRole } from "aws-cdk-lib/aws-iam";
import { Key } from "aws-cdk-lib/aws-kms";
import { Architecture, Runtime } from "aws-cdk-lib/aws-lambda";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { Secret } from "aws-cdk-lib/aws-secretsmanager";
import { Topic } from "aws-cdk-lib/aws-sns";
import { Queue, QueueEncryption, type IQueue } from "aws-cdk-lib/aws-sqs";
import { AwsSolutionsChecks } from "cdk-nag";
import { describe, expect, it } from "vitest";
import { CeleryRelay, DEFAULT_RELAY_POLICY, SQS_MAX_MESSAGE_BYTES, retrySpanSeconds, type CeleryRelayProps } from "../../infra/celery-relay.js";
import { relayConfig, schedulerConfig } from "../../functions/shared/config.js";
import { ConfigurationError } from "../../sdk/errors.js";

/** The feature flags `cdk.json` gives the real app, so these tests see the template it deploys. */
const CDK_JSON_CONTEXT = (JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
}).context;
const SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:celery-edge/broker-AbCdEf";

interface Built {
  app: App;
  stack: Stack;
  relay: CeleryRelay;
  template: Template;
}

function newStack(): { app: App; stack: Stack } {
  const app = new App({ context: { ...CDK_JSON_CONTEXT, "aws:cdk:bundling-stacks": [] } });
  return { app, stack: new Stack(app, "Test") };
}

const NO_PROPS: Partial<CeleryRelayProps> = Object.freeze({});
const NO_EXTRAS = (): Partial<CeleryRelayProps> => ({});
let withDefaults: Built | undefined;

/**
 * A stack holding one `CeleryRelay`. With no arguments the same one is returned each time: the tests
 * that take it only read it, and building it once per file spares a third of this file's time.
 */
function build(props: Partial<CeleryRelayProps> = NO_PROPS, extras: (stack: Stack) => Partial<CeleryRelayProps> = NO_EXTRAS): Built {
  if (props === NO_PROPS && extras === NO_EXTRAS) return (withDefaults ??= buildNew(props, extras));
  return buildNew(props, extras);
}

function buildNew(props: Partial<CeleryRelayProps>, extras: (stack: Stack) => Partial<CeleryRelayProps>): Built {
  const { app, stack } = newStack();
  const relay = new CeleryRelay(stack, "Relay", {
    brokerSecret: Secret.fromSecretCompleteArn(stack, "Broker", SECRET_ARN),
    ...props,
    ...extras(stack),
  });
  return { app, stack, relay, template: Template.fromStack(stack) };
}

/** `{"Fn::GetAtt": [...]}` / `{"Ref": ...}` exactly as the template renders a token. */
function cfn(stack: Stack, value: unknown): unknown {
  return stack.resolve(value);
}

function logicalId(stack: Stack, role: IRole): string {
  return stack.getLogicalId(role.node.defaultChild as CfnRole);
}

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}

/** Every statement of every policy attached to `role`, in a canonical order (minimizePolicies may merge and reorder). */
function statementsOf(template: Template, stack: Stack, role: IRole): unknown[] {
  const id = logicalId(stack, role);
  const policies = Object.values(template.findResources("AWS::IAM::Policy")).filter((p) =>
    (p.Properties.Roles as unknown[]).some((r) => JSON.stringify(r) === JSON.stringify({ Ref: id })),
  );
  return canonical(policies.flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]));
}

function canonical(statements: Statement[]): unknown[] {
  const sortArr = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]).map((x) => JSON.stringify(x)).sort().map((x) => JSON.parse(x));
  return statements
    .map((s) => ({ Effect: s.Effect, Action: sortArr(s.Action), Resource: sortArr(s.Resource), ...(s.Condition ? { Condition: s.Condition } : {}) }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

const allow = (action: string | string[], resource: unknown, condition?: unknown): Statement => ({
  Effect: "Allow",
  Action: action,
  Resource: resource,
  ...(condition ? { Condition: condition } : {}),
});

const CONSUME_ACTIONS = [
  "sqs:ChangeMessageVisibility",
  "sqs:DeleteMessage",
  "sqs:GetQueueAttributes",
  "sqs:GetQueueUrl",
  "sqs:ReceiveMessage",
];

function queueArn(stack: Stack, queue: IQueue): unknown {
  return cfn(stack, queue.queueArn);
}

function envOf(template: Template, stack: Stack, fn: CeleryRelay["relayFunction"]): Record<string, unknown> {
  const id = stack.getLogicalId(fn.node.defaultChild as never);
  return template.toJSON().Resources[id].Properties.Environment.Variables as Record<string, unknown>;
}

/** The role id CloudFormation would give `role`, in the template's own words (`Fn::GetAtt … RoleId`). */
function roleIdOf(stack: Stack, role: IRole): unknown {
  return { "Fn::GetAtt": [logicalId(stack, role), "RoleId"] };
}

/** A stand-in role id for a logical id, shaped like the real ones (`AROA` + 17 characters). */
function fakeRoleId(logical: string): string {
  return `AROA${logical.toUpperCase().replace(/[^A-Z0-9]/g, "").slice(-17)}`;
}

/**
 * What a function would find in `process.env` once deployed: `Fn::Join` joined, each role id a
 * stand-in, each `Ref` (queue URL, group name) a placeholder URL.
 */
function deployedEnv(vars: Record<string, unknown>): Record<string, string> {
  const render = (v: unknown): string => {
    if (typeof v === "string") return v;
    const node = v as Record<string, unknown>;
    if (Array.isArray(node["Fn::Join"])) {
      const [delimiter, parts] = node["Fn::Join"] as [string, unknown[]];
      return parts.map(render).join(delimiter);
    }
    if (Array.isArray(node["Fn::GetAtt"])) {
      const [id, attribute] = node["Fn::GetAtt"] as [string, string];
      return attribute === "RoleId" ? fakeRoleId(id) : `arn:aws:sqs:eu-west-1:123456789012:${id}`;
    }
    if (typeof node.Ref === "string") return `https://sqs.eu-west-1.amazonaws.com/123456789012/${node.Ref}`;
    throw new Error(`cannot render ${JSON.stringify(v)}`);
  };
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, render(v)]));
}

interface Emf {
  _aws: { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string }> }> };
  [key: string]: unknown;
}

/**
 * The EMF line the real Powertools Metrics prints for one count of `metric`, in a fresh Node process
 * whose only configuration is `env` (as a Lambda function's would be).
 */
async function powertoolsEmf(env: Record<string, string>, metric: string): Promise<Emf> {
  const script = [
    'import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";',
    "const metrics = new Metrics();",
    "metrics.addMetric(process.argv[1], MetricUnit.Count, 1);",
    "metrics.publishStoredMetrics();",
  ].join("\n");
  const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script, metric], {
    cwd: new URL("../..", import.meta.url),
    env: { PATH: process.env.PATH ?? "", ...env },
    timeout: 20_000,
  });
  const lines = stdout.trim().split("\n").filter((l) => l.includes('"_aws"'));
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as Emf;
}

describe("CeleryRelay queues", () => {
  it("creates five queues, each SSE-SQS encrypted with the 1 MiB message size set explicitly", () => {
    // Prepare / Act
    const { template } = build();
    // Assess
    const queues = Object.values(template.findResources("AWS::SQS::Queue"));
    expect(queues).toHaveLength(5);
    for (const q of queues) {
      expect(q.Properties).toMatchObject({ SqsManagedSseEnabled: true, MaximumMessageSize: 1_048_576 });
    }
  });

  it("uses the largest message size CDK accepts for SQS, which is 1 MiB", () => {
    const { stack } = newStack();
    expect(SQS_MAX_MESSAGE_BYTES).toBe(1024 * 1024);
    expect(() => new Queue(stack, "AtLimit", { maxMessageSizeBytes: SQS_MAX_MESSAGE_BYTES })).not.toThrow();
    expect(() => new Queue(stack, "OverLimit", { maxMessageSizeBytes: SQS_MAX_MESSAGE_BYTES + 1 })).toThrow(/1,048,576/);
  });

  it("denies non-TLS access to every queue (enforceSSL)", () => {
    const { template } = build();
    const policies = Object.values(template.findResources("AWS::SQS::QueuePolicy"));
    expect(policies).toHaveLength(5);
    for (const p of policies) {
      expect(p.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({
          Effect: "Deny",
          Action: "sqs:*",
          Principal: { AWS: "*" },
          Condition: { Bool: { "aws:SecureTransport": "false" } },
        }),
      );
    }
  });

  it("redrives the intake queue to its DLQ after 30 receives by default, with visibility 6× the relay timeout and 4 days' retention", () => {
    const { template, stack, relay } = build();
    template.hasResourceProperties("AWS::SQS::Queue", {
      VisibilityTimeout: 180,
      MessageRetentionPeriod: 4 * 24 * 3600,
      RedrivePolicy: { deadLetterTargetArn: queueArn(stack, relay.deadLetterQueue), maxReceiveCount: 30 },
    });
  });

  it("keeps the scheduler queue at 5 receives whatever maxReceiveCount the intake queue gets", () => {
    const { template, stack, relay } = build({ maxReceiveCount: 50 });
    template.hasResourceProperties("AWS::SQS::Queue", {
      RedrivePolicy: { deadLetterTargetArn: queueArn(stack, relay.deadLetterQueue), maxReceiveCount: 50 },
    });
    template.hasResourceProperties("AWS::SQS::Queue", {
      RedrivePolicy: { deadLetterTargetArn: queueArn(stack, relay.schedulerDeadLetterQueue), maxReceiveCount: 5 },
    });
  });

  it("computes the longest retry span from the delivery delay, the visibility floor and the doubling backoff", () => {
    // 900 s delay, receives 1-3 at the 180 s visibility floor, 240 s, 480 s, then 25 × 900 s.
    expect(
      retrySpanSeconds({
        parkThreshold: Duration.minutes(15),
        visibilityTimeout: Duration.seconds(180),
        retryBase: Duration.seconds(30),
        retryMax: Duration.minutes(15),
        maxReceiveCount: 30,
      }),
    ).toBe(900 + 3 * 180 + 240 + 480 + 25 * 900);
  });

  it("accepts a long retry span when intakeRetentionPeriod is raised to cover it", () => {
    // 1000 receives at up to 15 min is over 10 days: more than the default 4 days, less than 14.
    const { template, stack, relay } = build({ maxReceiveCount: 1000, intakeRetentionPeriod: Duration.days(14) });
    template.hasResourceProperties("AWS::SQS::Queue", {
      MessageRetentionPeriod: 14 * 24 * 3600,
      RedrivePolicy: { deadLetterTargetArn: queueArn(stack, relay.deadLetterQueue), maxReceiveCount: 1000 },
    });
  });

  it("adds the batching window to the intake visibility timeout and honours maxReceiveCount", () => {
    const { template, stack, relay } = build({
      relayTimeout: Duration.seconds(60),
      maxBatchingWindow: Duration.seconds(10),
      maxReceiveCount: 3,
    });
    template.hasResourceProperties("AWS::SQS::Queue", {
      VisibilityTimeout: 6 * 60 + 10,
      RedrivePolicy: { deadLetterTargetArn: queueArn(stack, relay.deadLetterQueue), maxReceiveCount: 3 },
    });
  });

  it("redrives the scheduler queue to its own DLQ, with visibility 6× the scheduler timeout", () => {
    const { template, stack, relay } = build();
    template.hasResourceProperties("AWS::SQS::Queue", {
      VisibilityTimeout: 180,
      RedrivePolicy: { deadLetterTargetArn: queueArn(stack, relay.schedulerDeadLetterQueue), maxReceiveCount: 5 },
    });
  });

  it("keeps dead letters for the SQS maximum of 14 days", () => {
    const { template } = build();
    const dlqs = Object.values(template.findResources("AWS::SQS::Queue")).filter((q) => q.Properties.RedrivePolicy === undefined);
    expect(dlqs).toHaveLength(3);
    for (const q of dlqs) expect(q.Properties.MessageRetentionPeriod).toBe(14 * 24 * 3600);
  });

  it("outputs the URL of every queue", () => {
    const { template, stack, relay } = build();
    const values = Object.values(template.findOutputs("*")).map((o) => JSON.stringify(o.Value));
    const queues = [relay.intakeQueue, relay.deadLetterQueue, relay.schedulerQueue, relay.schedulerDeadLetterQueue, relay.scheduleDeadLetterQueue];
    expect(values.sort()).toEqual(queues.map((q) => JSON.stringify(cfn(stack, q.queueUrl))).sort());
  });
});

describe("CeleryRelay relay function", () => {
  it("runs the newest Node.js runtime this aws-cdk-lib knows, on arm64, with 256 MiB and a 30 s timeout", () => {
    const { template } = build();
    const newestNode = Runtime.ALL.filter((r) => /^nodejs\d+\.x$/.test(r.name))
      .map((r) => r.name)
      .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
      .pop();
    expect(newestNode).toBe("nodejs24.x");
    template.hasResourceProperties("AWS::Lambda::Function", {
      Description: Match.stringLikeRegexp("relay"),
      Runtime: newestNode,
      Architectures: ["arm64"],
      MemorySize: 256,
      Timeout: 30,
      Handler: "index.handler",
    });
  });

  it("passes exactly the documented environment, with the secret's ARN and never a broker URL", () => {
    const { template, stack, relay } = build();
    expect(envOf(template, stack, relay.relayFunction)).toEqual({
      BROKER_SECRET_ARN: SECRET_ARN,
      RELAY_POLICY: JSON.stringify(DEFAULT_RELAY_POLICY),
      TRUSTED_FORWARDERS: { "Fn::Join": ["", ['["', roleIdOf(stack, relay.schedulerFunction.role!), '"]']] },
      INTAKE_QUEUE_URL: cfn(stack, relay.intakeQueue.queueUrl),
      RELAY_RETRY_BASE_SECONDS: "30",
      RELAY_RETRY_MAX_SECONDS: "900",
      PARK_QUEUE_URL: cfn(stack, relay.schedulerQueue.queueUrl),
      PARK_THRESHOLD_SECONDS: "900",
      MAX_RECEIVE_COUNT: "30",
      POWERTOOLS_SERVICE_NAME: "celery-edge-relay",
      POWERTOOLS_METRICS_NAMESPACE: "CeleryEdge",
      POWERTOOLS_LOG_LEVEL: "INFO",
      NODE_OPTIONS: "--enable-source-maps",
    });
    expect(JSON.stringify(template.toJSON())).not.toMatch(/amqps?:\/\//);
  });

  it("passes the secret's name when it was imported by name, because its ARN is then a pattern", () => {
    const { template, stack, relay } = build({}, (s) => ({ brokerSecret: Secret.fromSecretNameV2(s, "ByName", "team/broker") }));
    expect(envOf(template, stack, relay.relayFunction).BROKER_SECRET_ARN).toBe("team/broker");
  });

  it("passes park threshold, log level and retry backoff through to the relay", () => {
    const { template, stack, relay } = build({
      parkThreshold: Duration.minutes(10),
      logLevel: "DEBUG",
      retryBackoff: { base: Duration.seconds(10), max: Duration.hours(1) },
    });
    expect(envOf(template, stack, relay.relayFunction)).toMatchObject({
      PARK_THRESHOLD_SECONDS: "600",
      POWERTOOLS_LOG_LEVEL: "DEBUG",
      RELAY_RETRY_BASE_SECONDS: "10",
      RELAY_RETRY_MAX_SECONDS: "3600",
    });
  });

  it("gives the relay an environment that the relay's own config reads back", () => {
    // Prepare
    const { template, stack, relay } = build({ retryBackoff: { base: Duration.seconds(5) } });
    const env = deployedEnv(envOf(template, stack, relay.relayFunction));
    // Act
    const config = relayConfig(env);
    // Assess
    expect(config).toMatchObject({
      brokerSecretArn: SECRET_ARN,
      trustedForwarders: [fakeRoleId(logicalId(stack, relay.schedulerFunction.role!))],
      intakeQueueUrl: expect.stringContaining(stack.getLogicalId(relay.intakeQueue.node.defaultChild as never)),
      retry: { baseSeconds: 5, maxSeconds: 900 },
      parkThresholdSeconds: 900,
    });
    expect(config.policy.source).toEqual(DEFAULT_RELAY_POLICY);
  });

  it("logs to its own log group, kept one month by default", () => {
    const { template, stack, relay } = build();
    const fn = template.toJSON().Resources[stack.getLogicalId(relay.relayFunction.node.defaultChild as never)];
    const groupId = fn.Properties.LoggingConfig.LogGroup.Ref as string;
    expect(template.toJSON().Resources[groupId]).toMatchObject({ Type: "AWS::Logs::LogGroup", Properties: { RetentionInDays: 30 } });
  });

  it("honours memory, architecture, timeout and log retention props", () => {
    const { template } = build({
      memorySize: 512,
      architecture: Architecture.X86_64,
      relayTimeout: Duration.seconds(45),
      logRetention: RetentionDays.ONE_WEEK,
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Description: Match.stringLikeRegexp("relay"),
      MemorySize: 512,
      Architectures: ["x86_64"],
      Timeout: 45,
    });
    template.resourcePropertiesCountIs("AWS::Logs::LogGroup", { RetentionInDays: 7 }, 2);
  });

  it("consumes the intake queue with batch item failures, batch size 10 and at most 5 concurrent invocations", () => {
    const { template, stack, relay } = build();
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      EventSourceArn: queueArn(stack, relay.intakeQueue),
      FunctionName: cfn(stack, relay.relayFunction.functionName),
      BatchSize: 10,
      FunctionResponseTypes: ["ReportBatchItemFailures"],
      ScalingConfig: { MaximumConcurrency: 5 },
      MaximumBatchingWindowInSeconds: Match.absent(),
    });
  });

  it("passes batch size, batching window and maximum concurrency to the event source", () => {
    const { template, stack, relay } = build({ batchSize: 100, maxBatchingWindow: Duration.seconds(5), maxConcurrency: 20 });
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      EventSourceArn: queueArn(stack, relay.intakeQueue),
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 5,
      ScalingConfig: { MaximumConcurrency: 20 },
      FunctionResponseTypes: ["ReportBatchItemFailures"],
    });
  });

  it("runs in the given VPC subnets with the given security group", () => {
    let sgId = "";
    const { template } = build({}, (s) => {
      const vpc = new Vpc(s, "Vpc", { maxAzs: 2, natGateways: 1 });
      const sg = new SecurityGroup(s, "RelaySg", { vpc });
      sgId = s.getLogicalId(sg.node.defaultChild as never);
      return { vpc, vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS }, securityGroups: [sg] };
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Description: Match.stringLikeRegexp("relay"),
      VpcConfig: {
        SecurityGroupIds: [{ "Fn::GetAtt": [sgId, "GroupId"] }],
        SubnetIds: [{ Ref: Match.stringLikeRegexp("^VpcPrivateSubnet1Subnet") }, { Ref: Match.stringLikeRegexp("^VpcPrivateSubnet2Subnet") }],
      },
    });
  });

  it("keeps the scheduler function out of the VPC", () => {
    const { template } = build({}, (s) => ({ vpc: new Vpc(s, "Vpc", { maxAzs: 2, natGateways: 1 }) }));
    template.hasResourceProperties("AWS::Lambda::Function", {
      Description: Match.stringLikeRegexp("scheduler"),
      VpcConfig: Match.absent(),
    });
  });
});

describe("CeleryRelay scheduler", () => {
  it("creates the scheduler function on the same runtime and consumes its queue with batch item failures", () => {
    const { template, stack, relay } = build();
    template.hasResourceProperties("AWS::Lambda::Function", {
      Description: Match.stringLikeRegexp("scheduler"),
      Runtime: "nodejs24.x",
      Architectures: ["arm64"],
      Handler: "index.handler",
      Timeout: 30,
    });
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      EventSourceArn: queueArn(stack, relay.schedulerQueue),
      FunctionName: cfn(stack, relay.schedulerFunction.functionName),
      FunctionResponseTypes: ["ReportBatchItemFailures"],
    });
  });

  it("passes exactly the documented environment to the scheduler function", () => {
    const { template, stack, relay } = build();
    const groupId = Object.keys(template.findResources("AWS::Scheduler::ScheduleGroup"))[0]!;
    expect(envOf(template, stack, relay.schedulerFunction)).toEqual({
      INTAKE_QUEUE_URL: cfn(stack, relay.intakeQueue.queueUrl),
      SCHEDULER_QUEUE_ARN: queueArn(stack, relay.schedulerQueue),
      SCHEDULE_GROUP: { Ref: groupId },
      SCHEDULER_ROLE_ARN: cfn(stack, relay.scheduleRole.roleArn),
      SCHEDULE_DLQ_ARN: queueArn(stack, relay.scheduleDeadLetterQueue),
      PARK_THRESHOLD_SECONDS: "900",
      LEAD_SECONDS: "120",
      RELAY_POLICY: JSON.stringify(DEFAULT_RELAY_POLICY),
      TRUSTED_FORWARDERS: { "Fn::Join": ["", ['["', roleIdOf(stack, relay.relayFunction.role!), '","', roleIdOf(stack, relay.scheduleRole), '"]']] },
      MAX_RECEIVE_COUNT: "5",
      POWERTOOLS_SERVICE_NAME: "celery-edge-scheduler",
      POWERTOOLS_METRICS_NAMESPACE: "CeleryEdge",
      POWERTOOLS_LOG_LEVEL: "INFO",
      NODE_OPTIONS: "--enable-source-maps",
    });
  });

  it("gives the scheduler an environment that the scheduler's own config reads back", () => {
    const { template, stack, relay } = build();
    const config = schedulerConfig(deployedEnv(envOf(template, stack, relay.schedulerFunction)));
    // The relay (park requests, revokes) and the schedule role (fired schedules) both speak for a sender.
    expect(config.trustedForwarders).toEqual([fakeRoleId(logicalId(stack, relay.relayFunction.role!)), fakeRoleId(logicalId(stack, relay.scheduleRole))]);
    expect(config.policy.source).toEqual(DEFAULT_RELAY_POLICY);
    expect(config.policy.admins).toEqual([]);
  });

  it("caps the default schedule lead time at a shorter park threshold", () => {
    const { template, stack, relay } = build({ parkThreshold: Duration.seconds(60) });
    expect(envOf(template, stack, relay.schedulerFunction)).toMatchObject({ PARK_THRESHOLD_SECONDS: "60", LEAD_SECONDS: "60" });
  });

  it("creates a schedule group named after the construct path, or the given name", () => {
    const built = build();
    built.template.resourceCountIs("AWS::Scheduler::ScheduleGroup", 1);
    built.template.hasResourceProperties("AWS::Scheduler::ScheduleGroup", { Name: built.relay.scheduleGroupName });
    expect(built.relay.scheduleGroupName).toMatch(/^Test-Relay-[0-9A-F]{8}$/);
    const named = build({ scheduleGroupName: "celery-parked" });
    named.template.hasResourceProperties("AWS::Scheduler::ScheduleGroup", { Name: "celery-parked" });
    expect(named.relay.scheduleGroupName).toBe("celery-parked");
  });
});

describe("CeleryRelay IAM", () => {
  it("gives the relay role its log group, the intake queue, the broker secret and the park queue, nothing more", () => {
    const { template, stack, relay } = build();
    const role = relay.relayFunction.role!;
    const logGroupArn = { "Fn::GetAtt": [Object.keys(template.findResources("AWS::Logs::LogGroup")).find((k) => k.startsWith("RelayRelayLogGroup"))!, "Arn"] };
    expect(statementsOf(template, stack, role)).toEqual(
      canonical([
        allow(["logs:CreateLogStream", "logs:PutLogEvents"], logGroupArn),
        allow(CONSUME_ACTIONS, queueArn(stack, relay.intakeQueue)),
        allow("secretsmanager:GetSecretValue", SECRET_ARN),
        allow("sqs:SendMessage", queueArn(stack, relay.schedulerQueue)),
      ]),
    );
    template.hasResourceProperties("AWS::IAM::Role", {
      AssumeRolePolicyDocument: { Statement: [{ Action: "sts:AssumeRole", Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" } }] },
      ManagedPolicyArns: Match.absent(),
      Description: Match.stringLikeRegexp("relay"),
    });
  });

  it("lets the relay change the visibility of intake records, which its broker-outage backoff needs", () => {
    const { template, stack, relay } = build();
    const statements = statementsOf(template, stack, relay.relayFunction.role!) as Statement[];
    const onIntake = statements.filter((s) => JSON.stringify(s.Resource).includes(JSON.stringify(queueArn(stack, relay.intakeQueue))));
    expect(onIntake.flatMap((s) => s.Action)).toContain("sqs:ChangeMessageVisibility");
  });

  it("adds the ENI actions Lambda needs, and only those, when the relay runs in a VPC", () => {
    const { template, stack, relay } = build({}, (s) => ({ vpc: new Vpc(s, "Vpc", { maxAzs: 2, natGateways: 1 }) }));
    const eni = allow(
      [
        "ec2:AssignPrivateIpAddresses",
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:UnassignPrivateIpAddresses",
      ],
      "*",
    );
    const statements = statementsOf(template, stack, relay.relayFunction.role!);
    expect(statements).toContainEqual(canonical([eni])[0]);
    expect(statements).toHaveLength(5);
    expect(Object.values(template.findResources("AWS::IAM::Role")).every((r) => r.Properties.ManagedPolicyArns === undefined)).toBe(true);
  });

  it("lets the relay decrypt a CMK-encrypted broker secret only through Secrets Manager", () => {
    let keyArn: unknown;
    const { template, stack, relay } = build({}, (s) => {
      const key = new Key(s, "BrokerKey");
      keyArn = s.resolve(key.keyArn);
      return { brokerSecret: Secret.fromSecretAttributes(s, "Encrypted", { secretCompleteArn: SECRET_ARN, encryptionKey: key }) };
    });
    expect(statementsOf(template, stack, relay.relayFunction.role!)).toContainEqual(
      canonical([
        allow("kms:Decrypt", keyArn, {
          StringEquals: { "kms:ViaService": { "Fn::Join": ["", ["secretsmanager.", { Ref: "AWS::Region" }, ".amazonaws.com"]] } },
        }),
      ])[0],
    );
  });

  it("gives the scheduler role its log group, its queue, the group's schedules, PassRole to Scheduler and send to intake", () => {
    const { template, stack, relay } = build();
    const role = relay.schedulerFunction.role!;
    const logGroupArn = { "Fn::GetAtt": [Object.keys(template.findResources("AWS::Logs::LogGroup")).find((k) => k.startsWith("RelaySchedulerLogGroup"))!, "Arn"] };
    const schedules = {
      "Fn::Join": [
        "",
        ["arn:", { Ref: "AWS::Partition" }, ":scheduler:", { Ref: "AWS::Region" }, ":", { Ref: "AWS::AccountId" }, `:schedule/${relay.scheduleGroupName}/*`],
      ],
    };
    expect(statementsOf(template, stack, role)).toEqual(
      canonical([
        allow(["logs:CreateLogStream", "logs:PutLogEvents"], logGroupArn),
        allow(CONSUME_ACTIONS, queueArn(stack, relay.schedulerQueue)),
        allow(["scheduler:CreateSchedule", "scheduler:DeleteSchedule", "scheduler:GetSchedule"], schedules),
        allow("iam:PassRole", cfn(stack, relay.scheduleRole.roleArn), { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } }),
        allow("sqs:SendMessage", queueArn(stack, relay.intakeQueue)),
      ]),
    );
  });

  it("lets the scheduler read a schedule of its own group, which it does before deleting one on revoke", () => {
    const { template, stack, relay } = build();
    const statements = statementsOf(template, stack, relay.schedulerFunction.role!) as Statement[];
    const reading = statements.filter((s) => (s.Action as string[]).includes("scheduler:GetSchedule"));
    expect(reading).toHaveLength(1);
    expect(JSON.stringify(reading[0]!.Resource)).toContain(`:schedule/${relay.scheduleGroupName}/*`);
    expect(reading[0]!.Action).toEqual(expect.arrayContaining(["scheduler:DeleteSchedule", "scheduler:GetSchedule"]));
  });

  it("lets EventBridge Scheduler assume the schedule role only for this account's group, and only send to its queue and DLQ", () => {
    const { template, stack, relay } = build();
    const groupId = Object.keys(template.findResources("AWS::Scheduler::ScheduleGroup"))[0]!;
    template.hasResourceProperties("AWS::IAM::Role", {
      AssumeRolePolicyDocument: {
        Statement: [
          {
            Action: "sts:AssumeRole",
            Effect: "Allow",
            Principal: { Service: "scheduler.amazonaws.com" },
            Condition: {
              StringEquals: { "aws:SourceAccount": { Ref: "AWS::AccountId" }, "aws:SourceArn": { "Fn::GetAtt": [groupId, "Arn"] } },
            },
          },
        ],
      },
      ManagedPolicyArns: Match.absent(),
    });
    expect(statementsOf(template, stack, relay.scheduleRole)).toEqual(
      canonical([allow("sqs:SendMessage", [queueArn(stack, relay.schedulerQueue), queueArn(stack, relay.scheduleDeadLetterQueue)])]),
    );
  });

  it("grantSend gives a producer exactly sqs:SendMessage on the intake queue", () => {
    // Prepare
    const { stack } = newStack();
    const relay = new CeleryRelay(stack, "Relay", { brokerSecret: Secret.fromSecretCompleteArn(stack, "Broker", SECRET_ARN) });
    const producer = new Role(stack, "Producer", { assumedBy: new ServicePrincipal("lambda.amazonaws.com") });
    // Act
    const grant = relay.grantSend(producer);
    // Assess
    const template = Template.fromStack(stack);
    expect(grant.success).toBe(true);
    expect(statementsOf(template, stack, producer)).toEqual(canonical([allow("sqs:SendMessage", queueArn(stack, relay.intakeQueue))]));
  });

  it("grantSend to another account's principal goes into the intake queue's resource policy", () => {
    const { stack } = newStack();
    const relay = new CeleryRelay(stack, "Relay", { brokerSecret: Secret.fromSecretCompleteArn(stack, "Broker", SECRET_ARN) });
    relay.grantSend(new AccountPrincipal("210987654321"));
    const template = Template.fromStack(stack);
    template.hasResourceProperties("AWS::SQS::QueuePolicy", {
      Queues: [cfn(stack, relay.intakeQueue.queueUrl)],
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Effect: "Allow",
            Action: "sqs:SendMessage",
            Principal: { AWS: { "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":iam::210987654321:root"]] } },
            Resource: queueArn(stack, relay.intakeQueue),
          },
        ]),
      },
    });
  });
});

describe("CeleryRelay alarms", () => {
  it("alarms when any of the three dead-letter queues holds a message", () => {
    const { template, stack, relay } = build();
    for (const dlq of [relay.deadLetterQueue, relay.schedulerDeadLetterQueue, relay.scheduleDeadLetterQueue]) {
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "AWS/SQS",
        MetricName: "ApproximateNumberOfMessagesVisible",
        Dimensions: [{ Name: "QueueName", Value: cfn(stack, dlq.queueName) }],
        Statistic: "Maximum",
        Period: 60,
        Threshold: 1,
        EvaluationPeriods: 1,
        ComparisonOperator: "GreaterThanOrEqualToThreshold",
        TreatMissingData: "notBreaching",
      });
    }
  });

  it("alarms when the oldest intake message is older than the threshold", () => {
    const { template, stack, relay } = build({ oldestMessageAgeThreshold: Duration.minutes(10) });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/SQS",
      MetricName: "ApproximateAgeOfOldestMessage",
      Dimensions: [{ Name: "QueueName", Value: cfn(stack, relay.intakeQueue.queueName) }],
      Statistic: "Maximum",
      Threshold: 600,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
    });
  });

  it("alarms when the oldest scheduler-queue message is older than the schedule lead time, 2 min by default", () => {
    const { template, stack, relay } = build();
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/SQS",
      MetricName: "ApproximateAgeOfOldestMessage",
      Dimensions: [{ Name: "QueueName", Value: cfn(stack, relay.schedulerQueue.queueName) }],
      Statistic: "Maximum",
      Period: 60,
      Threshold: 120,
      EvaluationPeriods: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      TreatMissingData: "notBreaching",
    });
  });

  it.each<[string, Partial<CeleryRelayProps>, number]>([
    ["a longer lead time", { scheduleLeadTime: Duration.minutes(5) }, 300],
    ["a lead time under SQS's one-minute metric period", { parkThreshold: Duration.seconds(30) }, 60],
    ["an explicit threshold", { schedulerOldestMessageAgeThreshold: Duration.minutes(10) }, 600],
  ])("sets the scheduler-queue age threshold from %s", (_name, props, seconds) => {
    const { template, stack, relay } = build(props);
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      MetricName: "ApproximateAgeOfOldestMessage",
      Dimensions: [{ Name: "QueueName", Value: cfn(stack, relay.schedulerQueue.queueName) }],
      Threshold: seconds,
    });
  });

  it.each(["relay", "scheduler"] as const)("alarms on any failed invocation of the %s function within 5 minutes", (name) => {
    const { template, stack, relay } = build();
    const fn = name === "relay" ? relay.relayFunction : relay.schedulerFunction;
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/Lambda",
      MetricName: "Errors",
      Dimensions: [{ Name: "FunctionName", Value: cfn(stack, fn.functionName) }],
      Statistic: "Sum",
      Period: 300,
      Threshold: 1,
      EvaluationPeriods: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      TreatMissingData: "notBreaching",
    });
  });

  it("alarms when the relay's Failed count is non-zero in two 5-minute periods in a row", () => {
    const { template } = build();
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "CeleryEdge",
      MetricName: "Failed",
      Dimensions: [{ Name: "service", Value: "celery-edge-relay" }],
      Statistic: "Sum",
      Period: 300,
      Threshold: 1,
      EvaluationPeriods: 2,
      DatapointsToAlarm: 2,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      TreatMissingData: "notBreaching",
    });
  });

  it("exposes all eight alarms, and the template holds no other", () => {
    const { template, stack, relay } = build();
    template.resourceCountIs("AWS::CloudWatch::Alarm", 8);
    expect(relay.alarms).toEqual([
      relay.deadLetterQueueAlarm,
      relay.schedulerDeadLetterQueueAlarm,
      relay.scheduleDeadLetterQueueAlarm,
      relay.oldestMessageAgeAlarm,
      relay.schedulerOldestMessageAgeAlarm,
      relay.relayErrorsAlarm,
      relay.relayFailuresAlarm,
      relay.schedulerErrorsAlarm,
    ]);
    const listed = relay.alarms.map((a) => stack.getLogicalId(a.node.defaultChild as never)).sort();
    expect(Object.keys(template.findResources("AWS::CloudWatch::Alarm")).sort()).toEqual(listed);
  });

  it("gives the alarms no actions when none are passed", () => {
    const { template } = build();
    for (const alarm of Object.values(template.findResources("AWS::CloudWatch::Alarm"))) {
      expect(alarm.Properties.AlarmActions).toBeUndefined();
      expect(alarm.Properties.OKActions).toBeUndefined();
    }
  });

  it("wires alarmActions to every alarm, on ALARM and, by default, on OK", () => {
    // Prepare
    let topicArn: unknown;
    // Act
    const { template } = build({}, (s) => {
      const topic = new Topic(s, "Alarms");
      topicArn = s.resolve(topic.topicArn);
      return { alarmActions: [new SnsAction(topic)] };
    });
    // Assess
    const alarms = Object.values(template.findResources("AWS::CloudWatch::Alarm"));
    expect(alarms).toHaveLength(8);
    for (const alarm of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([topicArn]);
      expect(alarm.Properties.OKActions).toEqual([topicArn]);
    }
  });

  it("uses okActions instead when given, and none on OK for okActions: []", () => {
    // Prepare
    const arns: Record<string, unknown> = {};
    const withTopics = (ok: "separate" | "none") => (s: Stack): Partial<CeleryRelayProps> => {
      const page = new Topic(s, "Page");
      const resolved = new Topic(s, "Resolved");
      arns.page = s.resolve(page.topicArn);
      arns.resolved = s.resolve(resolved.topicArn);
      return { alarmActions: [new SnsAction(page)], okActions: ok === "none" ? [] : [new SnsAction(resolved)] };
    };
    // Act
    const separate = build({}, withTopics("separate")).template;
    const separateArns = { ...arns };
    const none = build({}, withTopics("none")).template;
    // Assess
    for (const alarm of Object.values(separate.findResources("AWS::CloudWatch::Alarm"))) {
      expect(alarm.Properties).toMatchObject({ AlarmActions: [separateArns.page], OKActions: [separateArns.resolved] });
    }
    for (const alarm of Object.values(none.findResources("AWS::CloudWatch::Alarm"))) {
      expect(alarm.Properties.AlarmActions).toEqual([arns.page]);
      expect(alarm.Properties.OKActions).toBeUndefined();
    }
  });

  it("passes several actions to every alarm, in order", () => {
    const arns: unknown[] = [];
    const { template } = build({}, (s) => {
      const topics = [new Topic(s, "First"), new Topic(s, "Second")];
      arns.push(...topics.map((t) => s.resolve(t.topicArn)));
      return { alarmActions: topics.map((t) => new SnsAction(t)) };
    });
    for (const alarm of Object.values(template.findResources("AWS::CloudWatch::Alarm"))) {
      expect(alarm.Properties.AlarmActions).toEqual(arns);
    }
  });
});

describe("CeleryRelay metrics", () => {
  it("names the metrics namespace in both functions' environment, CeleryEdge by default", () => {
    const defaults = build();
    const custom = build({ metricsNamespace: "Team/Celery" });
    for (const { template, stack, relay } of [defaults, custom]) {
      const expected = relay === defaults.relay ? "CeleryEdge" : "Team/Celery";
      expect(relay.metricsNamespace).toBe(expected);
      expect(envOf(template, stack, relay.relayFunction).POWERTOOLS_METRICS_NAMESPACE).toBe(expected);
      expect(envOf(template, stack, relay.schedulerFunction).POWERTOOLS_METRICS_NAMESPACE).toBe(expected);
    }
    custom.template.hasResourceProperties("AWS::CloudWatch::Alarm", { Namespace: "Team/Celery", MetricName: "Failed" });
  });

  it("alarms on the very metric Powertools Metrics emits from the relay's template environment", async () => {
    // Prepare: the alarm as synthesized, and the relay's environment as deployed.
    const { template, stack, relay } = build({ metricsNamespace: "Team/Celery" });
    const alarm = template.toJSON().Resources[stack.getLogicalId(relay.relayFailuresAlarm.node.defaultChild as never)].Properties;
    const env = envOf(template, stack, relay.relayFunction) as Record<string, string>;
    // Act: the real Powertools Metrics, configured by nothing but those variables, counts one failure.
    const emf = await powertoolsEmf(
      { POWERTOOLS_SERVICE_NAME: env.POWERTOOLS_SERVICE_NAME!, POWERTOOLS_METRICS_NAMESPACE: env.POWERTOOLS_METRICS_NAMESPACE! },
      "Failed",
    );
    // Assess
    const directive = emf._aws.CloudWatchMetrics[0]!;
    expect(directive.Namespace).toBe(alarm.Namespace);
    expect(directive.Metrics.map((m) => m.Name)).toEqual([alarm.MetricName]);
    expect(directive.Dimensions).toEqual([alarm.Dimensions.map((d: { Name: string }) => d.Name)]);
    for (const d of alarm.Dimensions as Array<{ Name: string; Value: string }>) expect(emf[d.Name]).toBe(d.Value);
  });

  it("gives metricRelay the relay's namespace and service dimension, summed over 5 minutes", () => {
    const { relay } = build();
    const metric = relay.metricRelay("Relayed").toMetricConfig().metricStat!;
    expect(metric).toMatchObject({ namespace: "CeleryEdge", metricName: "Relayed", statistic: "Sum", dimensions: [{ name: "service", value: "celery-edge-relay" }] });
    expect(metric.period.toSeconds()).toBe(300);
    expect(relay.metricRelay("Parked", { period: Duration.minutes(1) }).toMetricConfig().metricStat!.period.toSeconds()).toBe(60);
  });
});

describe("CeleryRelay lifecycle events", () => {
  const OTHER_ACCOUNT_BUS = "arn:aws:events:eu-west-1:210987654321:event-bus/ops";

  it("puts no event bus in either environment and grants no events action without eventBus", () => {
    const { template, stack, relay } = build();
    expect(envOf(template, stack, relay.relayFunction)).not.toHaveProperty("EVENT_BUS_NAME");
    expect(envOf(template, stack, relay.schedulerFunction)).not.toHaveProperty("EVENT_BUS_NAME");
    expect(relay.eventBus).toBeUndefined();
    expect(JSON.stringify(template.toJSON())).not.toMatch(/events:/);
  });

  it("grants both roles exactly events:PutEvents on the given bus's ARN, besides their usual grants", () => {
    // Prepare
    let busArn: unknown;
    const plain = build();
    // Act
    const { template, stack, relay } = build({}, (s) => {
      const bus = new EventBus(s, "Bus");
      busArn = s.resolve(bus.eventBusArn);
      return { eventBus: bus };
    });
    // Assess: each role's statements are the plain construct's plus one, on the bus alone.
    const putEvents = canonical([allow("events:PutEvents", busArn)])[0];
    for (const role of [relay.relayFunction.role!, relay.schedulerFunction.role!]) {
      const statements = statementsOf(template, stack, role);
      const plainRole = role === relay.relayFunction.role ? plain.relay.relayFunction.role! : plain.relay.schedulerFunction.role!;
      expect(statements).toEqual(canonical([...(statementsOf(plain.template, plain.stack, plainRole) as Statement[]), allow("events:PutEvents", busArn)]));
      expect(statements.filter((st) => JSON.stringify(st).includes("events:"))).toEqual([putEvents]);
    }
  });

  it("grants PutEvents on an imported bus by its literal ARN, never a wildcard, and to no other principal", () => {
    const { template, stack, relay } = build({}, (s) => ({ eventBus: EventBus.fromEventBusArn(s, "Ops", OTHER_ACCOUNT_BUS) }));
    const onEvents = Object.values(template.findResources("AWS::IAM::Policy")).flatMap((p) =>
      (p.Properties.PolicyDocument.Statement as Statement[]).filter((st) => JSON.stringify(st.Action).includes("events:")).map((st) => ({ st, roles: p.Properties.Roles })),
    );
    const granted = onEvents.flatMap(({ st, roles }) => (roles as unknown[]).map((r) => ({ role: r, action: st.Action, resource: st.Resource })));
    const roleRef = (role: IRole) => ({ Ref: logicalId(stack, role) });
    expect(granted).toHaveLength(2);
    expect(granted).toEqual(
      expect.arrayContaining([
        { role: roleRef(relay.relayFunction.role!), action: "events:PutEvents", resource: OTHER_ACCOUNT_BUS },
        { role: roleRef(relay.schedulerFunction.role!), action: "events:PutEvents", resource: OTHER_ACCOUNT_BUS },
      ]),
    );
  });

  it("names the bus by ARN in both functions' EVENT_BUS_NAME, which their config reads back", () => {
    // Prepare / Act
    const { template, stack, relay } = build({}, (s) => ({ eventBus: EventBus.fromEventBusArn(s, "Ops", OTHER_ACCOUNT_BUS) }));
    const relayEnv = envOf(template, stack, relay.relayFunction);
    const schedulerEnv = envOf(template, stack, relay.schedulerFunction);
    // Assess: an ARN, because only an ARN reaches a bus in another account.
    expect(relayEnv.EVENT_BUS_NAME).toBe(OTHER_ACCOUNT_BUS);
    expect(schedulerEnv.EVENT_BUS_NAME).toBe(OTHER_ACCOUNT_BUS);
    expect(relayConfig(deployedEnv(relayEnv)).eventBusName).toBe(OTHER_ACCOUNT_BUS);
    expect(schedulerConfig(deployedEnv(schedulerEnv)).eventBusName).toBe(OTHER_ACCOUNT_BUS);
  });

  it("names a bus of the same stack by its ARN attribute", () => {
    let busArn: unknown;
    const { template, stack, relay } = build({}, (s) => {
      const bus = new EventBus(s, "Bus");
      busArn = s.resolve(bus.eventBusArn);
      return { eventBus: bus };
    });
    expect(busArn).toEqual({ "Fn::GetAtt": [expect.stringMatching(/^Bus/), "Arn"] });
    expect(envOf(template, stack, relay.relayFunction).EVENT_BUS_NAME).toEqual(busArn);
    expect(envOf(template, stack, relay.schedulerFunction).EVENT_BUS_NAME).toEqual(busArn);
    expect(relay.eventBus).toBeDefined();
  });
});

describe("CeleryRelay prop validation", () => {
  const cases: Array<[string, (stack: Stack) => Partial<CeleryRelayProps>, RegExp]> = [
    ["batchSize 0", () => ({ batchSize: 0 }), /batchSize must be an integer from 1 to 10000, got 0/],
    ["batchSize 10001", () => ({ batchSize: 10_001, maxBatchingWindow: Duration.seconds(1) }), /batchSize .* got 10001/],
    ["batchSize 2.5", () => ({ batchSize: 2.5 }), /batchSize must be an integer .* got 2\.5/],
    ["batchSize 20 without a batching window", () => ({ batchSize: 20 }), /batchSize above 10 requires maxBatchingWindow, got 20/],
    ["maxBatchingWindow 301 s", () => ({ maxBatchingWindow: Duration.seconds(301) }), /maxBatchingWindow must be .* 0 to 300, got 5 minutes 1 second/],
    ["maxConcurrency 1", () => ({ maxConcurrency: 1 }), /maxConcurrency must be an integer from 2 to 1000, got 1/],
    ["maxConcurrency 1001", () => ({ maxConcurrency: 1001 }), /maxConcurrency .* got 1001/],
    ["parkThreshold 16 min", () => ({ parkThreshold: Duration.minutes(16) }), /parkThreshold must be a whole number of seconds from 1 to 900, got 16 minutes/],
    ["parkThreshold 0", () => ({ parkThreshold: Duration.seconds(0) }), /parkThreshold .* got 0 seconds/],
    ["parkThreshold 1.5 s", () => ({ parkThreshold: Duration.millis(1500) }), /parkThreshold must be a whole number of seconds/],
    ["scheduleLeadTime above parkThreshold", () => ({ parkThreshold: Duration.minutes(5), scheduleLeadTime: Duration.minutes(6) }), /scheduleLeadTime .* from 1 to 300, got 6 minutes/],
    ["relayTimeout 16 min", () => ({ relayTimeout: Duration.minutes(16) }), /relayTimeout .* from 1 to 900, got 16 minutes/],
    ["memorySize 64", () => ({ memorySize: 64 }), /memorySize must be an integer from 128 to 10240, got 64/],
    ["maxReceiveCount 0", () => ({ maxReceiveCount: 0 }), /maxReceiveCount must be an integer from 1 to 1000, got 0/],
    ["retryBackoff.base 0", () => ({ retryBackoff: { base: Duration.seconds(0) } }), /retryBackoff\.base must be a whole number of seconds from 1 to 43200, got 0 seconds/],
    ["retryBackoff.max 13 h", () => ({ retryBackoff: { max: Duration.hours(13) } }), /retryBackoff\.max must be a whole number of seconds from 30 to 43200, got 13 hours/],
    ["retryBackoff.max below base", () => ({ retryBackoff: { base: Duration.minutes(2), max: Duration.minutes(1) } }), /retryBackoff\.max .* from 120 to 43200, got 1 minute/],
    ["intakeRetentionPeriod 15 days", () => ({ intakeRetentionPeriod: Duration.days(15) }), /intakeRetentionPeriod must be a whole number of seconds from 60 to 1209600, got 15 days/],
    [
      "a retry span longer than the default retention",
      () => ({ maxReceiveCount: 1000 }),
      /intakeRetentionPeriod must exceed the .* a message can spend on the intake queue before it is dead-lettered \(parkThreshold \+ 1000 receives .*\), .* got 4 days/,
    ],
    [
      "a retention shorter than the default retry span",
      () => ({ intakeRetentionPeriod: Duration.hours(6) }),
      /intakeRetentionPeriod must exceed the 6 hours 51 minutes .* got 6 hours/,
    ],
    ["oldestMessageAgeThreshold 0", () => ({ oldestMessageAgeThreshold: Duration.seconds(0) }), /oldestMessageAgeThreshold .* got 0 seconds/],
    ["schedulerOldestMessageAgeThreshold 1.5 s", () => ({ schedulerOldestMessageAgeThreshold: Duration.millis(1500) }), /schedulerOldestMessageAgeThreshold must be a whole number of seconds/],
    ["metricsNamespace under AWS/", () => ({ metricsNamespace: "AWS/Lambda" }), /metricsNamespace must be .* not start with AWS\/, got "AWS\/Lambda"/],
    ["an empty metricsNamespace", () => ({ metricsNamespace: "" }), /metricsNamespace must be 1 to 255 .* got ""/],
    ["metricsNamespace with a comma", () => ({ metricsNamespace: "a,b" }), /metricsNamespace .* got "a,b"/],
    ["scheduleGroupName with a slash", () => ({ scheduleGroupName: "a/b" }), /scheduleGroupName must be 1 to 64 of \[0-9A-Za-z._-\], got "a\/b"/],
    ["logLevel TRACE", () => ({ logLevel: "TRACE" as never }), /logLevel must be one of DEBUG, INFO, WARN, ERROR, got "TRACE"/],
    ["vpcSubnets without vpc", () => ({ vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS } }), /vpcSubnets requires vpc/],
    [
      "securityGroups without vpc",
      (s) => ({ securityGroups: [SecurityGroup.fromSecurityGroupId(s, "Sg", "sg-12345678")] }),
      /securityGroups requires vpc, got "1 group\(s\)"/,
    ],
  ];

  it.each(cases)("rejects %s with an error naming the prop and value", (_name, props, message) => {
    expect(() => build({}, props)).toThrow(message);
  });

  it("throws ConfigurationError with code ERR_INVALID_OPTION, prefixed with the construct name", () => {
    let caught: unknown;
    try {
      build({ maxConcurrency: 0 });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigurationError);
    expect(caught).toMatchObject({ code: "ERR_INVALID_OPTION", message: expect.stringMatching(/^CeleryRelay: maxConcurrency/) });
  });
});

describe("CeleryRelay policy", () => {
  function producerRole(stack: Stack, id = "Producer"): Role {
    return new Role(stack, id, { assumedBy: new ServicePrincipal("lambda.amazonaws.com") });
  }

  it("writes the same policy JSON into both functions' environment", () => {
    const { template, stack, relay } = build({ policy: { queues: [{ name: "celery" }, { name: "reports", declare: { arguments: { "x-max-priority": 10 } } }] } });
    const relayPolicy = envOf(template, stack, relay.relayFunction).RELAY_POLICY;
    expect(envOf(template, stack, relay.schedulerFunction).RELAY_POLICY).toEqual(relayPolicy);
    expect(JSON.parse(relayPolicy as string)).toEqual({
      ...DEFAULT_RELAY_POLICY,
      queues: [{ name: "celery" }, { name: "reports", declare: { arguments: { "x-max-priority": 10 } } }],
    });
  });

  it("synthesizes a token principal as the role's Fn::GetAtt RoleId inside the policy JSON", () => {
    // Prepare
    let producer!: Role;
    let admin!: Role;
    // Act
    const { template, stack, relay } = build({}, (s) => {
      producer = producerRole(s);
      admin = producerRole(s, "Admin");
      return {
        policy: {
          queues: [{ name: "celery" }, { name: "reports" }],
          exchanges: [{ exchange: "tasks", routingKeys: ["reports.#"] }],
          admins: [admin.roleId],
          senders: [{ principal: producer.roleId, queues: ["reports"], tasks: ["reports.*"], revokes: false }],
        },
      };
    });
    // Assess: the JSON is joined around exactly these two attributes, in order.
    const rendered = envOf(template, stack, relay.relayFunction).RELAY_POLICY as { "Fn::Join": [string, unknown[]] };
    const attributes = rendered["Fn::Join"][1].filter((part) => typeof part !== "string");
    expect(attributes).toEqual([roleIdOf(stack, admin), roleIdOf(stack, producer)]);
    // …and, deployed, it is a policy the relay accepts, naming those roles.
    const config = relayConfig(deployedEnv(envOf(template, stack, relay.relayFunction)));
    expect(config.policy.admins).toEqual([fakeRoleId(logicalId(stack, admin))]);
    expect(config.policy.senders.map((x) => x.principal)).toEqual([fakeRoleId(logicalId(stack, producer))]);
    expect([...config.policy.queues.keys()]).toEqual(["celery", "reports"]);
  });

  it("still validates the rest of a policy that holds tokens", () => {
    expect(() =>
      build({}, (s) => ({ policy: { admins: [producerRole(s).roleId], exchanges: [{ exchange: "amq.topic", routingKeys: ["#"] }] } })),
    ).toThrow(/relay policy: exchanges\[0\]\.exchange names a RabbitMQ built-in exchange, which no policy can open, got "amq\.topic"/);
  });

  it.each<[string, CeleryRelayProps["policy"], RegExp]>([
    ["a control-plane queue", { queues: [{ name: "celery.pidbox" }] }, /queues\[0\]\.name names a Celery control, event or broker-owned queue, which no policy can open, got "celery\.pidbox"/],
    ["the control exchange", { exchanges: [{ exchange: "celery.pidbox", routingKeys: ["#"] }] }, /exchanges\[0\]\.exchange names Celery's control exchange/],
    ["the event exchange", { exchanges: [{ exchange: "celeryev", routingKeys: ["#"] }] }, /exchanges\[0\]\.exchange names Celery's event exchange/],
    ["pickle as a content type", { contentTypes: ["application/x-python-serialize" as never] }, /contentTypes\[0\] must be one of .* \(pickle: dangerouslyAllowPickle\)/],
    ["an unknown field", { allowedExchanges: ["tasks"] } as never, /policy\.allowedExchanges is not a policy field/],
    ["a principal that is no id", { admins: ["arn:aws:iam::123456789012:role/x y"] }, /admins\[0\] must be an SQS SenderId or role id/],
  ])("rejects a policy with %s at synth, with the policy's own message", (_name, policy, message) => {
    // Prepare / Act
    let caught: unknown;
    try {
      build({ policy });
    } catch (err) {
      caught = err;
    }
    // Assess
    expect(caught).toBeInstanceOf(ConfigurationError);
    expect((caught as Error).message).toMatch(/^CeleryRelay: relay policy: /);
    expect((caught as Error).message).toMatch(message);
    expect((caught as ConfigurationError).cause).toBeInstanceOf(ConfigurationError);
  });

  it("lets pickle through only with dangerouslyAllowPickle", () => {
    const { template, stack, relay } = build({ policy: { dangerouslyAllowPickle: true } });
    const config = relayConfig(deployedEnv(envOf(template, stack, relay.relayFunction)));
    expect([...config.policy.contentTypes]).toEqual(["application/json", "application/x-python-serialize"]);
  });

  it("drops top-level keys set to undefined, as JSON will on the way to the functions", () => {
    const { template, stack, relay } = build({ policy: { queues: undefined, tasks: ["reports.*"] } });
    expect(JSON.parse(envOf(template, stack, relay.relayFunction).RELAY_POLICY as string)).toEqual({ ...DEFAULT_RELAY_POLICY, tasks: ["reports.*"] });
  });

  it("writes brokerTransportOptions for a Redis fleet as BROKER_TRANSPORT_OPTIONS, which the relay's config reads back", () => {
    const options = { global_keyprefix: "fleet:", priority_steps: [0, 5, 9], visibility_timeout: 7200 };
    const { template, stack, relay } = build({ brokerTransportOptions: options });
    const env = envOf(template, stack, relay.relayFunction);
    expect(JSON.parse(env.BROKER_TRANSPORT_OPTIONS as string)).toEqual(options);
    expect(relayConfig(deployedEnv(env)).brokerTransportOptions).toEqual(options);
    expect(envOf(build().template, build().stack, build().relay.relayFunction)).not.toHaveProperty("BROKER_TRANSPORT_OPTIONS");
  });

  it("refuses brokerTransportOptions kombu could not use, or too large for the environment, at synth", () => {
    expect(() => build({ brokerTransportOptions: { priority_steps: [9, 0] } })).toThrow(/CeleryRelay: brokerTransportOptions\.priority_steps must be in ascending order/);
    expect(() => build({ brokerTransportOptions: { global_keyprefix: "x".repeat(600) } })).toThrow(/CeleryRelay: brokerTransportOptions must fit in 512 bytes of JSON/);
  });

  it("refuses brokerTransportOptions for a relay bundled for RabbitMQ, and a broker type it does not know", () => {
    expect(() => build({ brokerType: "rabbitmq", brokerTransportOptions: { global_keyprefix: "x:" } })).toThrow(/CeleryRelay: brokerTransportOptions are for brokerType "redis"/);
    expect(() => build({ brokerType: "valkey" as "redis" })).toThrow(/CeleryRelay: brokerType must be "rabbitmq" or "redis", got "valkey"/);
  });

  it("refuses a policy too large for Lambda's 4 KB environment", () => {
    const senders = Array.from({ length: 60 }, (_, i) => ({ principal: `AROAEXAMPLE${String(i).padStart(10, "0")}`, tasks: [`team${i}.tasks.*`] }));
    expect(() => build({ policy: { senders } })).toThrow(/CeleryRelay: policy must fit in 3072 bytes of JSON .*, got "\d+ bytes of JSON"/);
  });

  it("refuses allowedExchanges with the policy that replaces it and where to read more", () => {
    // Prepare / Act
    let caught: unknown;
    try {
      build({ allowedExchanges: ["", "tasks", "celery.pidbox"] });
    } catch (err) {
      caught = err;
    }
    // Assess
    expect(caught).toBeInstanceOf(ConfigurationError);
    const message = (caught as Error).message;
    expect(message).toMatch(/^CeleryRelay: allowedExchanges is replaced by policy, got \["","tasks","celery\.pidbox"\]/);
    expect(message).toContain('policy: { queues: [{ name: "celery" } /* and one { name } per queue your tasks are routed to */], exchanges: [{ exchange: "tasks", routingKeys: ["#"] }] }');
    expect(message).toMatch(/"celery\.pidbox" needs no entry: revokes in Celery's own shape pass/);
    expect(message).toMatch(/See docs\/deploy\.md, "Relay policy"\.$/);
  });

  it("refuses allowedExchanges even when it names only the default exchange", () => {
    expect(() => build({ allowedExchanges: [""] })).toThrow(/allowedExchanges is replaced by policy.*Instead write policy: \{ queues: \[\{ name: "celery" \} \/\* and one/);
  });
});

describe("CeleryRelay and cdk-nag", () => {
  function acknowledgements(stack: Stack): Array<{ id: string; reason: string }> {
    return stack.node.findAll().flatMap((c) =>
      c.node.metadata
        .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ id: id.replace(/^annotation::/i, ""), reason }))),
    );
  }

  /** Findings the pack raises before acknowledgements are applied. */
  function rawFindings(stack: Stack): string[] {
    const pack = new AwsSolutionsChecks();
    // The pack's private acknowledgement check, switched off to see what is being acknowledged.
    (pack as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
    return pack.validateScope(stack).violations.map((v) => v.ruleName).sort();
  }

  function withVpcAndCmk(s: Stack): Partial<CeleryRelayProps> {
    return {
      vpc: new Vpc(s, "Vpc", { maxAzs: 2, natGateways: 1 }),
      brokerSecret: Secret.fromSecretAttributes(s, "Encrypted", { secretCompleteArn: SECRET_ARN, encryptionKey: new Key(s, "Key", { enableKeyRotation: true }) }),
    };
  }

  it("reports no unacknowledged AwsSolutions findings with default props", () => {
    const { stack } = build();
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations).toEqual([]);
    expect(report.success).toBe(true);
  });

  it("reports no unacknowledged AwsSolutions findings with a policy naming roles, and a custom backoff", () => {
    const { stack } = build({}, (s) => {
      const producer = new Role(s, "Producer", { assumedBy: new ServicePrincipal("lambda.amazonaws.com") });
      return {
        policy: { admins: [producer.roleId], senders: [{ principal: producer.roleId, queues: ["celery"] }] },
        retryBackoff: { base: Duration.seconds(10), max: Duration.minutes(5) },
      };
    });
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });

  it("reports no unacknowledged AwsSolutions findings with an event bus and alarm actions", () => {
    const { stack } = build({}, (s) => ({
      eventBus: new EventBus(s, "Bus"),
      alarmActions: [new SnsAction(Topic.fromTopicArn(s, "Alarms", "arn:aws:sns:eu-west-1:123456789012:ops"))],
    }));
    expect(rawFindings(stack).filter((id) => !/IAM5\[Resource::arn:<AWS::Partition>:scheduler|SQS3/.test(id))).toEqual([]);
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });

  it("reports no unacknowledged AwsSolutions findings in a stack with an explicit account and region", () => {
    const app = new App({ context: { ...CDK_JSON_CONTEXT, "aws:cdk:bundling-stacks": [] } });
    const stack = new Stack(app, "Pinned", { env: { account: "123456789012", region: "eu-west-1" } });
    new CeleryRelay(stack, "Relay", { brokerSecret: Secret.fromSecretNameV2(stack, "Broker", "celery-edge/broker"), scheduleGroupName: "parked" });
    expect(rawFindings(stack)).toEqual([
      "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:eu-west-1:123456789012:schedule/parked/*]",
      "AwsSolutions-SQS3",
    ]);
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });

  it("reports no unacknowledged AwsSolutions findings for the relay in a VPC with a CMK-encrypted secret", () => {
    const { stack } = build({}, withVpcAndCmk);
    // The test VPC is not ours: its flow-log finding is outside the construct.
    const ours = new AwsSolutionsChecks().validateScope(stack).violations.filter((v) =>
      v.violatingResources.some((r) => r.constructPath?.startsWith("Test/Relay/")),
    );
    expect(ours).toEqual([]);
  });

  it("acknowledges only real findings, each with a written reason", () => {
    const { stack } = build();
    const acks = acknowledgements(stack);
    const ids = acks.map((a) => a.id).sort();
    expect(ids).toEqual([expect.stringMatching(/^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule\/Test-Relay-[0-9A-F]{8}\/\*\]$/), "AwsSolutions-SQS3"]);
    expect(rawFindings(stack)).toEqual(ids);
    for (const { reason } of acks) expect(reason.length).toBeGreaterThan(60);
  });

  it("acknowledges the VPC ENI wildcard only when a VPC is given, with a written reason", () => {
    const { stack } = build({}, withVpcAndCmk);
    const acks = acknowledgements(stack).filter((a) => a.id === "AwsSolutions-IAM5[Resource::*]");
    expect(acks).toHaveLength(1);
    expect(acks[0]!.reason).toMatch(/network interfaces/);
    expect(rawFindings(stack).filter((id) => id === "AwsSolutions-IAM5[Resource::*]")).toHaveLength(1);
  });

  it("fails synthesis of an app with the pack registered when a finding is not acknowledged", () => {
    // Prepare: the pack wired as infra/app.ts wires it, plus one non-compliant queue.
    const { app, stack } = newStack();
    new CeleryRelay(stack, "Relay", { brokerSecret: Secret.fromSecretCompleteArn(stack, "Broker", SECRET_ARN) });
    new Queue(stack, "Plain", { encryption: QueueEncryption.UNENCRYPTED });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    // Act / Assess
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS2/);
  });

  it("synthesizes an app with the pack registered when only the construct is present", () => {
    const { app, stack } = newStack();
    new CeleryRelay(stack, "Relay", { brokerSecret: Secret.fromSecretNameV2(stack, "Broker", "celery-edge/broker") });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).not.toThrow();
  });

  it("raises no CDK warnings or errors, nag or otherwise, on the construct", () => {
    const { stack } = build();
    expect(Annotations.fromStack(stack).findError("*", Match.stringLikeRegexp("AwsSolutions-.*"))).toEqual([]);
    expect(Annotations.fromStack(stack).findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*"))).toEqual([]);
    expect(Annotations.fromStack(stack).findError("*", Match.anyValue())).toEqual([]);
    expect(Annotations.fromStack(stack).findWarning("*", Match.anyValue())).toEqual([]);
  });
});
