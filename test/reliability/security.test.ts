/**
 * Security: credentials never leak into relay logs, errors or messages; amqps:// works against a
 * real TLS endpoint and refuses one it cannot verify.
 *
 * Covered elsewhere, not repeated: the relay refuses destinations outside its policy
 * (test/e2e/relay.test.ts, "refuses a RabbitMQ built-in exchange…" and test/e2e/relay-attacks.test.ts, and the relay-side rows
 * of test/unit/bad-input.test.ts); the CDK stack grants least privilege (test/infra/
 * celery-relay.test.ts, "CeleryRelay IAM": exact relay and scheduler role policies, grantSend =
 * sqs:SendMessage only, enforceSSL on every queue, cdk-nag AwsSolutions clean).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { promisify, inspect } from "node:util";
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Celery, CeleryError, type CeleryError as CeleryErrorType } from "../../sdk/node.js";
import { sqsRelay } from "../../sdk/sqs.js";
import { brokerUrlFromSecret } from "../../functions/shared/broker-url.js";
import { createQueue } from "../../scripts/local/fauxqs.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { getRawMessage, purgeQueues, rabbitmqctl, withChannel } from "../helpers/rabbit.js";
import { startRelayHarness, type RelayHarness } from "../helpers/relay-harness.js";
import { RecordCounter, RECORD_DB, ensureBrokerUp, sleep, workerEnv } from "./helpers/faults.js";
import { startTlsEndpoint, type TlsEndpoint } from "./helpers/tls-endpoint.js";
import { createClient } from "redis";

const QUEUE = "ce.rel.security";
const USER = `ce-rel-${randomBytes(3).toString("hex")}`;
const PASSWORD = `Pw${randomBytes(12).toString("hex")}Zq`;
const AWS_SECRET = `awsSecret${randomBytes(12).toString("hex")}`;
const BROKER = `amqp://${USER}:${PASSWORD}@127.0.0.1:5672//`;
const records = new RecordCounter();
let worker: CeleryWorker;
let harness: RelayHarness;
let app: Celery;

beforeAll(async () => {
  await ensureBrokerUp();
  await rabbitmqctl(["add_user", USER, PASSWORD]);
  await rabbitmqctl(["set_permissions", "-p", "/", USER, ".*", ".*", ".*"]);
  await records.open();
  process.env.POWERTOOLS_LOG_LEVEL = "INFO"; // every line the relay can write is in what we grep
  harness = await startRelayHarness({ brokerUrl: BROKER, maxReceiveCount: 20, visibilityTimeout: 1 });
  worker = await startCeleryWorker({ queues: [QUEUE], env: workerEnv(QUEUE) });
  await purgeQueues([QUEUE]);
  app = new Celery({
    broker: sqsRelay({ queueUrl: harness.intake.url, endpoint: harness.sqs.endpoint, credentials: { accessKeyId: "AKIDRELIABILITY", secretAccessKey: AWS_SECRET } }),
    defaultQueue: QUEUE,
  });
});

afterAll(async () => {
  await app?.close();
  await harness?.stop();
  await worker?.stop();
  await records.close();
  await rabbitmqctl(["delete_user", USER]).catch(() => undefined);
});

beforeEach(async () => {
  await records.clear();
});

const leaks = (text: string): boolean => text.includes(PASSWORD) || text.includes(encodeURIComponent(PASSWORD));

/** Everything an error carries: message, stack, cause chain and own properties, as a logger would print it. */
const everything = (err: unknown): string => `${inspect(err, { depth: Infinity, showHidden: true })}\n${JSON.stringify(err, Object.getOwnPropertyNames(err ?? {}))}`;

