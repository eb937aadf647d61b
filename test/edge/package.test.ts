/**
 * The package installs as users install it: `npm run build`, `npm pack`, the tarball installed
 * into a fresh project, every subpath imported from ESM (types included), and the published
 * JavaScript bundled for workerd. publint and arethetypeswrong (ESM-only profile) find nothing.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundle, measure, WORKERD_CONDITIONS } from "./bundle.js";
import { BIN, npmInstall, packAndInstall, sh, type InstalledPackage, type PackageJson } from "./pack.js";
import { workerdStartupFailure } from "./runtimes.js";
import { deleteQueues, getRawMessage } from "../helpers/rabbit.js";

/** Where the installed package's test tasks go; nobody consumes it, and it is deleted after. */
const PKG_QUEUE = "ce.pkg";

let installed: InstalledPackage;
let work: string;
let tarball: string;
let app: string;
let packed: string[];
let pkg: PackageJson;

beforeAll(async () => {
  installed = await packAndInstall();
  ({ work, tarball, app, packed, pkg } = installed);
}, 240_000);

afterAll(async () => {
  await installed?.remove();
});

describe("the packed tarball", () => {
  it("holds the built entries with their types, and no sources or tests", () => {
    for (const entry of ["index", "node", "amqp", "amqp.edge", "sqs", "redis"]) {
      expect(packed).toContain(`dist/sdk/${entry}.js`);
      expect(packed).toContain(`dist/sdk/${entry}.d.ts`);
    }
    expect(packed.filter((p) => /^(sdk|test|functions|infra|examples)\//.test(p) || (p.endsWith(".ts") && !p.endsWith(".d.ts")))).toEqual([]);
  });

  it("depends on exactly the packages its built code imports (the relay's Powertools and AWS clients are not among them)", async () => {
    // Prepare: every bare specifier the published JavaScript imports, statically or dynamically.
    const jsFiles = packed.filter((p) => p.endsWith(".js"));
    const imported = new Set<string>();
    for (const file of jsFiles) {
      const text = await readFile(join(work, "stage", file), "utf8");
      for (const m of text.matchAll(/(?:^|[\s;])(?:import|export)\s[^"']*?from\s*["']([^"'./][^"']*)["']|import\(\s*["']([^"'./][^"']*)["']\s*\)/gm)) {
        const spec = (m[1] ?? m[2])!;
        if (spec.startsWith("node:") || spec.startsWith("celery-edge")) continue;
        imported.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
      }
    }

    // Assess
    expect(jsFiles.length).toBeGreaterThan(10);
    expect([...imported].sort()).toEqual(Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies }).sort());
  });

  it("passes publint with no error, warning or suggestion", async () => {
    const data = await readFile(tarball);
    const { messages, pkg: linted } = await publint({ pack: { tarball: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer }, level: "suggestion" });

    expect(messages.map((m) => `${m.type}: ${formatMessage(m, linted, { color: false }) ?? m.code}`)).toEqual([]);
  });

  it("passes arethetypeswrong for an ESM-only package, for every exported subpath", async () => {
    // Exit code 0 means no problem under the profile; the JSON says what was checked.
    const out = JSON.parse(await sh(join(BIN, "attw"), [tarball, "--profile", "esm-only", "--format", "json"], work)) as {
      analysis: { entrypoints: Record<string, unknown> };
      problems: Record<string, Array<{ entrypoint: string; resolutionKind: string }>>;
    };

    expect(Object.keys(out.analysis.entrypoints).sort()).toEqual(Object.keys(pkg.exports).sort());
    // esm-only ignores what CommonJS resolution (node10, node16-cjs) would see.
    const counted = Object.values(out.problems)
      .flat()
      .filter((p) => p.resolutionKind !== "node10" && p.resolutionKind !== "node16-cjs");
    expect(counted).toEqual([]);
  });
});

