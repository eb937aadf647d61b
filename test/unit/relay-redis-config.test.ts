/**
 * The relay's configuration for a Redis broker, without a Redis: which transport a broker URL
 * makes, BROKER_TRANSPORT_OPTIONS checked at cold start, the environment the construct writes, the
 * broker secret's Redis forms, the park threshold under a visibility timeout, and the Redis keys no
 * policy can open. What the relay writes into a real Redis: test/integration/relay-redis-target.test.ts.
 */
import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import { parkThresholdFor, relayBroker } from "../../functions/relay/broker.js";
import { brokerUrlFromSecret } from "../../functions/shared/broker-url.js";
import { relayConfig } from "../../functions/shared/config.js";
import { RELAY_ENV, relayEnvironment } from "../../functions/shared/environment.js";
import { resolvePolicy } from "../../functions/shared/policy.js";
import { ConfigurationError } from "../../sdk/errors.js";
import { RedisTransport } from "../../sdk/transports/redis.js";

const BASE_ENV = { BROKER_URL: "redis://127.0.0.1:6379/3" };
const thrown = (f: () => unknown): Error | undefined => {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  return undefined;
};

describe("the relay's broker by URL scheme", () => {
  it("makes a Redis transport for redis:// and rediss://, with the workers' transport options", async () => {
    const plain = await relayBroker("redis://127.0.0.1:6379/3", { transportOptions: { global_keyprefix: "fleet:" } });
    const tls = await relayBroker(" rediss://:p%40ss@cache.example:6380/0 ");
    expect(plain).toBeInstanceOf(RedisTransport);
    expect((plain as RedisTransport).layout.prefix).toBe("fleet:");
    expect((plain as RedisTransport).layout.fanoutPrefix).toBe("/3.");
    expect(tls.kind).toBe("redis");
    expect((tls as RedisTransport).where).toBe("rediss://cache.example:6380/0");
    await Promise.all([plain.close(), tls.close()]);
  });

  it("makes an AMQP transport otherwise, telling once that transport options are ignored", async () => {
    const told: string[] = [];
    const amqp = await relayBroker("amqp://guest:guest@127.0.0.1:5672//", { transportOptions: { global_keyprefix: "x:" }, warn: (m) => told.push(m) });
    expect(amqp.kind).toBe("amqp");
    expect(told).toEqual([expect.stringContaining("BROKER_TRANSPORT_OPTIONS")]);
    await amqp.close();
  });

  it("refuses a list of Redis URLs (kombu's Redis transport takes one server) without showing a password", async () => {
    const err = await relayBroker("redis://:hunter2@a:6379/0;redis://:hunter2@b:6379/0").then(() => undefined, (e: Error) => e);
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err!.message).not.toContain("hunter2");
  });

  it("accepts a ';' inside a Redis password", async () => {
    const t = await relayBroker("redis://:pa;ss@127.0.0.1:6379/1");
    expect((t as RedisTransport).where).toBe("redis://127.0.0.1:6379/1");
    await t.close();
  });
});

describe("the relay bundle per broker type", () => {
  /** The handler bundled as the construct bundles it, with the broker-type switch set. */
  async function bundle(redis: boolean): Promise<{ bytes: number; inputs: string[]; text: string }> {
    const out = await build({
      entryPoints: [new URL("../../functions/relay/handler.ts", import.meta.url).pathname],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      minify: true,
      write: false,
      metafile: true,
      external: ["@aws-sdk/*", "@smithy/*"],
      define: { CELERY_EDGE_RELAY_REDIS: String(redis) },
      logLevel: "silent",
    });
    const file = out.outputFiles[0]!;
    return { bytes: file.contents.length, inputs: Object.keys(out.metafile.inputs), text: file.text };
  }

  it("leaves node-redis and the Redis transport out of a relay bundled for RabbitMQ, and keeps them in one for Redis", async () => {
    const [rabbit, redis] = await Promise.all([bundle(false), bundle(true)]);
    const redisInputs = (b: { inputs: string[] }) => b.inputs.filter((i) => /node_modules\/(@redis|redis)\/|sdk\/transports\/redis\.ts/.test(i));
    expect(redisInputs(rabbit)).toEqual([]);
    expect(rabbit.text).toContain("bundled for RabbitMQ only");
    expect(redisInputs(redis).length).toBeGreaterThan(10);
    console.log(`relay bundle: ${rabbit.bytes} B for RabbitMQ, ${redis.bytes} B with Redis`);
    expect(redis.bytes - rabbit.bytes).toBeGreaterThan(400_000);
  }, 30_000);
});

