/**
 * @module
 * The CDK app `cdk.json` runs: one environment-agnostic stack (`CeleryEdgeStack`) holding a
 * `CeleryRelay`, checked by cdk-nag's AWS Solutions pack. Synthesizes offline: no context lookups,
 * no AWS credentials.
 *
 * Settings come from `-c name=…` or `cdk.json`'s context, else the environment (see
 * `settingsFromContext` and docs/deploy.md): the broker secret's name (`brokerSecretName`, default
 * `celery-edge/broker`), the relay policy (`relayPolicy`, JSON), where alarms go (`alarmEmail` or
 * `alarmTopicArn`) and the bus for lifecycle events (`eventBus`). None is required.
 */
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { CeleryEdgeStack, settingsFromContext } from "./celery-edge-stack.js";

const app = new App();
new CeleryEdgeStack(app, "CeleryEdge", settingsFromContext(app.node));
// cdk-nag 3 runs as a policy-validation plugin: any unacknowledged finding fails `cdk synth`.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
