/**
 * @module
 * SQS events as Lambda's event source mapping delivers them to the relay (record shape and key
 * order as Lambda writes them), built in-process: the throughput of the relay is measured without
 * an SQS emulator in the loop.
 */
import { BENCH_QUEUE } from "./common.js";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { Context, SQSEvent, SQSRecord } from "aws-lambda";

const QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:celery-edge-intake";

export function sqsRecord(body: string, sentAt = Date.now()): SQSRecord {
  const messageId = randomUUID();
  return {
    messageId,
    receiptHandle: randomBytes(48).toString("base64"),
    body,
    attributes: {
      ApproximateReceiveCount: "1",
      SentTimestamp: String(sentAt),
      SenderId: "AIDAEXAMPLE",
      ApproximateFirstReceiveTimestamp: String(sentAt + 5),
    },
    messageAttributes: {},
    md5OfBody: createHash("md5").update(body).digest("hex"),
    eventSource: "aws:sqs",
    eventSourceARN: QUEUE_ARN,
    awsRegion: "us-east-1",
  };
}

/** Bodies → events of `batchSize` records each, as an event source mapping with BatchSize 10 sends them. */
export function sqsEvents(bodies: readonly string[], batchSize = 10): SQSEvent[] {
  const events: SQSEvent[] = [];
  for (let i = 0; i < bodies.length; i += batchSize) events.push({ Records: bodies.slice(i, i + batchSize).map((b) => sqsRecord(b)) });
  return events;
}

export function lambdaContext(functionName = "celery-edge-relay"): Context {
  const fail = (): never => {
    throw new Error("callback-style context methods are not used by the relay");
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    memoryLimitInMB: "512",
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `2026/01/01/[$LATEST]${randomBytes(16).toString("hex")}`,
    getRemainingTimeInMillis: () => 30_000,
    done: fail,
    fail,
    succeed: fail,
  };
}

/** Environment the relay handler reads at import: a plain broker URL, the default exchange allowed. */
export function relayEnv(brokerUrl: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    BROKER_URL: brokerUrl,
    RELAY_POLICY: JSON.stringify({ queues: [{ name: BENCH_QUEUE, declare: true }] }),
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "AKIDBENCH",
    AWS_SECRET_ACCESS_KEY: "bench-secret",
    AWS_LAMBDA_FUNCTION_NAME: "celery-edge-relay",
    POWERTOOLS_SERVICE_NAME: "celery-edge-relay",
    ...extra,
  };
}