describe("installed into a fresh project", () => {
  it("imports every subpath from ESM on Node, with amqp:// and kombu's serializers registered", async () => {
    // Prepare
    const script = `
      const out = {};
      for (const s of ["celery-edge", "celery-edge/sqs", "celery-edge/amqp", "celery-edge/serializers"]) out[s] = Object.keys(await import(s));
      const { Celery } = await import("celery-edge");
      const app = new Celery({ broker: "amqp://guest:guest@127.0.0.1:5672//" });
      out.transport = app.transport.constructor.name;
      out.serializers = [];
      for (const serializer of ["json", "yaml", "msgpack", "pickle"]) out.serializers.push((await app.buildMessage("tasks.add", { args: [1], serializer })).properties.contentType);
      await app.close();
      out.version = (await import("celery-edge/package.json", { with: { type: "json" } })).default.version;
      // amqplib is an optional peer and not installed here: sending says what to install.
      const bare = new Celery({ broker: "amqp://guest:guest@127.0.0.1:5672//", connectTimeout: 5000 });
      out.withoutAmqplib = await bare.sendTask("tasks.add", { args: [1, 2], queue: "${PKG_QUEUE}" }).then(() => "sent", (e) => \`\${e.constructor.name} \${e.code}: \${e.message}\`);
      await bare.close();
      console.log(JSON.stringify(out));`;
    await writeFile(join(app, "check.mjs"), script);

    // Act
    const out = JSON.parse(await sh(process.execPath, ["check.mjs"], app)) as Record<string, unknown>;

    // Assess
    expect(out["celery-edge"]).toEqual(expect.arrayContaining(["Celery", "Task", "AsyncResult", "UnsupportedRuntimeError", "resultWaiting", "AmqpTransport"]));
    expect(out["celery-edge/sqs"]).toEqual(expect.arrayContaining(["sqsRelay", "SqsTransport", "encodeEnvelope"]));
    expect(out["celery-edge/amqp"]).toEqual(expect.arrayContaining(["amqpTransport", "AmqpTransport"]));
    expect(out["celery-edge/serializers"]).toEqual(expect.arrayContaining(["yamlSerializer", "msgpackSerializer", "pickleSerializer"]));
    expect(out.transport).toBe("AmqpTransport");
    expect(out.serializers).toEqual(["application/json", "application/x-yaml", "application/x-msgpack", "application/x-python-serialize"]);
    expect(out.version).toBe(pkg.version);
    expect(out.withoutAmqplib).toBe('ConfigurationError ERR_CONFIGURATION: an amqp:// broker needs the optional dependency "amqplib": npm install amqplib');
  });

  it("publishes over amqp:// once the optional peer amqplib is installed", async () => {
    // Prepare
    await npmInstall(app, [`amqplib@${pkg.devDependencies!.amqplib}`]);
    const script = `
      const { Celery } = await import("celery-edge");
      const app = new Celery({ broker: "amqp://guest:guest@127.0.0.1:5672//", connectTimeout: 5000 });
      const r = await app.sendTask("tasks.add", { args: [1, 2], queue: "${PKG_QUEUE}" });
      await app.close();
      console.log(JSON.stringify({ id: r.id }));`;
    await writeFile(join(app, "send.mjs"), script);

    try {
      // Act
      const out = JSON.parse(await sh(process.execPath, ["send.mjs"], app)) as { id: string };

      // Assess: the broker holds the confirmed task.
      const message = await getRawMessage(PKG_QUEUE);
      expect(message?.properties.correlationId).toBe(out.id);
    } finally {
      await deleteQueues([PKG_QUEUE]);
    }
  });

  it("type-checks a strict TypeScript consumer against the published declarations", async () => {
    await writeFile(
      join(app, "consumer.ts"),
      `import { Celery, UnsupportedRuntimeError } from "celery-edge";
       import { sqsRelay } from "celery-edge/sqs";
       import { amqpTransport } from "celery-edge/amqp";
       import { msgpackSerializer } from "celery-edge/serializers";
       const app = new Celery({ broker: sqsRelay({ queueUrl: "https://sqs.eu-west-1.amazonaws.com/123456789012/intake" }) });
       const add = app.task<[number, number], number>("tasks.add");
       export async function sum(): Promise<number> {
         return (await add.delay(1, 2)).get();
       }
       // @ts-expect-error arguments are typed
       void add.delay("1", 2);
       // @ts-expect-error eta and countdown exclude each other
       void add.applyAsync({ args: [1, 2], countdown: 1, eta: new Date() });
       export const used = [amqpTransport, msgpackSerializer, UnsupportedRuntimeError];
      `,
    );
    await writeFile(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2022", lib: ["es2023", "dom"], strict: true, noEmit: true, skipLibCheck: true, types: [] },
        files: ["consumer.ts"],
      }),
    );

    // Act and assess: tsc exits non-zero, with the errors in the message, if anything does not resolve.
    await expect(sh(join(BIN, "tsc"), ["-p", "tsconfig.json"], app)).resolves.toBe("");
  });

  it("bundles its published JavaScript for workerd without Node built-ins, and amqp refuses at load", async () => {
    // Prepare: plain JavaScript, where a missing export is not hidden as a possible type.
    const worker = `import { Celery } from "celery-edge";
      import { sqsRelay } from "celery-edge/sqs";
      export default { async fetch(request, env) {
        const app = new Celery({ broker: sqsRelay({ queueUrl: env.Q, credentials: { accessKeyId: env.K, secretAccessKey: env.S } }) });
        return new Response((await app.sendTask("tasks.add", { args: [2, 3] })).id);
      } };`;
    const amqpWorker = `import { amqpTransport } from "celery-edge/amqp";\nexport default { fetch: () => new Response(String(amqpTransport)) };`;
    const options = { conditions: WORKERD_CONDITIONS, resolveDir: app, fromSource: false, loader: "js" } as const;

    // Act
    const size = await measure({ ...options, contents: worker });
    const amqp = await bundle({ ...options, contents: amqpWorker });
    const failure = await workerdStartupFailure({ script: amqp.code, compatibilityDate: "2025-09-01" });

    // Assess
    console.log(`published build, one-task worker for workerd: raw ${size.raw} B, minified ${size.minified} B, minified+gzip ${size.gzipped} B`);
    expect(size.minifiedBundle.nodeBuiltins).toEqual([]);
    expect(size.minifiedBundle.inputs.every((i) => !i.includes("/sdk/") || i.includes("node_modules/celery-edge/dist/sdk/"))).toBe(true);
    expect(amqp.nodeBuiltins).toEqual([]);
    expect(amqp.warnings).toEqual([]);
    expect(failure).toContain("UnsupportedRuntimeError: celery-edge/amqp needs Node.js");
  });
});
