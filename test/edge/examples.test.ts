/**
 * The three examples, bundled the way their platforms bundle them and run on the real thing:
 * the Cloudflare Worker inside workerd and the Vercel Edge Function inside edge-runtime publish
 * through SQS (fauxqs) to the real relay handler, which publishes to RabbitMQ; the Lambda handler
 * publishes straight to RabbitMQ from a Node process. A real Celery worker executes every task.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { LOCAL_CREDENTIALS } from "../../scripts/local/fauxqs.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { purgeQueues } from "../helpers/rabbit.js";
import { startRelayHarness, type RelayHarness } from "../helpers/relay-harness.js";
import { bundle, NODE_CONDITIONS, REPO_ROOT, VERCEL_EDGE_CONDITIONS, WORKERD_CONDITIONS } from "./bundle.js";
import { RUNTIME_VERSIONS, startEdgeRuntime, startWorkerd } from "./runtimes.js";

/** A queue of our own and a record database of our own: other suites may run beside this one. */
const QUEUE = "ce.edge-examples";
const RECORD_DB = 13;
const BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//";
const EXAMPLES = join(REPO_ROOT, "examples");

const log = new ExecutionLog({ db: RECORD_DB });
let harness: RelayHarness;
let worker: CeleryWorker;

beforeAll(async () => {
  console.log(`runtimes: workerd ${RUNTIME_VERSIONS.workerd} (miniflare ${RUNTIME_VERSIONS.miniflare}), edge-runtime ${RUNTIME_VERSIONS.edgeRuntime}, Node ${process.version}`);
  [harness, worker] = await Promise.all([
    startRelayHarness({ brokerUrl: BROKER_URL }),
    startCeleryWorker({ queues: [QUEUE], env: { CELERY_EDGE_DEFAULT_QUEUE: QUEUE, CELERY_EDGE_RECORD_DB: String(RECORD_DB) } }),
  ]);
  await purgeQueues([QUEUE]);
});

afterAll(async () => {
  await Promise.all([harness?.stop(), worker?.stop()]);
});

beforeEach(async () => {
  await log.clear();
});

async function expectAddRan(taskId: string, a: number, b: number): Promise<void> {
  const record = await log.waitForTask(taskId, 20_000);
  expect(record.name).toBe("tasks.add");
  expect(record.args).toEqual([a, b]);
  expect([record.exchange, record.routing_key]).toEqual(["", QUEUE]);
  expect(record.hostname).toBe(worker.hostname);
}

const post = (body: unknown): RequestInit => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

describe("examples/cloudflare-worker in workerd", () => {
  it("enqueues tasks.add through the relay and the Celery worker runs it", async () => {
    // Prepare: wrangler.toml says which file and which compatibility date wrangler deploys.
    const toml = await readFile(join(EXAMPLES, "cloudflare-worker/wrangler.toml"), "utf8");
    const main = /^main\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
    const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
    expect(toml).not.toMatch(/^compatibility_flags/m); // no nodejs_compat
    const b = await bundle({ entry: join(EXAMPLES, "cloudflare-worker", main!), conditions: WORKERD_CONDITIONS });
    expect(b.nodeBuiltins).toEqual([]);
    const edge = await startWorkerd({
      script: b.code,
      compatibilityDate: compatibilityDate!,
      bindings: {
        CELERY_INTAKE_QUEUE_URL: harness.intake.url,
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
        CELERY_DEFAULT_QUEUE: QUEUE,
        SQS_ENDPOINT: harness.sqs.endpoint,
      },
    });
    try {
      // Act: two requests, the second one on the isolate's existing app.
      const responses = [await edge.fetch("/add", post({ a: 2, b: 3 })), await edge.fetch("/add", post({ a: 40, b: 2 }))];
      const refused = await edge.fetch("/add", post({ a: "2" }));

      // Assess
      expect(responses.map((r) => r.status)).toEqual([202, 202]);
      const [first, second] = (await Promise.all(responses.map((r) => r.json()))) as Array<{ taskId: string }>;
      await expectAddRan(first!.taskId, 2, 3);
      await expectAddRan(second!.taskId, 40, 2);
      expect(refused.status).toBe(400);
    } finally {
      await edge.dispose();
    }
  });
});

describe("examples/vercel-edge in edge-runtime", () => {
  it("enqueues tasks.add through the relay and the Celery worker runs it", async () => {
    // Prepare: what Vercel's build does with an Edge Function: check its config, bundle it with
    // the edge-light conditions and register its default export as the fetch handler.
    const entry = join(EXAMPLES, "vercel-edge/api/enqueue.ts");
    const b = await bundle({
      contents: [
        `import handler, { config } from ${JSON.stringify(entry)};`,
        `if (config.runtime !== "edge") throw new Error("not an Edge Function: config.runtime is " + config.runtime);`,
        `addEventListener("fetch", (event) => event.respondWith(handler(event.request)));`,
      ].join("\n"),
      conditions: VERCEL_EDGE_CONDITIONS,
      format: "iife",
      loader: "js",
    });
    expect(b.nodeBuiltins).toEqual([]);
    const edge = startEdgeRuntime({
      code: b.code,
      env: {
        CELERY_INTAKE_QUEUE_URL: harness.intake.url,
        CELERY_RELAY_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        CELERY_RELAY_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
        CELERY_DEFAULT_QUEUE: QUEUE,
        SQS_ENDPOINT: harness.sqs.endpoint,
      },
    });

    // Act
    const response = await edge.fetch("/api/enqueue", post({ a: 7, b: 8 }));
    const wrongMethod = await edge.fetch("/api/enqueue");

    // Assess
    expect(response.status).toBe(202);
    const { taskId } = (await response.json()) as { taskId: string };
    await expectAddRan(taskId, 7, 8);
    expect(wrongMethod.status).toBe(405);
  });
});

describe("examples/lambda-amqp on Node", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "celery-edge-lambda-"));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("publishes tasks.add straight to RabbitMQ on warm invocations and the Celery worker runs them", async () => {
    // Prepare: bundled as CDK's NodejsFunction bundles a handler (esbuild, node platform, CJS).
    const b = await bundle({ entry: join(EXAMPLES, "lambda-amqp/handler.ts"), conditions: NODE_CONDITIONS, platform: "node", format: "cjs" });
    const handlerFile = join(dir, "index.js");
    await writeFile(handlerFile, b.code);
    // A Lambda container: load the module once, invoke the handler several times.
    const invoke = `
      const { handler, app } = require(${JSON.stringify(handlerFile)});
      (async () => {
        const out = [];
        for (const body of [{ a: 1, b: 1 }, { a: 20, b: 22 }, { a: "x" }]) out.push(await handler({ body: JSON.stringify(body) }));
        await app.close();
        process.stdout.write(JSON.stringify(out));
      })().catch((e) => { console.error(e); process.exit(1); });`;

    // Act
    const { stdout } = await promisify(execFile)(process.execPath, ["-e", invoke], {
      env: { ...process.env, CELERY_BROKER_URL: BROKER_URL, CELERY_DEFAULT_QUEUE: QUEUE },
      timeout: 30_000,
    });

    // Assess
    const [first, second, refused] = JSON.parse(stdout) as Array<{ statusCode: number; body: string }>;
    expect([first!.statusCode, second!.statusCode, refused!.statusCode]).toEqual([202, 202, 400]);
    await expectAddRan((JSON.parse(first!.body) as { taskId: string }).taskId, 1, 1);
    await expectAddRan((JSON.parse(second!.body) as { taskId: string }).taskId, 20, 22);
  });
});
