/**
 * @module
 * The real `npx cdk synth` of the app `cdk.json` names, offline: no credentials, no context lookups,
 * no network (every HTTP(S) client is pointed at a local proxy that records connection attempts).
 * Then each function asset is checked for what Lambda will run: one minified esbuild ES module that
 * loads in Node with only the runtime-provided AWS SDK beside it and exports `handler`.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_RELAY_POLICY } from "../../infra/celery-relay.js";

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
    // A synth killed by its timeout (a loaded machine) says so, with how long it ran.
    const e = err as { message: string; stderr?: string; signal?: string | null };
    const ended = e.signal ? `killed by ${e.signal} after ${((Date.now() - started) / 1000).toFixed(1)} s` : `failed after ${((Date.now() - started) / 1000).toFixed(1)} s`;
    synthFailure = `${ended}: ${e.message}\n${e.stderr ?? ""}`.slice(0, 8000);
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

/**
 * Stand-ins for the CloudFormation values in a function's environment: URLs and ARNs by name, role
 * ids shaped like real ones, and `Fn::Join` joined so JSON values (the policy, the trusted
 * forwarders) reach the function whole.
 */
function dummyEnv(variables: Record<string, unknown>): Record<string, string> {
  const render = (key: string, value: unknown): string => {
    if (typeof value === "string") return value;
    const node = value as Record<string, unknown>;
    if (Array.isArray(node["Fn::Join"])) {
      const [delimiter, parts] = node["Fn::Join"] as [string, unknown[]];
      return parts.map((part) => render(key, part)).join(delimiter);
    }
    if (Array.isArray(node["Fn::GetAtt"]) && node["Fn::GetAtt"][1] === "RoleId") return "AROADUMMYROLEID012345";
    if (key.endsWith("_URL")) return "https://sqs.us-east-1.amazonaws.com/123456789012/dummy";
    if (key.endsWith("_ARN")) return "arn:aws:sqs:us-east-1:123456789012:dummy";
    return "dummy";
  };
  return Object.fromEntries(Object.entries(variables).map(([key, value]) => [key, render(key, value)]));
}

/**
 * Every module a bundle imports (static `import`, dynamic `import()`), as esbuild's parser sees
 * them: a regex would also match `from "x"` inside a string, such as an error message's hint.
 */
async function importsOf(file: string): Promise<string[]> {
  const result = await build({ entryPoints: [file], bundle: true, write: false, metafile: true, platform: "node", format: "esm", external: ["*"], logLevel: "silent" });
  return Object.values(result.metafile.inputs).flatMap((input) => input.imports.map((i) => i.path));
}

