/**
 * The Upstash REST stand-in (a test fixture) speaks the documented subset the way Upstash's REST
 * API page describes it: bearer auth, one command in the body, `/pipeline`, `/multi-exec` and the
 * base64 response encoding, on the real Redis. The edge tests rely on it, so it is checked here.
 */
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startUpstashRestStandin, type UpstashRestStandin } from "../fixtures/upstash-rest-standin.js";

const REDIS_URL = "redis://127.0.0.1:6379/7";
const TOKEN = "rr-standin-selftest";
let standin: UpstashRestStandin;

const post = async (path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> => {
  const r = await fetch(`${standin.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, ...headers }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
};

beforeAll(async () => {
  standin = await startUpstashRestStandin({ redisUrl: REDIS_URL, token: TOKEN });
  await post("/", ["DEL", "rr:selftest", "rr:selftest:set"]);
});

afterAll(async () => {
  await post("/", ["DEL", "rr:selftest", "rr:selftest:set"]).catch(() => undefined);
  await standin?.stop();
});

describe("the Upstash REST stand-in", () => {
  it("refuses a request without the bearer token with HTTP 401 and an {error}", async () => {
    const r = await fetch(`${standin.url}/pipeline`, { method: "POST", body: JSON.stringify([["PING"]]) });
    expect(r.status).toBe(401);
    expect(await r.json()).toEqual({ error: expect.any(String) });
  });

  it("runs one command from the body: {result}, or HTTP 400 {error} when Redis refuses it", async () => {
    expect(await post("/", ["LPUSH", "rr:selftest", "a", 2])).toEqual({ status: 200, body: { result: 2 } });
    const refused = await post("/", ["SADD", "rr:selftest", "x"]);
    expect(refused.status).toBe(400);
    expect((refused.body as { error: string }).error).toMatch(/^WRONGTYPE/);
  });

  it("answers /pipeline with one {result} or {error} per command, in order, running the ones after an error", async () => {
    const r = await post("/pipeline", [["LPUSH", "rr:selftest", "b"], ["SADD", "rr:selftest", "x"], ["LRANGE", "rr:selftest", 0, -1], ["FLUSHALL"]]);
    expect(r.status).toBe(200);
    const [push, wrong, range, flush] = r.body as Array<Record<string, unknown>>;
    expect(push).toEqual({ result: 3 });
    expect(wrong!.error).toMatch(/^WRONGTYPE/);
    expect(range).toEqual({ result: ["b", "2", "a"] });
    expect(flush!.error).toMatch(/not supported by the stand-in/);
  });

  it("answers /multi-exec with per-command replies from one transaction, or one {error} when it is discarded", async () => {
    const done = await post("/multi-exec", [["SADD", "rr:selftest:set", "m"], ["SADD", "rr:selftest", "x"], ["SMEMBERS", "rr:selftest:set"]]);
    expect(done.status).toBe(200);
    const [added, wrong, members] = done.body as Array<Record<string, unknown>>;
    expect(added).toEqual({ result: 1 });
    expect(wrong!.error).toMatch(/^WRONGTYPE/);
    expect(members).toEqual({ result: ["m"] });
    const discarded = await post("/multi-exec", [["SADD", "rr:selftest:set", "n"], ["FLUSHALL"]]);
    expect(discarded.status).toBe(400);
    expect(discarded.body).toEqual({ error: expect.stringMatching(/discarded/) });
    const redis = createClient({ url: REDIS_URL });
    await redis.connect();
    expect(await redis.sMembers("rr:selftest:set")).toEqual(["m"]);
    await redis.quit();
  });

  it("base64-encodes the strings of a result when asked with Upstash-Encoding, except a plain OK", async () => {
    const r = await post("/pipeline", [["LRANGE", "rr:selftest", 0, 0], ["PING"]], { "upstash-encoding": "base64" });
    expect(r.body).toEqual([{ result: [Buffer.from("b").toString("base64")] }, { result: Buffer.from("PONG").toString("base64") }]);
  });
});
