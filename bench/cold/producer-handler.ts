/**
 * @module
 * A Lambda-style producer for the cold-start benchmark, bundled the way a user's function would be:
 * the app at module scope, one task sent per invocation.
 */
import { Celery } from "../../sdk/node.js";

const app = new Celery({ broker: process.env.BROKER_URL ?? "amqp://guest:guest@127.0.0.1:5672//" });
const noop = app.task<[number, number]>("bench.noop");

export const handler = async (event: { i: number }): Promise<{ taskId: string }> => {
  const r = await noop.applyAsync({ args: [event.i, 2], kwargs: { user: "u-123", action: "resize", size: 512 }, queue: "bench.q" });
  return { taskId: r.id };
};
