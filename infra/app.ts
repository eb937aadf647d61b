/**
 * @module
 * The CDK app `cdk.json` runs: one environment-agnostic stack holding a `CeleryRelay`, checked by
 * cdk-nag's AWS Solutions pack. Synthesizes offline: no context lookups, no AWS credentials.
 *
 * The broker secret is imported by name: `-c brokerSecretName=…`, else
 * `CELERY_EDGE_BROKER_SECRET_NAME`, else `celery-edge/broker`. The relay policy (docs/deploy.md,
 * "Relay policy") comes from `-c relayPolicy='{…}'` or a `relayPolicy` object in `cdk.json`'s
 * context, else `CELERY_EDGE_RELAY_POLICY` (JSON), else the default policy.
 */
import { App, Stack, Validations } from "aws-cdk-lib";
import { Secret } from "aws-cdk-lib/aws-secretsmanager";
import { AwsSolutionsChecks } from "cdk-nag";
import { ConfigurationError } from "../sdk/errors.js";
import { CeleryRelay, type RelayPolicy } from "./celery-relay.js";

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
  policy: relayPolicy(app.node.tryGetContext("relayPolicy") ?? process.env.CELERY_EDGE_RELAY_POLICY),
});
// cdk-nag 3 runs as a policy-validation plugin: any unacknowledged finding fails `cdk synth`.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));

/** `-c` context values arrive as strings, `cdk.json` context as JSON values; the construct validates either. */
function relayPolicy(value: unknown): RelayPolicy | undefined {
  if (value === undefined || value === "") return undefined;
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
