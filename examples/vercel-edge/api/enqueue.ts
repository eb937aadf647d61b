/**
 * @module
 * A Vercel Edge Function that enqueues Celery tasks through the SQS relay: `POST /api/enqueue`
 * with `{"a": 2, "b": 3}` sends `tasks.add(2, 3)` and answers 202 with the task id.
 *
 * The credentials have names of their own on purpose: Vercel may put AWS_ACCESS_KEY_ID and
 * friends into a function's environment with values that grant nothing, and the SQS transport
 * would otherwise read those.
 */
import { Celery } from "celery-edge";
import { sqsRelay } from "celery-edge/sqs";

export const config = { runtime: "edge" };

// Module scope: built once per isolate and reused by warm invocations.
const app = new Celery({
  broker: sqsRelay({
    // CeleryRelay.intakeQueue.queueUrl; the region is read from it.
    queueUrl: process.env.CELERY_INTAKE_QUEUE_URL!,
    credentials: {
      accessKeyId: process.env.CELERY_RELAY_ACCESS_KEY_ID!,
      secretAccessKey: process.env.CELERY_RELAY_SECRET_ACCESS_KEY!,
    },
    // Only for a local SQS emulator.
    ...(process.env.SQS_ENDPOINT ? { endpoint: process.env.SQS_ENDPOINT } : {}),
  }),
  ...(process.env.CELERY_DEFAULT_QUEUE ? { defaultQueue: process.env.CELERY_DEFAULT_QUEUE } : {}),
});
const add = app.task<[number, number], number>("tasks.add");

export default async function handler(request: Request): Promise<Response> {
  if (request.method !== "POST") return new Response("POST {\"a\": 1, \"b\": 2}\n", { status: 405 });
  const { a, b } = (await request.json()) as { a?: unknown; b?: unknown };
  if (typeof a !== "number" || typeof b !== "number") return Response.json({ error: 'body must be {"a": number, "b": number}' }, { status: 400 });
  const result = await add.delay(a, b);
  return Response.json({ taskId: result.id }, { status: 202 });
}
