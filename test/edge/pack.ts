/**
 * @module
 * The package as users get it: `npm run build` into a stage holding what `npm pack` would take
 * (package.json's "files"), `npm pack`, and the tarball installed into a fresh ESM project. The
 * shared work tree's dist/ is not touched.
 */
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "./bundle.js";

const run = promisify(execFile);
export const NPM = "npm";
export const BIN = join(REPO_ROOT, "node_modules/.bin");

export interface PackageJson {
  name: string;
  version: string;
  files: string[];
  exports: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

export interface InstalledPackage {
  /** The temporary directory holding everything below; `remove()` deletes it. */
  work: string;
  /** The staged package (what was packed), with its built dist/. */
  stage: string;
  tarball: string;
  /** Paths inside the tarball. */
  packed: string[];
  pkg: PackageJson;
  /** The consumer project the tarball is installed in. */
  app: string;
  remove(): Promise<void>;
}

/** Runs a command; on failure the error carries its output. */
export async function sh(file: string, args: string[], cwd: string, timeout = 60_000): Promise<string> {
  try {
    return (await run(file, args, { cwd, timeout, maxBuffer: 32 * 1024 * 1024, env: { ...process.env, npm_config_update_notifier: "false" } })).stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${file} ${args.join(" ")} failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`, { cause: error });
  }
}

/** npm install into `app`, as a user would (the registry is reachable; npm's cache, warm from the repository's own install, serves most of it). */
export const npmInstall = (app: string, specs: string[]): Promise<string> =>
  sh(NPM, ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", ...specs], app, 120_000);

/** Builds, packs and installs the package into a fresh ESM project, with `alongside` (e.g. the optional peers) installed too. */
export async function packAndInstall(alongside: string[] = []): Promise<InstalledPackage> {
  const work = await mkdtemp(join(tmpdir(), "celery-edge-pack-"));
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as PackageJson;
  const stage = join(work, "stage");
  await mkdir(stage);
  await cp(join(REPO_ROOT, "package.json"), join(stage, "package.json"));
  for (const entry of pkg.files.filter((f) => !f.startsWith("dist"))) {
    await cp(join(REPO_ROOT, entry), join(stage, entry), { recursive: true });
  }
  await sh(NPM, ["run", "build", "--silent", "--", "--outDir", join(stage, "dist")], REPO_ROOT, 120_000);
  const [info] = JSON.parse(await sh(NPM, ["pack", "--json", "--pack-destination", work], stage)) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const tarball = join(work, info!.filename);
  const app = join(work, "app");
  await mkdir(app);
  await writeFile(join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  await npmInstall(app, [tarball, ...alongside]);
  return { work, stage, tarball, packed: info!.files.map((f) => f.path), pkg, app, remove: () => rm(work, { recursive: true, force: true }) };
}
