/**
 * @module
 * A Node.js Lambda handler (API Gateway HTTP API) that publishes Celery tasks straight to
 * RabbitMQ over AMQP, no relay: `POST {"a": 2, "b": 3}` sends `tasks.add(2, 3)` and answers 202
 * with the task id. The Lambda needs a network path to the broker (same VPC, or Amazon MQ).
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { Celery } from "celery-edge";

// Module scope: one AMQP connection per container, opened on the first publish and reused by
// every warm invocation. Keep the password in Secrets Manager and resolve the URL at deploy or
// cold start; a plain environment variable keeps this example short.
export const app = new Celery({
  broker: process.env.CELERY_BROKER_URL ?? "amqp://guest:guest@localhost:5672//",
  ...(process.env.CELERY_DEFAULT_QUEUE ? { defaultQueue: process.env.CELERY_DEFAULT_QUEUE } : {}),
});
const add = app.task<[number, number], number>("tasks.add");

export async function handler(event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> {
  const { a, b } = JSON.parse(event.body ?? "{}") as { a?: unknown; b?: unknown };
  if (typeof a !== "number" || typeof b !== "number") {
    return { statusCode: 400, body: JSON.stringify({ error: 'body must be {"a": number, "b": number}' }) };
  }
  const result = await add.delay(a, b);
  return { statusCode: 202, body: JSON.stringify({ taskId: result.id }) };
}
