/**
 * A tiny Node app — `new Celery({ broker: "amqp://…" })`, send one task — bundled from the packed
 * and installed package by each bundler users reach for, run with node, and the task executed by
 * the real Celery worker. The package says `"sideEffects": false`, so a bundler may drop any module
 * whose exports go unused: what amqp:// resolves to must be passed into the app, not registered on
 * import (webpack 5 in production mode dropped that registration and the app threw
 * UnsupportedRuntimeError). An ES module bundle must load without a `createRequire` banner.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import commonjsPlugin from "@rollup/plugin-commonjs";
import jsonPlugin from "@rollup/plugin-json";
import nodeResolvePlugin from "@rollup/plugin-node-resolve";
import { build } from "esbuild";
import { rollup, type Plugin } from "rollup";
import webpack from "webpack";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { purgeQueues } from "../helpers/rabbit.js";
import { packAndInstall, type InstalledPackage } from "./pack.js";

/** A queue and a record database of our own: other suites may run beside this one. */
const QUEUE = "ce.bundlers";
const RECORD_DB = 10;
const BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//";

const run = promisify(execFile);
// The plugins' one set of declarations reads as CommonJS under NodeNext; at run time the ES build's default export is the plugin.
const plugin = (p: unknown) => p as (options?: Record<string, unknown>) => Plugin;
const [commonjs, json, nodeResolve] = [plugin(commonjsPlugin), plugin(jsonPlugin), plugin(nodeResolvePlugin)];
const log = new ExecutionLog({ db: RECORD_DB });
let installed: InstalledPackage;
let worker: CeleryWorker;

/** The user's app: plain JavaScript, no top-level await (a CommonJS bundle has none). */
const appSource = (a: number, b: number): string => `import { Celery } from "celery-edge";
const app = new Celery({ broker: ${JSON.stringify(BROKER_URL)}, connectTimeout: 10000 });
app
  .sendTask("tasks.add", { args: [${a}, ${b}], queue: ${JSON.stringify(QUEUE)} })
  .then((r) => console.log(JSON.stringify({ id: r.id })))
  .catch((e) => { console.error(e); process.exitCode = 1; })
  .finally(() => app.close());
`;

beforeAll(async () => {
  // The optional peers as a Node user installs them (README: npm install celery-edge amqplib redis).
  const pkg = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as { devDependencies: Record<string, string> };
  [installed, worker] = await Promise.all([
    packAndInstall([`amqplib@${pkg.devDependencies.amqplib}`, `redis@${pkg.devDependencies.redis}`]),
    startCeleryWorker({ queues: [QUEUE], env: { CELERY_EDGE_DEFAULT_QUEUE: QUEUE, CELERY_EDGE_RECORD_DB: String(RECORD_DB) } }),
  ]);
  await Promise.all([purgeQueues([QUEUE]), log.clear()]);
}, 240_000);

afterAll(async () => {
  await Promise.all([installed?.remove(), worker?.stop()]);
});

/** Writes the app's source into a directory of its own inside the consumer project. */
async function writeApp(name: string, a: number, b: number): Promise<{ dir: string; entry: string }> {
  const dir = join(installed.app, name);
  await mkdir(dir, { recursive: true });
  const entry = join(dir, "app.mjs");
  await writeFile(entry, appSource(a, b));
  return { dir, entry };
}

/** Runs a bundle with node from where it was written (any package left external resolves from the project). */
async function runBundle(file: string): Promise<{ id: string }> {
  try {
    const { stdout } = await run(process.execPath, [file], { cwd: installed.app, timeout: 30_000 });
    return JSON.parse(stdout.trim().split("\n").at(-1)!) as { id: string };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`node ${file} failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`, { cause: error });
  }
}

async function expectAddRan(taskId: string, a: number, b: number): Promise<void> {
  const record = await log.waitForTask(taskId, 20_000);
  expect([record.name, record.args, record.routing_key]).toEqual(["tasks.add", [a, b], QUEUE]);
  expect(record.hostname).toBe(worker.hostname);
}

describe("a Node app sending one task over amqp://, bundled", () => {
  it("by webpack 5 in production mode for node runs, and the worker executes the task", async () => {
    // Prepare
    const { dir, entry } = await writeApp("webpack", 2, 3);
    const compiler = webpack({
      mode: "production",
      target: "node",
      context: installed.app,
      entry,
      // CommonJS chunks, named .cjs: the consumer project is "type": "module".
      output: { path: join(dir, "dist"), filename: "main.cjs", chunkFilename: "[id].cjs" },
    });

    // Act
    const stats = await new Promise<webpack.Stats>((resolve, reject) =>
      compiler.run((err, s) => compiler.close(() => (err || !s ? reject(err ?? new Error("no stats")) : resolve(s)))),
    );
    expect(stats.hasErrors(), stats.toString({ all: false, errors: true })).toBe(false);
    const sent = await runBundle(join(dir, "dist", "main.cjs"));

    // Assess
    await expectAddRan(sent.id, 2, 3);
  });

  it("by esbuild as an ES module for node, with no banner, runs, and the worker executes the task", async () => {
    // Prepare: amqplib and redis are CommonJS that require() Node built-ins, which an ES module has no
    // require for: a Lambda ships such optional peers in node_modules (NodejsFunction `nodeModules`).
    const { dir, entry } = await writeApp("esbuild-esm", 4, 5);
    const outfile = join(dir, "main.mjs");

    // Act
    await build({ entryPoints: [entry], bundle: true, platform: "node", format: "esm", outfile, external: ["amqplib", "redis"], logLevel: "silent" });
    const sent = await runBundle(outfile);

    // Assess
    expect(await readFile(outfile, "utf8")).not.toContain("createRequire");
    await expectAddRan(sent.id, 4, 5);
  });

  it("by esbuild as CommonJS for node, amqplib included, runs, and the worker executes the task", async () => {
    // Prepare
    const { dir, entry } = await writeApp("esbuild-cjs", 6, 7);
    const outfile = join(dir, "main.cjs");

    // Act
    await build({ entryPoints: [entry], bundle: true, platform: "node", format: "cjs", outfile, external: ["redis"], logLevel: "silent" });
    const sent = await runBundle(outfile);

    // Assess
    await expectAddRan(sent.id, 6, 7);
  });

  it("by rollup with node-resolve, commonjs and json for node runs, and the worker executes the task", async () => {
    // Prepare
    const { dir, entry } = await writeApp("rollup", 8, 9);

    // Act
    const bundle = await rollup({
      input: entry,
      external: ["redis"],
      plugins: [nodeResolve({ exportConditions: ["node"], preferBuiltins: true }), commonjs(), json()],
      onwarn: () => {},
    });
    await bundle.write({ dir: join(dir, "dist"), format: "esm", entryFileNames: "main.mjs" });
    await bundle.close();
    const sent = await runBundle(join(dir, "dist", "main.mjs"));

    // Assess
    await expectAddRan(sent.id, 8, 9);
  });
});
