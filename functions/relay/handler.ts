/**
 * @module
 * Relay Lambda: SQS event source → RabbitMQ. Config, clients and the AMQP connection live at module
 * scope so warm invocations reuse them; partial batch responses come from Powertools batch.
 */
import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import { Logger } from "@aws-lambda-powertools/logger";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { SqsTransport } from "../../sdk/transports/sqs.js";
import { fetchBrokerUrl } from "../shared/broker-url.js";
import { relayConfig } from "../shared/config.js";
import { Mutex, relayRecord, type RelayDeps } from "./relay.js";

const config = relayConfig();
const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "celery-edge-relay" });
const park = config.parkQueueUrl ? { transport: new SqsTransport({ queueUrl: config.parkQueueUrl, useDelaySeconds: false }), thresholdSeconds: config.parkThresholdSeconds } : undefined;
if (park && config.trustedForwarders.length === 0) {
  logger.warn("TRUSTED_FORWARDERS is empty: revokes are broadcast at once, so the owner of a parked task cannot be checked first");
}

let sqs: Promise<{ client: SQSClient; command: typeof import("@aws-sdk/client-sqs").ChangeMessageVisibilityCommand }> | undefined;

/**
 * Only failing records need the SQS client, so it is loaded on the first one, not at cold start.
 * The endpoint comes from the region (or AWS_ENDPOINT_URL_SQS), never from a queue URL.
 */
async function changeVisibility(record: SQSRecord, seconds: number): Promise<void> {
  sqs ??= import("@aws-sdk/client-sqs").then((m) => ({ client: new m.SQSClient({ useQueueUrlAsEndpoint: false }), command: m.ChangeMessageVisibilityCommand }));
  const { client, command } = await sqs;
  await client.send(new command({ QueueUrl: config.intakeQueueUrl ?? queueUrlOf(record.eventSourceARN), ReceiptHandle: record.receiptHandle, VisibilityTimeout: seconds }));
}

/** `arn:aws:sqs:<region>:<account>:<name>` → the queue's URL. */
function queueUrlOf(arn: string): string {
  const [, , , region, account, name] = arn.split(":");
  return `https://sqs.${region}.amazonaws.com/${account}/${name}`;
}

let deps: Promise<RelayDeps> | undefined;

function loadDeps(): Promise<RelayDeps> {
  if (deps) return deps;
  deps = (async (): Promise<RelayDeps> => {
    const url = config.brokerUrl ?? (await fetchBrokerUrl(config.brokerSecretArn!));
    return {
      broker: new AmqpTransport({ url }),
      policy: config.policy,
      trustedForwarders: config.trustedForwarders,
      forceMandatory: config.forceMandatory,
      logger,
      backoff: changeVisibility,
      retry: config.retry,
      solo: new Mutex(),
      ...(park ? { park } : {}),
    };
  })().catch((err) => {
    deps = undefined; // a failed secret fetch is retried on the next invocation
    throw err;
  });
  return deps;
}

export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  const d = await loadDeps();
  // A processor holds one batch's state: one per invocation, so overlapping invocations sharing a
  // module (a local runner with several pollers) never report each other's failures.
  return processPartialResponse(event, (record: SQSRecord) => relayRecord(record, d), new BatchProcessor(EventType.SQS), {
    context,
    // A broker outage fails the records, not the function: each backs off (ChangeMessageVisibility)
    // and comes back; only a record refused for its own content reaches the DLQ quickly.
    throwOnFullBatchFailure: false,
  });
}
