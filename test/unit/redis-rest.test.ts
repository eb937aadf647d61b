/**
 * `redisRest` against fronts that are not Upstash: every answer a hostile or broken front can give
 * (wrong status, garbage, wrong shapes, endless or oversized bodies, silence, redirects, the token
 * echoed back) ends each task in a typed outcome, on time, with no token in any message. The front
 * is the transport's own `fetch` seam, answering with real `Response` objects; what the transport
 * asks of it (endpoint, header, commands) is checked on the way.
 */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AuthenticationError, Celery, CeleryError, ConfigurationError, ConnectionError, PublishError, TimeoutError, type TaskMessage } from "../../sdk/index.js";
import { redisRest, type RedisRestOptions } from "../../sdk/redis.js";
import { ROUTE_SCRIPT } from "../../sdk/transports/redis-route.js";
import type { PublishOutcome } from "../../sdk/transport.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

const TOKEN = "AYNgASQgNzY3-secret-rest-token=";
const URL_ = "https://eu1-test.upstash.io";

interface Seen {
  url: string;
  headers: Headers;
  commands: string[][];
  redirect: RequestRedirect | undefined;
}

/** A front that answers each request with `answer(commands, n)`; it records what it was asked. */
function front(answer: (commands: string[][], n: number, init: RequestInit) => Response | Promise<Response>): { fetch: typeof fetch; seen: Seen[] } {
  const seen: Seen[] = [];
  const f = (async (input: string | URL | Request, init?: RequestInit) => {
    const commands = JSON.parse(String(init!.body)) as string[][];
    seen.push({ url: String(input), headers: new Headers(init!.headers), commands, redirect: init!.redirect });
    return answer(commands, seen.length, init!);
  }) as typeof fetch;
  return { fetch: f, seen };
}

const json = (body: unknown, status = 200): Response => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const ok = (commands: string[][]): Response => json(commands.map(() => ({ result: 1 })));

async function messages(...calls: Array<Parameters<Celery["sendTask"]>[1]>): Promise<TaskMessage[]> {
  const recorder = new RecordingTransport();
  const app = new Celery({ broker: recorder });
  for (const c of calls) await app.sendTask("tasks.add", c);
  return recorder.messages;
}

const transport = (fetchFn: typeof fetch, options: Partial<RedisRestOptions> = {}) => redisRest({ url: URL_, token: TOKEN, fetch: fetchFn, ...options });

/** Publishes and returns the single outcome's error (or undefined) and how long it took. */
async function failureOf(fetchFn: typeof fetch, options: Partial<RedisRestOptions> = {}, call: { timeout?: number } = {}): Promise<{ error: CeleryError | undefined; ms: number }> {
  const [m] = await messages({ args: [1, 2] });
  const t0 = Date.now();
  const [outcome] = await transport(fetchFn, options).publishMany([m!], call);
  return { error: outcome!.ok ? undefined : outcome!.error, ms: Date.now() - t0 };
}

const expectNoToken = (error: unknown): void => {
  const e = error as Error;
  expect(`${e.message} ${e.stack ?? ""} ${JSON.stringify(e)}`).not.toContain(TOKEN);
  expect(`${e.message}`).not.toContain("secret-rest-token");
};