/** The logical id of the role a function runs as. */
function roleOf(fn: CfnResource): string {
  return (fn.Properties.Role as { "Fn::GetAtt": [string, string] })["Fn::GetAtt"][0];
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

  it("produces the stack with both functions, five queues, the schedule group, eight alarms and the queue URL outputs", () => {
    const types = Object.values(template.Resources).map((r) => r.Type);
    const count = (t: string): number => types.filter((x) => x === t).length;
    expect(count("AWS::Lambda::Function")).toBe(2);
    expect(count("AWS::SQS::Queue")).toBe(5);
    expect(count("AWS::Scheduler::ScheduleGroup")).toBe(1);
    expect(count("AWS::CloudWatch::Alarm")).toBe(8);
    expect(Object.keys(template.Outputs).filter((k) => /QueueUrl/.test(k))).toHaveLength(5);
    const { relay, scheduler } = functionsByDescription();
    for (const fn of [relay, scheduler]) expect(fn.Properties).toMatchObject({ Runtime: "nodejs24.x", Handler: "index.handler", Architectures: ["arm64"] });
  });

  it("imports the broker secret by name and never writes a broker URL into the template", () => {
    const { relay } = functionsByDescription();
    expect(relay.Properties.Environment.Variables.BROKER_SECRET_ARN).toBe(process.env.CELERY_EDGE_BROKER_SECRET_NAME ?? "celery-edge/broker");
    expect(JSON.stringify(template)).not.toMatch(/amqps?:\/\//);
  });

  it("gives both functions the default relay policy, and each the other's role id as a trusted forwarder", () => {
    const { relay, scheduler } = functionsByDescription();
    const roleId = (logicalId: string): unknown => ({ "Fn::GetAtt": [logicalId, "RoleId"] });
    const scheduleRole = Object.entries(template.Resources).find(
      ([, r]) => r.Type === "AWS::IAM::Role" && JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes("scheduler.amazonaws.com"),
    )![0];
    expect(relay.Properties.Environment.Variables).toMatchObject({
      RELAY_POLICY: JSON.stringify(DEFAULT_RELAY_POLICY),
      TRUSTED_FORWARDERS: { "Fn::Join": ["", ['["', roleId(roleOf(scheduler)), '"]']] },
      RELAY_RETRY_BASE_SECONDS: "30",
      RELAY_RETRY_MAX_SECONDS: "900",
    });
    expect(scheduler.Properties.Environment.Variables).toMatchObject({
      RELAY_POLICY: JSON.stringify(DEFAULT_RELAY_POLICY),
      TRUSTED_FORWARDERS: { "Fn::Join": ["", ['["', roleId(roleOf(relay)), '","', roleId(scheduleRole), '"]']] },
    });
    expect(relay.Properties.Environment.Variables.ALLOWED_EXCHANGES).toBeUndefined();
  });

  it("points the relay at the intake queue it consumes, which dead-letters after 30 receives", () => {
    const { relay } = functionsByDescription();
    const intakeRef = relay.Properties.Environment.Variables.INTAKE_QUEUE_URL as { Ref: string };
    const intake = template.Resources[intakeRef.Ref]!;
    expect(intake.Type).toBe("AWS::SQS::Queue");
    expect(intake.Properties).toMatchObject({ MessageRetentionPeriod: 4 * 24 * 3600, RedrivePolicy: { maxReceiveCount: 30 } });
    const mapping = Object.values(template.Resources).find(
      (r) => r.Type === "AWS::Lambda::EventSourceMapping" && JSON.stringify(r.Properties.EventSourceArn) === JSON.stringify({ "Fn::GetAtt": [intakeRef.Ref, "Arn"] }),
    );
    expect(mapping?.Properties.FunctionName).toEqual({ Ref: Object.entries(template.Resources).find(([, r]) => r === relay)![0] });
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
      const specifiers = await importsOf(join(assetDir(functionsByDescription()[name]), "index.mjs"));
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

  it("fails the real synth of an app given an invalid relay policy, with the policy's message", async () => {
    // Prepare: the construct validates before it bundles, so this synth stops early.
    const args = ["--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", join(workdir, "cdk.out.invalid")];
    const policy = JSON.stringify({ queues: [{ name: "celery" }], exchanges: [{ exchange: "celeryev", routingKeys: ["#"] }] });
    // Act
    const failure = await run("npx", [...args, "-c", `relayPolicy=${policy}`], {
      cwd: ROOT,
      env: { ...process.env, CDK_DISABLE_VERSION_CHECK: "1", CDK_DISABLE_CLI_TELEMETRY: "true" },
      timeout: 60_000,
    }).then(
      () => undefined,
      (err: { stderr?: string }) => err.stderr ?? "",
    );
    // Assess
    expect(failure).toMatch(/CeleryRelay: relay policy: exchanges\[0\]\.exchange names Celery's event exchange, which no policy can open, got "celeryev"/);
  }, 70_000);

  it("sees real imports in a bundle and ignores `from \"…\"` inside strings (control for the check above)", async () => {
    const file = join(workdir, "control.mjs");
    await writeFile(file, 'import{a as b}from"left-pad";const c=await import("right-pad");throw Error(`call x() from "celery-edge/serializers"`+b+c);');
    expect((await importsOf(file)).sort()).toEqual(["left-pad", "right-pad"]);
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