describe("the park threshold on Redis", () => {
  it("is at most half the workers' visibility_timeout, and as configured on RabbitMQ", async () => {
    const kombuDefault = await relayBroker("redis://127.0.0.1:6379/0");
    const lowered = await relayBroker("redis://127.0.0.1:6379/0", { transportOptions: { visibility_timeout: 601 } });
    const amqp = await relayBroker("amqp://guest:guest@127.0.0.1:5672//");
    expect(parkThresholdFor(kombuDefault, 900)).toBe(900);
    expect(parkThresholdFor(lowered, 900)).toBe(300);
    expect(parkThresholdFor(amqp, 900)).toBe(900);
    await Promise.all([kombuDefault.close(), lowered.close(), amqp.close()]);
  });
});

describe("BROKER_TRANSPORT_OPTIONS", () => {
  it("is read as a JSON object of kombu's options", () => {
    const config = relayConfig({ ...BASE_ENV, BROKER_TRANSPORT_OPTIONS: '{"global_keyprefix":"fleet:","priority_steps":[0,5,9],"visibility_timeout":7200}' });
    expect(config.brokerTransportOptions).toEqual({ global_keyprefix: "fleet:", priority_steps: [0, 5, 9], visibility_timeout: 7200 });
    expect(relayConfig(BASE_ENV).brokerTransportOptions).toBeUndefined();
  });

  it.each([
    ["not JSON", "{global_keyprefix: 'x'}", /JSON object/],
    ["a list", '["global_keyprefix"]', /JSON object/],
    ["too long", JSON.stringify({ global_keyprefix: "x".repeat(5000) }), /at most 4096/],
    ["an option kombu could not use", '{"priority_steps":[9,0]}', /priority_steps must be in ascending order/],
    ["a visibility timeout that is not seconds", '{"visibility_timeout":"1h"}', /visibility_timeout/],
  ])("stops the cold start when it is %s", (_what, value, message) => {
    const err = thrown(() => relayConfig({ ...BASE_ENV, BROKER_TRANSPORT_OPTIONS: value }));
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err!.message).toMatch(message);
  });

  it("is written by the construct's environment only when given", () => {
    const base = { brokerSecretArn: "arn", policyJson: "{}", trustedForwardersJson: "[]", intakeQueueUrl: "u", retryBaseSeconds: 30, retryMaxSeconds: 900, parkQueueUrl: "p", parkThresholdSeconds: 900, maxReceiveCount: 30 };
    expect(relayEnvironment(base)).not.toHaveProperty(RELAY_ENV.brokerTransportOptions);
    expect(relayEnvironment({ ...base, brokerTransportOptionsJson: '{"sep":":"}' })[RELAY_ENV.brokerTransportOptions]).toBe('{"sep":":"}');
  });
});

describe("the broker secret for a Redis fleet", () => {
  it("takes a bare redis:// or rediss:// URL as is", () => {
    expect(brokerUrlFromSecret(" rediss://:tok@cache.example:6380/2\n")).toBe("rediss://:tok@cache.example:6380/2");
    expect(brokerUrlFromSecret("redis://127.0.0.1:6379/0")).toBe("redis://127.0.0.1:6379/0");
  });

  it("builds a Redis URL from components with scheme rediss, escaping the password and taking db", () => {
    expect(brokerUrlFromSecret('{"scheme":"rediss","username":"app","password":"p@ss/w:rd","host":"c.example","db":4}')).toBe("rediss://app:p%40ss%2Fw%3Ard@c.example:6379/4");
    expect(brokerUrlFromSecret('{"scheme":"redis","username":"default","password":"pw","host":"h","port":6380}')).toBe("redis://:pw@h:6380/0");
  });

  it("refuses a db that is not a database number", () => {
    const err = thrown(() => brokerUrlFromSecret('{"scheme":"redis","username":"u","password":"secret-pw","host":"h","db":"0; FLUSHALL"}'));
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err!.message).not.toContain("secret-pw");
  });
});

describe("the Redis keys no policy can open", () => {
  it.each(["unacked", "unacked_index", "unacked_mutex", "_kombu.binding.celery", "celery-task-meta-1", "celery-taskset-meta-1", "chord-unlock-1"])(
    "refuses queue %s (kombu's or the result backend's key on a Redis broker)",
    (name) => {
      const err = thrown(() => resolvePolicy({ queues: [{ name }] }));
      expect(err).toBeInstanceOf(ConfigurationError);
      expect(err!.message).toMatch(/no policy can open/);
    },
  );

  it("refuses an exchange named like kombu's binding sets", () => {
    expect(thrown(() => resolvePolicy({ exchanges: [{ exchange: "_kombu.binding.celery", routingKeys: ["#"] }] }))?.message).toMatch(/no policy can open/);
  });

  it("still opens ordinary queue names", () => {
    expect([...resolvePolicy({ queues: [{ name: "unacked-orders" }, { name: "celery" }] }).queues.keys()]).toEqual(["unacked-orders", "celery"]);
  });
});
