/**
 * The real RabbitMQ and Redis refusing a login with a generated password: the error the SDK raises
 * shows neither the password nor its percent-encoded form, in its message, stack, cause chain,
 * fields or JSON. URLs refused before connecting and closed ports: test/unit/redaction.test.ts.
 */
import { inspect } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Celery, CeleryError } from "../../sdk/node.js";
import { RedisBackend } from "../../sdk/backends/redis.js";
import { RpcBackend } from "../../sdk/backends/rpc.js";

const MARKER = "Kq7Zp";
const RUNS = { numRuns: 25, seed: 1414 };
const hostile = fc.constantFrom("/", "@", "#", "?", ":", "%", "%2F", " ", "+", "&", "=", "é", "☃", "😀");
const part = fc.array(fc.oneof(hostile, fc.string({ unit: "grapheme", maxLength: 3 })), { maxLength: 5 }).map((parts) => parts.join(""));
/** Percent-encoded as it should be, so the URL is valid and the server gets to refuse the login. */
const passwords = fc.tuple(part, part).map(([a, b]) => `${a}${MARKER}${b}`);

function shown(err: unknown): string {
  const texts = [inspect(err, { depth: Infinity, showHidden: true }), String(err)];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof Error) texts.push(e.message, e.stack ?? "");
    try {
      texts.push(JSON.stringify(e) ?? "");
    } catch {
      // circular: inspect above has it
    }
  }
  return texts.join("\n");
}

function expectNoPassword(err: unknown, password: string): void {
  expect(err).toBeInstanceOf(CeleryError);
  const text = shown(err);
  for (const secret of [password, encodeURIComponent(password), MARKER]) expect(text.includes(secret), `"${secret}" shows in:\n${text}`).toBe(false);
}

async function failure(work: () => Promise<unknown>): Promise<unknown> {
  try {
    await work();
  } catch (err) {
    return err;
  }
  throw new Error("expected a failure");
}

describe("a login the server refuses", () => {
  it("RabbitMQ (the AMQP transport): the error never shows the password", async () => {
    await fc.assert(
      fc.asyncProperty(passwords, async (password) => {
        const app = new Celery({ broker: `amqp://guest:${encodeURIComponent(password)}@127.0.0.1:5672//`, connectTimeout: 5_000 });
        const err = await failure(() => app.sendTask("tasks.echo", { args: [] }).finally(() => app.close()));
        expect((err as CeleryError).code).toBe("ERR_CONNECTION");
        expectNoPassword(err, password);
      }),
      RUNS,
    );
  });

  it("RabbitMQ (the rpc:// result backend): the error never shows the password", async () => {
    await fc.assert(
      fc.asyncProperty(passwords, async (password) => {
        const backend = new RpcBackend({ brokerUrl: `amqp://guest:${encodeURIComponent(password)}@127.0.0.1:5672//`, replyTo: "redaction-login", connectTimeout: 5_000 });
        const err = await failure(() => backend.waitFor(["some-task"], { timeout: 5_000 }).finally(() => backend.close()));
        expectNoPassword(err, password);
      }),
      RUNS,
    );
  });

  it("Redis (the redis:// result backend): the error never shows the password", async () => {
    await fc.assert(
      fc.asyncProperty(passwords, async (password) => {
        // No such user: Redis answers WRONGPASS (the default user has no password to refuse).
        const backend = new RedisBackend({ url: `redis://relay:${encodeURIComponent(password)}@127.0.0.1:6379/0`, connectTimeout: 5_000 });
        const err = await failure(() => backend.getMeta("some-task").finally(() => backend.close()));
        expectNoPassword(err, password);
      }),
      RUNS,
    );
  });
});
