/**
 * @module
 * Scheduler Lambda: consumes its own queue (park requests, fired schedules, revokes). Clients are
 * built once per container; partial batch responses come from Powertools batch. With an event bus,
 * each invocation puts its lifecycle events once the batch is done.
 */
import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import { Logger } from "@aws-lambda-powertools/logger";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { SqsTransport } from "../../sdk/transports/sqs.js";
import { schedulerConfig } from "../shared/config.js";
import { EventBusPublisher, LifecycleBatch } from "../shared/lifecycle-events.js";
import { handleSchedulerRecord, type SchedulerDeps } from "./scheduler.js";

const config = schedulerConfig();
const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "celery-edge-scheduler" });
const deps: SchedulerDeps = {
  scheduler: new SchedulerClient({}),
  intake: new SqsTransport({ queueUrl: config.intakeQueueUrl }),
  group: config.scheduleGroup,
  targetArn: config.schedulerQueueArn,
  roleArn: config.schedulerRoleArn,
  ...(config.scheduleDlqArn ? { deadLetterArn: config.scheduleDlqArn } : {}),
  thresholdSeconds: config.parkThresholdSeconds,
  leadSeconds: config.leadSeconds,
  policy: config.policy,
  trustedForwarders: config.trustedForwarders,
  logger,
};
const eventBus = config.eventBusName ? new EventBusPublisher({ eventBusName: config.eventBusName, logger }) : undefined;

/** Longest the lifecycle events may hold an invocation after its batch, in ms. */
const EVENTS_BUDGET_MS = 5_000;

export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  // One batch per invocation, like the processor, so overlapping invocations keep their own events.
  const events = eventBus ? new LifecycleBatch({ emitter: "scheduler", maxReceiveCount: config.maxReceiveCount }) : undefined;
  const d: SchedulerDeps = events ? { ...deps, events } : deps;
  try {
    return await processPartialResponse(event, (record: SQSRecord) => handleSchedulerRecord(record, d), new BatchProcessor(EventType.SQS), {
      context,
      throwOnFullBatchFailure: false,
    });
  } finally {
    // After the batch: a failed put is logged, never thrown, so it never fails a record.
    if (eventBus && events) await eventBus.put(events, Math.min(EVENTS_BUDGET_MS, context.getRemainingTimeInMillis() - 1_000));
  }
}
