/**
 * @module
 * The app's stack (`CeleryEdgeStack`) and its settings from context: where alarms go (a new
 * encrypted topic with email subscribers, or an existing topic) and the lifecycle event bus, checked
 * with `aws-cdk-lib/assertions` and cdk-nag as `infra/app.ts` wires it. Bundling is skipped here;
 * `synth.test.ts` runs the real `cdk synth` of the app with its defaults.
 */
import { readFileSync } from "node:fs";
import { App, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { describe, expect, it } from "vitest";
import { CeleryEdgeStack, settingsFromContext, type CeleryEdgeStackProps } from "../../infra/celery-edge-stack.js";
import { ConfigurationError } from "../../sdk/errors.js";

const CDK_JSON_CONTEXT = (JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
}).context;
const TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:ops-alarms";

function newApp(context: Record<string, unknown> = {}): App {
  return new App({ context: { ...CDK_JSON_CONTEXT, "aws:cdk:bundling-stacks": [], ...context } });
}

function build(settings: Partial<CeleryEdgeStackProps>): { app: App; stack: CeleryEdgeStack; template: Template } {
  const app = newApp();
  const stack = new CeleryEdgeStack(app, "CeleryEdge", { brokerSecretName: "celery-edge/broker", ...settings });
  return { app, stack, template: Template.fromStack(stack) };
}

function alarms(template: Template): Array<Record<string, unknown>> {
  return Object.values(template.findResources("AWS::CloudWatch::Alarm")).map((a) => a.Properties as Record<string, unknown>);
}

describe("settingsFromContext", () => {
  it("needs nothing: the default secret name and no policy, alarm destination or event bus", () => {
    expect(settingsFromContext(newApp().node, {})).toEqual({
      brokerSecretName: "celery-edge/broker",
      policy: undefined,
      alarmEmails: undefined,
      alarmTopicArn: undefined,
      eventBus: undefined,
    });
  });

  it("reads each setting from context before the environment", () => {
    // Prepare
    const env = {
      CELERY_EDGE_BROKER_SECRET_NAME: "env/broker",
      CELERY_EDGE_ALARM_TOPIC_ARN: "arn:aws:sns:eu-west-1:123456789012:env",
      CELERY_EDGE_EVENT_BUS: "env-bus",
      CELERY_EDGE_RELAY_POLICY: '{"tasks":["env.*"]}',
    };
    const context = { brokerSecretName: "ctx/broker", alarmTopicArn: TOPIC_ARN, eventBus: "default", relayPolicy: '{"tasks":["ctx.*"]}' };
    // Act
    const fromEnv = settingsFromContext(newApp().node, env);
    const fromContext = settingsFromContext(newApp(context).node, env);
    // Assess
    expect(fromEnv).toMatchObject({ brokerSecretName: "env/broker", alarmTopicArn: env.CELERY_EDGE_ALARM_TOPIC_ARN, eventBus: "env-bus", policy: { tasks: ["env.*"] } });
    expect(fromContext).toMatchObject({ brokerSecretName: "ctx/broker", alarmTopicArn: TOPIC_ARN, eventBus: "default", policy: { tasks: ["ctx.*"] } });
  });

  it("takes one alarm email or several, comma-separated or as a cdk.json list", () => {
    expect(settingsFromContext(newApp({ alarmEmail: "ops@example.com" }).node, {}).alarmEmails).toEqual(["ops@example.com"]);
    expect(settingsFromContext(newApp().node, { CELERY_EDGE_ALARM_EMAIL: "a@example.com, b@example.com" }).alarmEmails).toEqual(["a@example.com", "b@example.com"]);
    expect(settingsFromContext(newApp({ alarmEmail: ["a@example.com", "b@example.com"] }).node, {}).alarmEmails).toEqual(["a@example.com", "b@example.com"]);
  });

  it("refuses a relay policy that is not JSON and a topic ARN that is not a string", () => {
    expect(() => settingsFromContext(newApp({ relayPolicy: "{queues:" }).node, {})).toThrow(/relayPolicy \(context or CELERY_EDGE_RELAY_POLICY\) must be JSON, got "\{queues:"/);
    expect(() => settingsFromContext(newApp({ alarmTopicArn: 42 }).node, {})).toThrow(ConfigurationError);
  });
});

