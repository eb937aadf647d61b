/**
 * @module
 * Relay Lambda: SQS event source → the Celery broker (RabbitMQ, or Redis for a `redis://` URL).
 * Config, clients and the broker connection live at module scope so warm invocations reuse them; partial batch responses come from Powertools batch. Each
 * invocation prints its counts as EMF (Powertools Metrics) and, with an event bus, puts its
 * lifecycle events once the batch is done.
 */
import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { SqsTransport } from "../../sdk/transports/sqs.js";
import { fetchBrokerUrl } from "../shared/broker-url.js";
import { relayConfig } from "../shared/config.js";
import type { RelayMetricName } from "../shared/environment.js";
import { EventBusPublisher, LifecycleBatch } from "../shared/lifecycle-events.js";
import { parkThresholdFor, relayBroker } from "./broker.js";
import { isPoison, Mutex, relayRecord, type RelayAction, type RelayDeps } from "./relay.js";

const config = relayConfig();
const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? "celery-edge-relay";
const logger = new Logger({ serviceName });
// Namespace from POWERTOOLS_METRICS_NAMESPACE (the construct sets it); the service is the dimension.
const metrics = new Metrics({ serviceName });
const eventBus = config.eventBusName ? new EventBusPublisher({ eventBusName: config.eventBusName, logger }) : undefined;
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
    const broker = await relayBroker(url, {
      transportOptions: config.brokerTransportOptions,
      warn: (m) => logger.warn(m),
      // Structured like every other relay log line, so the mismatch can be searched for by code.
      onWarning: (w) => logger.warn(w.message, { code: w.code }),
    });
    const thresholdSeconds = park ? parkThresholdFor(broker, park.thresholdSeconds) : 0;
    if (park && thresholdSeconds < park.thresholdSeconds) {
      logger.info("parking tasks due later than half the Redis workers' visibility_timeout", { parkThresholdSeconds: thresholdSeconds });
    }
    return {
      broker,
      policy: config.policy,
      trustedForwarders: config.trustedForwarders,
      forceMandatory: config.forceMandatory,
      logger,
      backoff: changeVisibility,
      retry: config.retry,
      solo: new Mutex(),
      ...(park ? { park: { ...park, thresholdSeconds } } : {}),
    };
  })().catch((err) => {
    deps = undefined; // a failed secret fetch is retried on the next invocation
    throw err;
  });
  return deps;
}

/** Records per outcome in one invocation, published as the metrics of the same names. */
type Counts = Record<RelayMetricName, number>;

/** Longest the lifecycle events may hold an invocation after its batch, in ms. */
const EVENTS_BUDGET_MS = 5_000;

export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  const counts: Counts = { Relayed: 0, Parked: 0, Rejected: 0, Failed: 0 };
  // One batch per invocation, like the processor, so overlapping invocations keep their own events.
  const events = eventBus ? new LifecycleBatch({ emitter: "relay", maxReceiveCount: config.maxReceiveCount }) : undefined;
  try {
    const shared = await loadDeps().catch((err: unknown) => {
      counts.Failed = event.Records.length;
      throw err;
    });
    const d: RelayDeps = events ? { ...shared, events } : shared;
    const relay = async (record: SQSRecord): Promise<RelayAction> => {
      try {
        const action = await relayRecord(record, d);
        counts[action === "parked" ? "Parked" : "Relayed"]++;
        return action;
      } catch (err) {
        counts[isPoison(err) ? "Rejected" : "Failed"]++;
        throw err;
      }
    };
    // A processor holds one batch's state: one per invocation, so overlapping invocations sharing a
    // module (a local runner with several pollers) never report each other's failures.
    return await processPartialResponse(event, relay, new BatchProcessor(EventType.SQS), {
      context,
      // A broker outage fails the records, not the function: each backs off (ChangeMessageVisibility)
      // and comes back; only a record refused for its own content reaches the DLQ quickly.
      throwOnFullBatchFailure: false,
    });
  } finally {
    // Every count, zeros too, so an alarm on Failed or Rejected sees a datapoint per invocation.
    // Added and published with no await between: overlapping invocations never mix their counts.
    for (const [name, value] of Object.entries(counts)) metrics.addMetric(name, MetricUnit.Count, value);
    metrics.publishStoredMetrics();
    // After the batch: no publish waits for EventBridge, and a failed put is logged, never thrown.
    if (eventBus && events) await eventBus.put(events, Math.min(EVENTS_BUDGET_MS, context.getRemainingTimeInMillis() - 1_000));
  }
}
