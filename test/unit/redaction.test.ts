/**
 * No error the SDK builds shows a password, whatever characters it holds and whether the URL
 * percent-encodes it or not: generated passwords (fast-check) go through every path that builds an
 * error from a URL — refused URLs, refused schemes, and connections to a closed loopback port — and
 * the error's message, stack, cause chain, fields and JSON are searched for the password.
 *
 * Every password holds a fixed marker between two generated parts, so a leak of part of it (a
 * password cut at its `/` and read as a vhost or database) is caught too. The real broker and Redis
 * refusing a login: test/e2e/redaction-login.test.ts.
 */
import { createServer } from "node:net";
import { inspect } from "node:util";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { Celery, CeleryError } from "../../sdk/node.js";
import { redact } from "../../sdk/errors.js";
import { RedisBackend } from "../../sdk/backends/redis.js";
import { RpcBackend } from "../../sdk/backends/rpc.js";
import { AmqpTransport } from "../../sdk/transports/amqp.js";
import { sqsRelay } from "../../sdk/sqs.js";

const MARKER = "Kq7Zp";
const RUNS = { numRuns: 60, seed: 1414 };

/** Characters a password may hold that URLs treat specially, plus spaces and non-ASCII. */
const hostile = fc.constantFrom("/", "//", "@", "#", "?", ":", "%", "%2F", "%40", "%zz", " ", "  ", "\t", "+", "&", "=", ";", "[", "]", "\\", "'", '"', "é", "☃", "😀", "\u00a0", "://", "amqp://");
const part = fc.array(fc.oneof(hostile, fc.string({ unit: "grapheme", maxLength: 3 })), { maxLength: 6 }).map((parts) => parts.join(""));
const passwords = fc.tuple(part, part).map(([a, b]) => `${a}${MARKER}${b}`);
/** The password as the user wrote it, and percent-encoded as it should be. */
const spellings = fc.tuple(passwords, fc.boolean()).map(([password, encode]) => ({ password, inUrl: encode ? encodeURIComponent(password) : password }));

let closedPort: number;

beforeAll(async () => {
  // A port nothing listens on: bind one, then let it go.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closedPort = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Everything an error shows: message, stack, fields and causes (inspect), and its JSON. */
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
  for (const secret of [password, encodeURIComponent(password), MARKER]) {
    expect(text.includes(secret), `"${secret}" shows in:\n${text}`).toBe(false);
  }
}

async function failure(work: () => unknown): Promise<unknown> {
  try {
    await work();
  } catch (err) {
    return err;
  }
  throw new Error("expected a failure");
}

describe("redact", () => {
  it("masks the whole password of any scheme, whatever it holds", () => {
    fc.assert(
      fc.property(fc.constantFrom("amqp", "amqps", "pyamqp", "redis", "rediss", "rpc", "https", "http"), spellings, (scheme, { password, inUrl }) => {
        const text = redact(`failed: ${scheme}://relay:${inUrl}@127.0.0.1:5672/vhost`);
        expect(text).toBe(`failed: ${scheme}://relay:***@127.0.0.1:5672/vhost`);
        expect(text).not.toContain(MARKER);
        expect(text).not.toContain(password);
      }),
      { numRuns: 500, seed: 1414 },
    );
  });

  it("masks a password holding a slash (amqps://relay:pa/ss@host)", () => {
    expect(redact("amqps://relay:pa/ss@host")).toBe("amqps://relay:***@host");
  });
});

describe("AMQP broker URLs", () => {
  it("never show the password when the URL is refused or the broker cannot be reached", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("amqp", "amqps", "pyamqp"), spellings, async (scheme, { password, inUrl }) => {
        const url = `${scheme}://relay:${inUrl}@127.0.0.1:${closedPort}//`;
        const err = await failure(async () => {
          const app = new Celery({ broker: url, connectTimeout: 2_000 });
          try {
            await app.sendTask("tasks.echo", { args: [] });
          } finally {
            await app.close();
          }
        });
        expectNoPassword(err, password);
      }),
      RUNS,
    );
  });

  it("never show the password through the transport on its own", async () => {
    await fc.assert(
      fc.asyncProperty(spellings, async ({ password, inUrl }) => {
        const err = await failure(async () => {
          const transport = new AmqpTransport({ url: `amqp://relay:${inUrl}@127.0.0.1:${closedPort}/`, connectTimeout: 2_000 });
          const [outcome] = await transport.publishMany([fakeMessage()]);
          if (outcome && !outcome.ok) throw outcome.error;
        });
        expectNoPassword(err, password);
      }),
      RUNS,
    );
  });

  it("never show the password when a string without a scheme is given as the broker", () => {
    fc.assert(
      fc.property(spellings, fc.constantFrom("", "amqp:", "amqp:/", "//"), ({ password, inUrl }, prefix) => {
        let err: unknown;
        try {
          new Celery({ broker: `${prefix}relay:${inUrl}@127.0.0.1:5672//` });
        } catch (e) {
          err = e;
        }
        // "//relay:…" is scheme-less too; all of them are refused.
        expectNoPassword(err, password);
      }),
      RUNS,
    );
  });
});

