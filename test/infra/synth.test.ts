/**
 * @module
 * The real `npx cdk synth` of the app `cdk.json` names, offline: no credentials, no context lookups,
 * no network (every HTTP(S) client is pointed at a local proxy that records connection attempts).
 * Then each function asset is checked for what Lambda will run: one minified esbuild ES module that
 * loads in Node with only the runtime-provided AWS SDK beside it and exports `handler`.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink } from "node:fs/promises";
import { builtinModules } from "node:module";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const STACK = "CeleryEdge";
const RELAY_BUDGET_BYTES = 400 * 1024;
/** Modules the nodejs24.x runtime provides, so the bundles leave them external. */
const RUNTIME_PROVIDED = /^@(aws-sdk|smithy)\//;

interface CfnResource {
  Type: string;
  Properties: Record<string, any>;
  Metadata?: Record<string, unknown>;
}

let workdir = "";
let outdir = "";
let synthFailure: string | undefined;
let synthMillis = 0;
let template: { Resources: Record<string, CfnResource>; Outputs: Record<string, unknown> };
const proxied: string[] = [];
let proxy: Server;

/** A TCP listener posing as an HTTP(S) proxy: whatever connects is recorded and dropped. */
function recordingProxy(): Promise<{ server: Server; url: string }> {
  return new Promise((resolve) => {
    const server = createServer((socket) => {
      socket.once("data", (head) => proxied.push(head.toString("latin1").split("\r\n")[0] ?? "?"));
      socket.setTimeout(1000, () => socket.destroy());
      socket.on("error", () => {});
    });
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({ server, url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}` });
    });
  });
}

beforeAll(async () => {
  const recorder = await recordingProxy();
  proxy = recorder.server;
  workdir = await mkdtemp(join(tmpdir(), "celery-edge-synth-"));
  outdir = join(workdir, "cdk.out");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CDK_DISABLE_VERSION_CHECK: "1",
    CDK_DISABLE_CLI_TELEMETRY: "true",
    AWS_EC2_METADATA_DISABLED: "true",
    HTTP_PROXY: recorder.url,
    HTTPS_PROXY: recorder.url,
    http_proxy: recorder.url,
    https_proxy: recorder.url,
    NO_PROXY: "",
    no_proxy: "",
  };
  for (const key of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"]) delete env[key];
  const started = Date.now();
  try {
    await run("npx", ["--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", outdir], {
      cwd: ROOT,
      env,
      timeout: 110_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    template = JSON.parse(await readFile(join(outdir, `${STACK}.template.json`), "utf8"));
  } catch (err) {
    const e = err as { message: string; stderr?: string };
    synthFailure = `${e.message}\n${e.stderr ?? ""}`.slice(0, 8000);
  }
  synthMillis = Date.now() - started;
}, 120_000);

afterAll(async () => {
  proxy?.close();
  if (workdir) await rm(workdir, { recursive: true, force: true });
});

function functionsByDescription(): Record<"relay" | "scheduler", CfnResource> {
  const fns = Object.values(template.Resources).filter((r) => r.Type === "AWS::Lambda::Function");
  const find = (word: string): CfnResource => {
    const fn = fns.find((f) => String(f.Properties.Description).includes(word));
    if (!fn) throw new Error(`no ${word} function in the template`);
    return fn;
  };
  return { relay: find("relay"), scheduler: find("scheduler") };
}

function assetDir(fn: CfnResource): string {
  const path = fn.Metadata?.["aws:asset:path"];
  if (typeof path !== "string") throw new Error("function has no aws:asset:path metadata");
  return join(outdir, path);
}

/** Stand-ins for the CloudFormation values in a function's environment (URLs and ARNs by name). */
function dummyEnv(variables: Record<string, unknown>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(variables)) {
    if (typeof value === "string") env[key] = value;
    else if (key.endsWith("_URL")) env[key] = "https://sqs.us-east-1.amazonaws.com/123456789012/dummy";
    else if (key.endsWith("_ARN")) env[key] = "arn:aws:sqs:us-east-1:123456789012:dummy";
    else env[key] = "dummy";
  }
  return env;
}

/** Imports the bundle in a fresh Node process, from a directory holding only the runtime's SDK. */
async function loadInNode(file: string, variables: Record<string, unknown>): Promise<{ handler: string; exports: string[] }> {
  const sandbox = await mkdtemp(join(workdir, "load-"));
  await mkdir(join(sandbox, "node_modules"));
  for (const scope of ["@aws-sdk", "@smithy"]) {
    await symlink(join(ROOT, "node_modules", scope), join(sandbox, "node_modules", scope), "dir");
  }
  const copy = join(sandbox, "index.mjs");
  await cp(file, copy);
  await cp(`${file}.map`, `${copy}.map`);
  const probe = "const m = await import(process.argv[1]); console.log(JSON.stringify({ handler: typeof m.handler, exports: Object.keys(m) }));";
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", probe, copy], {
    cwd: sandbox,
    timeout: 30_000,
    env: {
      PATH: process.env.PATH ?? "",
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "AKIDUMMY",
      AWS_SECRET_ACCESS_KEY: "dummy",
      AWS_EC2_METADATA_DISABLED: "true",
      ...dummyEnv(variables),
    },
  });
  return JSON.parse(stdout.trim().split("\n").pop()!);
}

describe("cdk synth of the app", () => {
  it("succeeds offline, with the cdk-nag plugin registered, without one network connection", () => {
    expect(synthFailure).toBeUndefined();
    expect(proxied).toEqual([]);
    const report = JSON.parse(readFileSync(join(outdir, "validation-report.json"), "utf8")) as {
      pluginReports: Array<{ violations?: unknown[] }>;
    };
    expect(report.pluginReports.flatMap((r) => r.violations ?? [])).toEqual([]);
    console.log(`cdk synth took ${(synthMillis / 1000).toFixed(1)} s`);
  });

  it("produces the stack with both functions, five queues, the schedule group, four alarms and the queue URL outputs", () => {
    const types = Object.values(template.Resources).map((r) => r.Type);
    const count = (t: string): number => types.filter((x) => x === t).length;
    expect(count("AWS::Lambda::Function")).toBe(2);
    expect(count("AWS::SQS::Queue")).toBe(5);
    expect(count("AWS::Scheduler::ScheduleGroup")).toBe(1);
    expect(count("AWS::CloudWatch::Alarm")).toBe(4);
    expect(Object.keys(template.Outputs).filter((k) => /QueueUrl/.test(k))).toHaveLength(5);
    const { relay, scheduler } = functionsByDescription();
    for (const fn of [relay, scheduler]) expect(fn.Properties).toMatchObject({ Runtime: "nodejs24.x", Handler: "index.handler", Architectures: ["arm64"] });
  });

  it("imports the broker secret by name and never writes a broker URL into the template", () => {
    const { relay } = functionsByDescription();
    expect(relay.Properties.Environment.Variables.BROKER_SECRET_ARN).toBe(process.env.CELERY_EDGE_BROKER_SECRET_NAME ?? "celery-edge/broker");
    expect(JSON.stringify(template)).not.toMatch(/amqps?:\/\//);
  });

  describe.each(["relay", "scheduler"] as const)("the %s function asset", (name) => {
    it("is a single minified esbuild ES module with its source map", async () => {
      // Prepare
      const dir = assetDir(functionsByDescription()[name]);
      // Act
      const files = (await readdir(dir)).sort();
      const code = await readFile(join(dir, "index.mjs"), "utf8");
      const map = JSON.parse(await readFile(join(dir, "index.mjs.map"), "utf8")) as { sources: string[]; sourcesContent?: unknown };
      // Assess
      expect(files).toEqual(["index.mjs", "index.mjs.map"]);
      const lines = code.split("\n");
      expect(code.length / lines.length).toBeGreaterThan(1000);
      expect(code).toMatch(/\/\/# sourceMappingURL=index\.mjs\.map\s*$/);
      expect(map.sources.some((s) => s.includes(`functions/${name}/handler.ts`))).toBe(true);
      expect(map.sourcesContent).toBeUndefined();
    });

    it("bundles every module except Node built-ins and the runtime's AWS SDK", async () => {
      const code = await readFile(join(assetDir(functionsByDescription()[name]), "index.mjs"), "utf8");
      // Static `import … from "x"` / `import "x"` and dynamic `import("x")`; not `Buffer.from("x")`.
      const specifiers = [...code.matchAll(/(?<![.\w$])(?:from|import)\s*(?:\(\s*)?["']([^"']+)["']/g)].map((m) => m[1]!);
      expect(specifiers.length).toBeGreaterThan(0);
      const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
      expect(specifiers.filter((s) => !builtins.has(s) && !RUNTIME_PROVIDED.test(s))).toEqual([]);
      expect(specifiers.filter((s) => s.startsWith("."))).toEqual([]);
    });

    it("loads in Node with its template environment and exports handler as a function", async () => {
      const fn = functionsByDescription()[name];
      const loaded = await loadInNode(join(assetDir(fn), "index.mjs"), fn.Properties.Environment.Variables);
      expect(loaded).toEqual({ handler: "function", exports: ["handler"] });
    });
  });

  it("keeps the relay bundle within its 400 KB budget and reports both sizes", async () => {
    const { relay, scheduler } = functionsByDescription();
    const relayBytes = (await stat(join(assetDir(relay), "index.mjs"))).size;
    const schedulerBytes = (await stat(join(assetDir(scheduler), "index.mjs"))).size;
    console.log(`bundle sizes (minified index.mjs): relay ${relayBytes} B (${(relayBytes / 1024).toFixed(1)} KiB), scheduler ${schedulerBytes} B (${(schedulerBytes / 1024).toFixed(1)} KiB)`);
    expect(relayBytes).toBeLessThanOrEqual(RELAY_BUDGET_BYTES);
    expect(schedulerBytes).toBeGreaterThan(0);
  });
});