describe("what redisRest asks of the front", () => {
  it("POSTs the commands as a JSON array of arrays to <url>/pipeline with the bearer token, not following redirects", async () => {
    // Prepare
    const f = front(ok);
    const [a, b] = await messages({ args: [1, 2], queue: "ce.one" }, { args: [3, 4], queue: "ce.two", priority: 7 });

    // Act
    const outcomes = await transport(f.fetch).publishMany([a!, b!]);

    // Assess
    expect(outcomes.map((o) => o.ok)).toEqual([true, true]);
    expect(f.seen).toHaveLength(1);
    expect(f.seen[0]!.url).toBe(`${URL_}/pipeline`);
    expect(f.seen[0]!.headers.get("authorization")).toBe(`Bearer ${TOKEN}`);
    expect(f.seen[0]!.redirect).toBe("manual");
    const pushes = f.seen[0]!.commands.filter((c) => c[0] === "LPUSH");
    expect(pushes.map((c) => c[1])).toEqual(["ce.one", "ce.two\x06\x166"]);
    const stored = JSON.parse(pushes[0]![2]!) as { body: string; properties: { body_encoding: string; delivery_info: { routing_key: string } } };
    expect(stored.properties.body_encoding).toBe("base64");
    expect(stored.properties.delivery_info.routing_key).toBe("ce.one");
    expect(JSON.parse(atob(stored.body))[0]).toEqual([1, 2]);
  });

  it("routes a named exchange with EVALSHA of the shared script, and sends the script itself once the server says NOSCRIPT", async () => {
    // Prepare: the first answer says the set is empty, then NOSCRIPT, then pushed.
    const replies: unknown[] = [[], { error: "NOSCRIPT No matching script. Please use EVAL." }, 1];
    const f = front((commands) => json(commands.map((c) => (c[0]!.startsWith("EVAL") ? (typeof replies[0] === "object" && !Array.isArray(replies[0]) ? replies.shift() : { result: replies.shift() }) : { result: 1 }))));
    const [m] = await messages({ args: [1], exchange: "ce.topic", routingKey: "video.x" });

    // Act
    const [outcome] = await transport(f.fetch).publishMany([m!]);

    // Assess
    const scripts = f.seen.map((s) => s.commands.find((c) => c[0]!.startsWith("EVAL"))!);
    expect(scripts.map((c) => c[0])).toEqual(["EVALSHA", "EVALSHA", "EVAL"]);
    expect(scripts[0]![1]).toBe(createHash("sha1").update(ROUTE_SCRIPT).digest("hex"));
    expect(scripts[2]![1]).toBe(ROUTE_SCRIPT);
    expect(scripts[0]!.slice(2, 5)).toEqual(["1", "_kombu.binding.ce.topic", "-1"]);
    // The table read back was empty: nothing to push, and the task is unroutable once the script agrees.
    expect(outcome!.ok).toBe(false);
    expect((outcome as { error: CeleryError }).error.code).toBe("ERR_UNROUTABLE");
  });

  it("gives up on a binding table that changes on every read after three script calls, with nothing sent", async () => {
    // Prepare: the script always answers with a new table.
    let n = 0;
    const f = front((commands) => json(commands.map((c) => ({ result: c[0]!.startsWith("EVAL") ? [`video.${n++}\x06\x06\x16ce.q`] : 1 }))));
    const [m] = await messages({ args: [1], exchange: "ce.topic", routingKey: "video.x" });

    // Act
    const [outcome] = await transport(f.fetch).publishMany([m!]);

    // Assess
    expect(f.seen).toHaveLength(3);
    expect((outcome as { error: CeleryError }).error).toBeInstanceOf(PublishError);
    expect((outcome as { error: CeleryError }).error.message).toMatch(/kept changing.*was not sent/);
  });
});