describe("the rpc:// result backend", () => {
  it("never shows the broker password when the URL is refused or the broker cannot be reached", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("amqp", "amqps"), spellings, async (scheme, { password, inUrl }) => {
        const err = await failure(async () => {
          const backend = new RpcBackend({ brokerUrl: `${scheme}://relay:${inUrl}@127.0.0.1:${closedPort}//`, replyTo: "redaction-test", connectTimeout: 2_000 });
          try {
            await backend.waitFor(["some-task"], { timeout: 2_000 });
          } finally {
            await backend.close();
          }
        });
        expectNoPassword(err, password);
      }),
      RUNS,
    );
  });

  it("refuses a broker URL without attaching the URL parser's error (its `input` is the raw URL)", () => {
    let err: unknown;
    try {
      new RpcBackend({ brokerUrl: `amqps://relay:pa/ss${MARKER}@127.0.0.1:5671//`, replyTo: "x" });
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toMatch(/invalid broker URL amqps:\/\/relay:\*\*\*@127\.0\.0\.1:5671\/\//);
    expect((err as Error).cause).toBeUndefined();
    expectNoPassword(err, `pa/ss${MARKER}`);
  });
});

describe("redis:// result backend URLs", () => {
  it("never show the password when the URL is refused or Redis cannot be reached", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("redis", "rediss"), fc.constantFrom("", "/0", "/0?ssl_cert_reqs=none"), spellings, async (scheme, tail, { password, inUrl }) => {
        const err = await failure(async () => {
          const backend = new RedisBackend({ url: `${scheme}://relay:${inUrl}@127.0.0.1:${closedPort}${tail}`, connectTimeout: 2_000 });
          try {
            await backend.getMeta("some-task");
          } finally {
            await backend.close();
          }
        });
        expectNoPassword(err, password);
      }),
      RUNS,
    );
  });

  it("never show the password through the app (backend built on first send)", async () => {
    await fc.assert(
      fc.asyncProperty(spellings, async ({ password, inUrl }) => {
        const err = await failure(async () => {
          const app = new Celery({ broker: `amqp://guest:guest@127.0.0.1:${closedPort}//`, backend: `redis://:${inUrl}@127.0.0.1:${closedPort}/0`, connectTimeout: 2_000 });
          try {
            await app.sendTask("tasks.echo", { args: [] });
          } finally {
            await app.close();
          }
        });
        expectNoPassword(err, password);
      }),
      RUNS,
    );
  });
});

describe("SQS queue URLs and endpoints", () => {
  const credentials = { accessKeyId: "AKIDREDACTION", secretAccessKey: "not-a-real-secret" };

  it("never show a password in the queue URL when it is refused or the endpoint cannot be reached", async () => {
    await fc.assert(
      fc.asyncProperty(spellings, async ({ password, inUrl }) => {
        const err = await failure(async () => {
          const app = new Celery({
            broker: sqsRelay({ queueUrl: `https://relay:${inUrl}@sqs.eu-west-1.amazonaws.com/000000000000/intake`, endpoint: `http://127.0.0.1:${closedPort}`, credentials }),
          });
          await app.sendTask("tasks.echo", { args: [] });
        });
        expectNoPassword(err, password);
      }),
      RUNS,
    );
  });

  it("never show a password in the endpoint (fetch refuses URLs with credentials; its error names the URL)", async () => {
    await fc.assert(
      fc.asyncProperty(spellings, async ({ password, inUrl }) => {
        const err = await failure(async () => {
          const app = new Celery({
            broker: sqsRelay({ queueUrl: "https://sqs.eu-west-1.amazonaws.com/000000000000/intake", endpoint: `http://relay:${inUrl}@127.0.0.1:${closedPort}`, credentials }),
          });
          await app.sendTask("tasks.echo", { args: [] });
        });
        expectNoPassword(err, password);
      }),
      RUNS,
    );
  });
});

/** A minimal task message for the transport alone (it fails before anything is encoded). */
function fakeMessage(): Parameters<AmqpTransport["publish"]>[0] {
  return {
    exchange: "",
    routingKey: "ce.redaction",
    properties: { contentType: "application/json", contentEncoding: "utf-8", headers: {}, deliveryMode: 2, correlationId: "x", replyTo: "x" },
    body: new Uint8Array(2),
    mandatory: false,
    immediate: false,
    meta: { id: "x", name: "tasks.echo", eta: null },
  } as unknown as Parameters<AmqpTransport["publish"]>[0];
}
