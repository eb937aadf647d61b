/**
 * @module
 * The CDK app `cdk.json` runs: one environment-agnostic stack holding a `CeleryRelay`, checked by
 * cdk-nag's AWS Solutions pack. Synthesizes offline: no context lookups, no AWS credentials.
 *
 * The broker secret is imported by name: `-c brokerSecretName=…`, else
 * `CELERY_EDGE_BROKER_SECRET_NAME`, else `celery-edge/broker`.
 */
import { App, Stack, Validations } from "aws-cdk-lib";
import { Secret } from "aws-cdk-lib/aws-secretsmanager";
import { AwsSolutionsChecks } from "cdk-nag";
import { CeleryRelay } from "./celery-relay.js";

const app = new App();
const stack = new Stack(app, "CeleryEdge", {
  description: "celery-edge: SQS intake queue, relay to RabbitMQ and far-ETA scheduler",
});
const brokerSecretName: string =
  (app.node.tryGetContext("brokerSecretName") as string | undefined) ??
  process.env.CELERY_EDGE_BROKER_SECRET_NAME ??
  "celery-edge/broker";
new CeleryRelay(stack, "Relay", {
  brokerSecret: Secret.fromSecretNameV2(stack, "BrokerSecret", brokerSecretName),
});
// cdk-nag 3 runs as a policy-validation plugin: any unacknowledged finding fails `cdk synth`.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
