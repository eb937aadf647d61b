/**
 * An SQS record as the Lambda event source delivers it to the relay, around any body.
 */
import type { SQSRecord } from "aws-lambda";

export const TEST_QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:celery-edge-intake";

export function sqsRecord(body: string, messageId: string, options: { queueArn?: string; receiveCount?: number } = {}): SQSRecord {
  const now = String(Date.now());
  return {
    messageId,
    receiptHandle: `handle-${messageId}`,
    body,
    attributes: { ApproximateReceiveCount: String(options.receiveCount ?? 1), SentTimestamp: now, SenderId: "AIDATEST", ApproximateFirstReceiveTimestamp: now },
    messageAttributes: {},
    md5OfBody: "",
    eventSource: "aws:sqs",
    eventSourceARN: options.queueArn ?? TEST_QUEUE_ARN,
    awsRegion: "us-east-1",
  };
}
