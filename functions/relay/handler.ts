/**
 * @module
 * Relay Lambda: SQS event source → RabbitMQ. Config, clients and the AMQP connection live at module
 * scope so warm invocations reuse them; partial batch responses come from Powertools batch.
 */
import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import { Logger } from "@aws-lambda-powertools/logger";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { SqsTransport } from "../../sdk/transports/sqs.js";
import { fetchBrokerUrl } from "../shared/broker-url.js";
import { relayConfig } from "../shared/config.js";
import { relayRecord, type RelayDeps } from "./relay.js";

const config = relayConfig();
const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "celery-edge-relay" });
const processor = new BatchProcessor(EventType.SQS);
const park = config.parkQueueUrl ? { transport: new SqsTransport({ queueUrl: config.parkQueueUrl, useDelaySeconds: false }), thresholdSeconds: config.parkThresholdSeconds } : undefined;

let deps: Promise<RelayDeps> | undefined;

function loadDeps(): Promise<RelayDeps> {
  if (deps) return deps;
  deps = (async (): Promise<RelayDeps> => {
    const url = config.brokerUrl ?? (await fetchBrokerUrl(config.brokerSecretArn!));
    return {
      broker: new AmqpTransport({ url }),
      allowedExchanges: config.allowedExchanges,
      forceMandatory: config.forceMandatory,
      logger,
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
  return processPartialResponse(event, (record: SQSRecord) => relayRecord(record, d), processor, {
    context,
    // A broker outage fails the records, not the function: they are redelivered, then dead-lettered.
    throwOnFullBatchFailure: false,
  });
}