async function waitForLog(fragment: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!harness.logs.some((l) => l.includes(fragment))) {
    if (Date.now() > deadline) throw new Error(`relay never logged ${JSON.stringify(fragment)} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

describe("credentials", () => {
  it("never appear in the relay's logs: published, refused, unroutable, and refused by the broker", async () => {
    // Prepare / Act: a task that runs, one outside the relay policy, one unroutable…
    const ok = await app.sendTask("tasks.echo", { args: ["secure"] });
    await app.sendTask("tasks.echo", { args: [], exchange: "amq.topic", routingKey: "x" });
    const unroutable = await app.sendTask("tasks.echo", { args: [], exchange: "celery_edge.topic", routingKey: "nobody.security" });
    await records.waitForAll(new Set([ok.id]), 20_000);
    await waitForLog("destination is a RabbitMQ built-in exchange", 20_000);
    await waitForLog(unroutable.id, 20_000);
    // …and the broker refusing the relay's login: its password changes and its connection is cut.
    let during: string;
    try {
      await rabbitmqctl(["change_password", USER, `${PASSWORD}-rotated`]);
      await rabbitmqctl(["close_all_user_connections", USER, "reliability test: password rotated"]);
      during = (await app.sendTask("tasks.echo", { args: ["during rotation"] })).id;
      await waitForLog("ACCESS-REFUSED", 20_000);
    } finally {
      await rabbitmqctl(["change_password", USER, PASSWORD]);
    }
    await records.waitForAll(new Set([during]), 30_000);

    // Assess
    const logged = harness.logs.join("\n");
    expect(logged).toContain('"level":"ERROR"');
    expect(logged).toContain("ERR_CONNECTION");
    expect(logged).toContain("ERR_UNROUTABLE");
    expect(leaks(logged)).toBe(false);
    expect(logged).not.toContain(`${USER}:`);
    expect((await records.perTask()).get(during)).toBe(1);
  }, 90_000);

  it("never appear in what the worker receives, nor in the SQS envelope", async () => {
    // Prepare: the envelope as SQS stores it, from a producer with distinctive AWS credentials.
    const capture = await createQueue(harness.client, `capture-${Date.now()}`);
    const producer = new Celery({
      broker: sqsRelay({ queueUrl: capture.url, endpoint: harness.sqs.endpoint, credentials: { accessKeyId: "AKIDRELIABILITY", secretAccessKey: AWS_SECRET } }),
      defaultQueue: QUEUE,
    });
    const direct = new Celery({ broker: BROKER, defaultQueue: "ce.rel.security.raw" });

    // Act
    await producer.sendTask("tasks.echo", { args: ["envelope"] });
    const stored = await harness.client.send(new ReceiveMessageCommand({ QueueUrl: capture.url, MessageAttributeNames: ["All"], WaitTimeSeconds: 2 }));
    await direct.sendTask("tasks.echo", { args: ["raw"] });
    const raw = await getRawMessage("ce.rel.security.raw", 5_000);
    const viaRelay = await app.sendTask("tasks.echo", { args: ["record"] });
    await records.waitForAll(new Set([viaRelay.id]), 20_000);
    const recordDb = createClient({ url: "redis://127.0.0.1:6379", database: RECORD_DB });
    await recordDb.connect();
    const recorded = (await recordDb.lRange("celery_edge:executions", 0, -1)).join("\n");
    recordDb.destroy();
    await producer.close();
    await direct.close();
    await withChannel(async (ch) => ch.deleteQueue("ce.rel.security.raw"));

    // Assess
    const envelope = JSON.stringify(stored.Messages);
    expect(envelope).toContain("celeryEdgeEnvelope");
    expect(envelope).not.toContain(AWS_SECRET);
    expect(leaks(envelope)).toBe(false);
    expect(raw).not.toBeNull();
    const onTheWire = `${JSON.stringify(raw!.properties)}\n${raw!.content.toString("latin1")}`;
    expect(onTheWire).toContain("raw");
    expect(leaks(onTheWire)).toBe(false);
    expect(recorded).toContain(viaRelay.id);
    expect(leaks(recorded)).toBe(false);
  }, 60_000);

  const failures: Array<[string, () => Promise<unknown>]> = [
    ["the broker refuses the login", async () => sendWith(`amqp://${USER}:${PASSWORD}-wrong@127.0.0.1:5672//`)],
    ["nothing listens on the port", async () => sendWith(`amqp://${USER}:${PASSWORD}@127.0.0.1:1//`)],
    ["the host does not resolve", async () => sendWith(`amqp://${USER}:${PASSWORD}@no-such-host.invalid:5672//`)],
    ["the URL is malformed", async () => sendWith(`amqp://${USER}:${PASSWORD}@[not-a-host:5672//`)],
    ["the URL has a bad port", async () => sendWith(`amqp://${USER}:${PASSWORD}@127.0.0.1:port//`)],
    ["the broker secret is unreadable", async () => brokerUrlFromSecret(`{"username": "${USER}", "password": "${PASSWORD}"`)],
    ["the broker secret lacks a host", async () => brokerUrlFromSecret(JSON.stringify({ username: USER, password: PASSWORD }))],
  ];
  for (const [situation, attempt] of failures) {
    it(`never appear in the error when ${situation}`, async () => {
      // Act
      const err = await attempt().then(
        () => undefined,
        (e: unknown) => e,
      );

      // Assess
      expect(err).toBeInstanceOf(CeleryError);
      expect((err as CeleryErrorType).message).not.toBe("");
      expect(leaks(everything(err))).toBe(false);
    });
  }
});

async function sendWith(url: string): Promise<void> {
  const client = new Celery({ broker: url, connectTimeout: 3_000 });
  try {
    await client.sendTask("tasks.echo", { args: [] });
  } finally {
    await client.close();
  }
}

describe("amqps://", () => {
  let endpoint: TlsEndpoint;
  beforeAll(async () => {
    endpoint = await startTlsEndpoint();
  });
  afterAll(async () => {
    await endpoint?.close();
  });

  it("publishes through a real TLS endpoint it trusts, and the worker runs the task", async () => {
    // Prepare: the CA is trusted through NODE_EXTRA_CA_CERTS, read by Node at start-up.
    const script = fileURLToPath(new URL("./helpers/send-over-tls.ts", import.meta.url));
    const before = endpoint.handshakes;

    // Act
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", script, `amqps://${USER}:${PASSWORD}@127.0.0.1:${endpoint.port}//`, QUEUE], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: endpoint.caFile },
      timeout: 30_000,
    }).catch((e: { stdout?: string; stderr?: string }) => {
      throw new Error(`sending over TLS failed: ${e.stdout ?? ""} ${e.stderr ?? ""}`);
    });
    const { id } = JSON.parse(stdout) as { id: string };
    const counts = await records.waitForAll(new Set([id]), 20_000);

    // Assess
    expect(endpoint.handshakes).toBeGreaterThan(before);
    expect(counts.get(id)).toBe(1);
    expect(leaks(stdout)).toBe(false);
  }, 60_000);

  it("refuses a TLS endpoint whose certificate it cannot verify, with a typed connection error", async () => {
    // Prepare: this process does not trust the throwaway CA.
    const client = new Celery({ broker: `amqps://${USER}:${PASSWORD}@127.0.0.1:${endpoint.port}//`, connectTimeout: 5_000 });

    // Act
    const err = await client.sendTask("tasks.echo", { args: [] }).catch((e: unknown) => e);
    await client.close();

    // Assess
    expect(err).toBeInstanceOf(CeleryError);
    expect((err as CeleryErrorType).code).toBe("ERR_CONNECTION");
    expect((err as Error).message).toMatch(/certificate/i);
    expect(leaks(everything(err))).toBe(false);
  });
});