describe("CeleryEdgeStack alarm destination", () => {
  it("creates no topic and leaves the alarms without actions by default", () => {
    const { template } = build({});
    template.resourceCountIs("AWS::SNS::Topic", 0);
    expect(alarms(template)).toHaveLength(8);
    for (const alarm of alarms(template)) expect(alarm.AlarmActions).toBeUndefined();
  });

  it("sends every alarm and its return to OK to a new topic with the given email subscribers", () => {
    // Prepare / Act
    const { stack, template } = build({ alarmEmails: ["ops@example.com", "oncall@example.com"] });
    // Assess
    const topicRef = stack.resolve(stack.alarmTopic!.topicArn);
    template.resourceCountIs("AWS::SNS::Topic", 1);
    expect(alarms(template)).toHaveLength(8);
    for (const alarm of alarms(template)) {
      expect(alarm.AlarmActions).toEqual([topicRef]);
      expect(alarm.OKActions).toEqual([topicRef]);
    }
    const subscriptions = Object.values(template.findResources("AWS::SNS::Subscription")).map((s) => s.Properties);
    expect(subscriptions.map((s) => [s.Protocol, s.Endpoint, s.TopicArn])).toEqual([
      ["email", "ops@example.com", topicRef],
      ["email", "oncall@example.com", topicRef],
    ]);
  });

  it("encrypts the new topic with a rotating key that CloudWatch may use, and lets only this account's alarms publish", () => {
    const { stack, template } = build({ alarmEmails: ["ops@example.com"] });
    const keyId = Object.keys(template.findResources("AWS::KMS::Key"))[0]!;
    template.hasResourceProperties("AWS::SNS::Topic", { KmsMasterKeyId: { "Fn::GetAtt": [keyId, "Arn"] } });
    const key = template.toJSON().Resources[keyId].Properties;
    expect(key.EnableKeyRotation).toBe(true);
    expect(key.KeyPolicy.Statement).toContainEqual({
      Effect: "Allow",
      Principal: { Service: "cloudwatch.amazonaws.com" },
      Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
      Resource: "*",
    });
    const topicPolicy = Object.values(template.findResources("AWS::SNS::TopicPolicy"))[0]!.Properties.PolicyDocument.Statement as unknown[];
    expect(topicPolicy).toContainEqual(
      expect.objectContaining({
        Effect: "Allow",
        Principal: { Service: "cloudwatch.amazonaws.com" },
        Action: "sns:Publish",
        Resource: stack.resolve(stack.alarmTopic!.topicArn),
        Condition: {
          ArnLike: {
            "aws:SourceArn": { "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":cloudwatch:", { Ref: "AWS::Region" }, ":", { Ref: "AWS::AccountId" }, ":alarm:*"]] },
          },
        },
      }),
    );
    expect(topicPolicy).toContainEqual(expect.objectContaining({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }));
  });

  it("sends every alarm to an existing topic by its ARN, creating none", () => {
    const { template } = build({ alarmTopicArn: TOPIC_ARN });
    template.resourceCountIs("AWS::SNS::Topic", 0);
    template.resourceCountIs("AWS::KMS::Key", 0);
    for (const alarm of alarms(template)) expect(alarm).toMatchObject({ AlarmActions: [TOPIC_ARN], OKActions: [TOPIC_ARN] });
  });

  it.each<[string, Partial<CeleryEdgeStackProps>, RegExp]>([
    ["both an email and a topic", { alarmEmails: ["ops@example.com"], alarmTopicArn: TOPIC_ARN }, /alarmEmails and alarmTopicArn are exclusive, got both/],
    ["an address without a domain", { alarmEmails: ["ops"] }, /AlarmTopic: emails must be email addresses, got "ops"/],
  ])("refuses %s", (_name, settings, message) => {
    expect(() => build(settings)).toThrow(message);
  });
});

describe("CeleryEdgeStack event bus", () => {
  it("lets both functions put events on the account's default bus by name, and on nothing else", () => {
    const { stack, template } = build({ eventBus: "default" });
    const busArn = {
      "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":events:", { Ref: "AWS::Region" }, ":", { Ref: "AWS::AccountId" }, ":event-bus/default"]],
    };
    const onEvents = Object.values(template.findResources("AWS::IAM::Policy")).flatMap((p) =>
      (p.Properties.PolicyDocument.Statement as Array<{ Action: unknown; Resource: unknown }>)
        .filter((s) => JSON.stringify(s.Action).includes("events:"))
        .flatMap((s) => (p.Properties.Roles as unknown[]).map((role) => ({ role, action: s.Action, resource: s.Resource }))),
    );
    const roles = [stack.relay.relayFunction.role!, stack.relay.schedulerFunction.role!].map((r) => stack.resolve((r.node.defaultChild as never as { ref: string }).ref));
    expect(onEvents).toEqual(expect.arrayContaining(roles.map((role) => ({ role, action: "events:PutEvents", resource: busArn }))));
    expect(onEvents).toHaveLength(2);
  });

  it("takes a bus ARN as it is", () => {
    const arn = "arn:aws:events:eu-west-1:210987654321:event-bus/ops";
    const { template } = build({ eventBus: arn });
    const fns = Object.values(template.findResources("AWS::Lambda::Function"));
    expect(fns.map((f) => f.Properties.Environment.Variables.EVENT_BUS_NAME)).toEqual([arn, arn]);
  });
});

describe("CeleryEdgeStack and cdk-nag", () => {
  it("synthesizes with the AwsSolutions pack registered as infra/app.ts does, given an alarm email and an event bus", () => {
    // Prepare
    const app = newApp({ alarmEmail: "ops@example.com", eventBus: "default" });
    const stack = new CeleryEdgeStack(app, "CeleryEdge", settingsFromContext(app.node, {}));
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    // Act / Assess
    expect(() => app.synth()).not.toThrow();
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
    expect(Object.keys(Template.fromStack(stack).findResources("AWS::SNS::Topic"))).toHaveLength(1);
  });
});
