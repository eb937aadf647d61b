/**
 * @module
 * A Cloudflare Worker that enqueues Celery tasks. Workers cannot open raw TCP connections to
 * RabbitMQ, so tasks go through the SQS relay: `POST /add` with `{"a": 2, "b": 3}` sends
 * `tasks.add(2, 3)` and answers 202 with the task id. Deploy with `wrangler deploy`; set the two
 * secrets with `wrangler secret put` (see wrangler.toml).
 */
import { Celery } from "celery-edge";
import { sqsRelay } from "celery-edge/sqs";

export interface Env {
  /** The relay's intake queue URL (`CeleryRelay.intakeQueue.queueUrl`). */
  CELERY_INTAKE_QUEUE_URL: string;
  /** Secret: an IAM user's key, allowed `sqs:SendMessage` on the intake queue (`relay.grantSend`). */
  AWS_ACCESS_KEY_ID: string;
  /** Secret: that user's secret key. */
  AWS_SECRET_ACCESS_KEY: string;
  /** Celery's `task_default_queue`. @default "celery" */
  CELERY_DEFAULT_QUEUE?: string;
  /** SQS endpoint, only for a local emulator. @default the queue URL's origin */
  SQS_ENDPOINT?: string;
}

// One app per isolate: bindings arrive with the first request, and warm requests reuse it.
let app: Celery | undefined;

function celery(env: Env): Celery {
  app ??= new Celery({
    broker: sqsRelay({
      queueUrl: env.CELERY_INTAKE_QUEUE_URL,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
      ...(env.SQS_ENDPOINT ? { endpoint: env.SQS_ENDPOINT } : {}),
    }),
    ...(env.CELERY_DEFAULT_QUEUE ? { defaultQueue: env.CELERY_DEFAULT_QUEUE } : {}),
  });
  return app;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (request.method !== "POST" || url.pathname !== "/add") return new Response("POST /add {\"a\": 1, \"b\": 2}\n", { status: 404 });
    const { a, b } = (await request.json()) as { a?: unknown; b?: unknown };
    if (typeof a !== "number" || typeof b !== "number") return Response.json({ error: 'body must be {"a": number, "b": number}' }, { status: 400 });
    const add = celery(env).task<[number, number], number>("tasks.add");
    const result = await add.delay(a, b);
    return Response.json({ taskId: result.id }, { status: 202 });
  },
};
