/**
 * Child-process half of the amqps:// test: sends one task with the SDK to the broker URL given as
 * the first argument and prints `{"id": …}` (or `{"error": …, "code": …}`) on stdout.
 *
 * It runs in its own process because the only way to make the SDK trust a throwaway CA today is
 * `NODE_EXTRA_CA_CERTS`, which Node reads once at start-up (AmqpTransport has no `ca` option).
 */
import { Celery } from "../../../sdk/node.js";

const [url, queue] = process.argv.slice(2);
const app = new Celery({ broker: url!, defaultQueue: queue!, connectTimeout: 5_000, publishTimeout: 5_000 });
try {
  const result = await app.sendTask("tasks.echo", { args: ["over tls"], ignoreResult: true });
  process.stdout.write(JSON.stringify({ id: result.id }));
} catch (err) {
  process.stdout.write(JSON.stringify({ error: (err as Error).message, code: (err as { code?: string }).code }));
  process.exitCode = 1;
} finally {
  await app.close();
}