describe("a front that refuses", () => {
  for (const status of [401, 403]) {
    it(`HTTP ${status} is an AuthenticationError (ERR_AUTH, a ConnectionError) without the token, even when the front echoes it`, async () => {
      // Act
      const { error } = await failureOf(front(() => json({ error: `WRONGPASS invalid token ${TOKEN}` }, status)).fetch);

      // Assess
      expect(error).toBeInstanceOf(AuthenticationError);
      expect(error).toBeInstanceOf(ConnectionError);
      expect(error!.code).toBe("ERR_AUTH");
      expect(error!.message).toMatch(new RegExp(`HTTP ${status}.*the tasks were not sent`));
      expect(error!.message).toContain("WRONGPASS invalid token ***");
      expectNoToken(error);
    });
  }

  it("HTTP 5xx is a ConnectionError saying the tasks may or may not have been sent", async () => {
    const { error } = await failureOf(front(() => new Response("<html>bad gateway</html>", { status: 502 })).fetch);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error!.code).toBe("ERR_CONNECTION");
    expect(error!.message).toMatch(/HTTP 502.*may or may not have been sent/);
  });

  it("HTTP 400 with Upstash's {error} is a PublishError saying nothing was sent", async () => {
    const { error } = await failureOf(front(() => json({ error: "ERR max request size exceeded" }, 400)).fetch);
    expect(error).toBeInstanceOf(PublishError);
    expect(error!.code).toBe("ERR_PUBLISH");
    expect(error!.message).toMatch(/HTTP 400: ERR max request size exceeded\); the tasks were not sent/);
  });

  it("a redirect is not followed (the token would go along) and is a ConnectionError", async () => {
    const f = front(() => new Response(null, { status: 307, headers: { location: "https://elsewhere.example/pipeline" } }));
    const { error } = await failureOf(f.fetch);
    expect(f.seen).toHaveLength(1);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error!.message).toMatch(/redirected \(HTTP 307\), which is not followed/);
  });

  it("a per-command {error} fails that task alone with PublishError, the others in the batch are sent", async () => {
    // Prepare
    const f = front((commands) => json(commands.map((c) => (c[0] === "LPUSH" && c[1] === "ce.bad" ? { error: `WRONGTYPE Operation against a key ${TOKEN}` } : { result: 1 }))));
    const [good, bad] = await messages({ args: [1], queue: "ce.good" }, { args: [2], queue: "ce.bad" });

    // Act
    const [o1, o2] = await transport(f.fetch).publishMany([good!, bad!]);

    // Assess
    expect(o1!.ok).toBe(true);
    const error = (o2 as { error: CeleryError }).error;
    expect(error).toBeInstanceOf(PublishError);
    expect(error.message).toMatch(/refused task .*: WRONGTYPE Operation against a key \*\*\*/);
    expectNoToken(error);
  });

  it("an error from fetch itself is a ConnectionError with the token masked", async () => {
    const fetchFn = (async () => {
      throw new TypeError(`fetch failed: header Bearer ${TOKEN}\r\ninjected`);
    }) as typeof fetch;
    const { error } = await failureOf(fetchFn);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error!.message).toMatch(/cannot reach https:\/\/eu1-test\.upstash\.io\/pipeline: fetch failed: header Bearer \*\*\* injected/);
    expectNoToken(error);
  });
});

describe("a front that answers garbage", () => {
  const garbage: Array<[string, () => Response]> = [
    ["HTML", () => new Response("<html>hello</html>")],
    ["an empty body", () => new Response("")],
    ["a bare {result}", () => json({ result: 1 })],
    ["too few replies", () => json([])],
    ["numbers instead of replies", () => json([1, 2, 3])],
    ["null replies", () => json([null, null])],
    ["replies without result or error", () => json([{ foo: 1 }, { bar: 2 }])],
    ["a non-string error", () => json([{ error: 42 }, { error: { x: 1 } }])],
    ["JSON nested 100 000 deep", () => new Response("[".repeat(100_000) + "]".repeat(100_000))],
  ];
  for (const [what, answer] of garbage) {
    it(`${what}: a ConnectionError, not a crash`, async () => {
      const { error } = await failureOf(front(answer).fetch);
      expect(error).toBeInstanceOf(ConnectionError);
      expect(error!.message).toMatch(/may or may not have been sent/);
    });
  }

  it("a push answered with something LPUSH never answers is a ConnectionError for that task", async () => {
    const { error } = await failureOf(front((commands) => json(commands.map((c) => ({ result: c[0] === "LPUSH" ? "OK" : 1 })))).fetch);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error!.message).toMatch(/with something Redis does not/);
  });

  it("a script answered with a table of non-strings is a ConnectionError, not a table", async () => {
    const [m] = await messages({ args: [1], exchange: "ce.topic", routingKey: "video.x" });
    const f = front((commands) => json(commands.map((c) => ({ result: c[0]!.startsWith("EVAL") ? [1, { a: 2 }] : 1 }))));
    const [outcome] = await transport(f.fetch).publishMany([m!]);
    expect((outcome as { error: CeleryError }).error).toBeInstanceOf(ConnectionError);
    expect(f.seen).toHaveLength(1);
  });

  it("any JSON at all as the pipeline answer settles every task with a CeleryError or a receipt, never a throw", async () => {
    const batch = await messages({ args: [1], queue: "ce.a" }, { args: [2], exchange: "ce.topic", routingKey: "a.b" }, { args: [3], exchange: "ce.fan", routingKey: "all" });
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.integer({ min: 100, max: 599 }), async (body, status) => {
        const t = transport(front(() => new Response(JSON.stringify(body), { status })).fetch, { exchangeTypes: { "ce.fan": "fanout" } });
        const outcomes: PublishOutcome[] = await t.publishMany(batch);
        expect(outcomes).toHaveLength(batch.length);
        for (const o of outcomes) if (!o.ok) expect(o.error).toBeInstanceOf(CeleryError);
      }),
      { numRuns: 300 },
    );
  });
});

