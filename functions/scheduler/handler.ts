/**
 * @module
 * Scheduler Lambda: consumes its own queue (park requests, fired schedules, revokes). Clients are
 * built once per container; partial batch responses come from Powertools batch.
 */
import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import { Logger } from "@aws-lambda-powertools/logger";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { SqsTransport } from "../../sdk/transports/sqs.js";
import { schedulerConfig } from "../shared/config.js";
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

export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  return processPartialResponse(event, (record: SQSRecord) => handleSchedulerRecord(record, deps), new BatchProcessor(EventType.SQS), {
    context,
    throwOnFullBatchFailure: false,
  });
}