describe("a front that never finishes", () => {
  it("a body larger than maxResponseBytes is cut off at the limit: a ConnectionError at once", async () => {
    // Prepare: an endless stream of 64 KiB chunks, as fast as it is read.
    let sent = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(c) {
        sent += 65_536;
        c.enqueue(new Uint8Array(65_536).fill(0x20));
      },
    });

    // Act
    const { error, ms } = await failureOf(front(() => new Response(endless)).fetch, { maxResponseBytes: 256 * 1024 });

    // Assess
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error!.message).toMatch(/answered more than 262144 bytes/);
    expect(sent).toBeLessThanOrEqual(256 * 1024 + 3 * 65_536);
    expect(ms).toBeLessThan(2_000);
  });

  it("a body trickling forever under the limit is a TimeoutError when the call's time is up", async () => {
    let cancelled = false;
    const trickle = new ReadableStream<Uint8Array>({
      pull: (c) => new Promise<void>((r) => setTimeout(() => (cancelled || c.enqueue(new Uint8Array([0x20])), r()), 20)),
      cancel: () => void (cancelled = true),
    });
    const { error, ms } = await failureOf(front(() => new Response(trickle)).fetch, {}, { timeout: 300 });
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error!.code).toBe("ERR_TIMEOUT");
    expect(error!.message).toMatch(/within 300 ms; the tasks may or may not have been sent/);
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(1_500);
    // The transport let go of the body rather than leaving it to run.
    expect(cancelled).toBe(true);
  });

  it("a fetch that never settles, even ignoring its signal, is a TimeoutError on the transport's own timeout", async () => {
    const silent = (() => new Promise<Response>(() => {})) as typeof fetch;
    const { error, ms } = await failureOf(silent, { timeout: 250 });
    expect(error).toBeInstanceOf(TimeoutError);
    expect(ms).toBeGreaterThanOrEqual(240);
    expect(ms).toBeLessThan(1_500);
  });
});

describe("options", () => {
  const refused: Array<[string, Partial<RedisRestOptions>, RegExp]> = [
    ["a URL carrying the token as _token", { url: `${URL_}/?_token=${TOKEN}` }, /without credentials, query or fragment/],
    ["a URL with user info", { url: `https://default:${TOKEN}@eu1-test.upstash.io` }, /without credentials, query or fragment/],
    ["plain http to a remote host", { url: "http://eu1-test.upstash.io" }, /must be https:\/\/ \(http:\/\/ only to loopback\)/],
    ["a token with a line break", { token: `${TOKEN}\r\nX-Injected: 1` }, /token must be the REST token .*got \d+ characters/],
    ["an empty token", { token: "" }, /token must be the REST token/],
    ["a missing token", { token: undefined as unknown as string }, /got undefined/],
    ["a timeout of zero", { timeout: 0 }, /timeout must be a number above 0/],
    ["a negative db", { db: -1 }, /db must be a database number/],
  ];
  for (const [what, options, says] of refused) {
    it(`refuses ${what} with a ConfigurationError that does not show the token`, () => {
      let error: unknown;
      try {
        redisRest({ url: URL_, token: TOKEN, ...options });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(says);
      expectNoToken(error);
    });
  }

  it("takes http:// to loopback, for a local front", () => {
    expect(redisRest({ url: "http://127.0.0.1:8079", token: TOKEN }).where).toBe("http://127.0.0.1:8079");
  });
});
