/**
 * @module
 * Bundles code the way users bundle it for each runtime (esbuild, the runtime's export conditions)
 * and reports every Node built-in the bundle reached for. `celery-edge` and its subpaths resolve
 * through the real `exports` map of package.json, with `./dist/sdk/x.js` read from `sdk/x.ts`, so
 * the tests need no build step yet exercise the same condition routing an installed package does.
 */
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build, transform, type Metafile, type Plugin } from "esbuild";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** What wrangler asks esbuild for when it bundles a Worker. */
export const WORKERD_CONDITIONS = ["workerd", "worker", "browser"] as const;
/** What Vercel (and Next.js) use for Edge Functions. */
export const VERCEL_EDGE_CONDITIONS = ["edge-light", "worker", "browser"] as const;
/** A Lambda bundle (CDK's NodejsFunction): esbuild's node platform adds "node". */
export const NODE_CONDITIONS = ["node"] as const;

export interface BundleOptions {
  /** Entry file, or `contents` for inline source resolved from `resolveDir`. */
  entry?: string;
  contents?: string;
  /** Directory inline `contents` resolves imports from. @default the repository root */
  resolveDir?: string;
  /** Language of inline `contents`. @default "ts" */
  loader?: "ts" | "js";
  conditions: readonly string[];
  /** @default "neutral": no implicit "node" or "browser" condition, no Node built-ins */
  platform?: "neutral" | "browser" | "node";
  /** "cjs" as CDK's NodejsFunction writes Lambda bundles; "iife" for a classic script. @default "esm" */
  format?: "esm" | "iife" | "cjs";
  /** @default false */
  minify?: boolean;
  /** Resolve `celery-edge` to this repository's sources. Off for an installed package. @default true */
  fromSource?: boolean;
}

export interface NodeBuiltinImport {
  /** What was imported, e.g. `node:net` or `net`. */
  path: string;
  /** The file that imported it, relative to the repository. */
  importer: string;
}

export interface Bundle {
  code: string;
  metafile: Metafile;
  /** Node built-ins the code imports; empty for code that runs on an edge runtime. */
  nodeBuiltins: NodeBuiltinImport[];
  /** Every input file, relative to the repository root. */
  inputs: string[];
  /** esbuild's warnings, formatted (e.g. an import that will always be undefined). */
  warnings: string[];
}

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Records each Node built-in import and leaves it external, so one run lists them all. */
function nodeBuiltinRecorder(found: NodeBuiltinImport[]): Plugin {
  return {
    name: "node-builtin-recorder",
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (!BUILTINS.has(args.path) && !args.path.startsWith("node:")) return undefined;
        found.push({ path: args.path, importer: args.importer.replace(REPO_ROOT, "") });
        return { path: args.path, external: true };
      });
    },
  };
}

type ExportTarget = string | null | { [condition: string]: ExportTarget } | ExportTarget[];

/** Node's PACKAGE_TARGET_RESOLVE for one subpath: the first condition, in object order, that applies. */
export function resolveExport(target: ExportTarget, conditions: ReadonlySet<string>): string | null {
  if (target === null) return null;
  if (typeof target === "string") return target;
  if (Array.isArray(target)) {
    for (const t of target) {
      const hit = resolveExport(t, conditions);
      if (hit !== null) return hit;
    }
    return null;
  }
  for (const [condition, next] of Object.entries(target)) {
    if (!conditions.has(condition)) continue;
    const hit = resolveExport(next, conditions);
    if (hit !== null) return hit;
  }
  return null;
}

/** `celery-edge[/sub]` → the TypeScript source behind the `exports` target these conditions pick. */
function celeryEdgeFromSource(conditions: readonly string[], platform: string): Plugin {
  const pkg = JSON.parse(readFileSync(`${REPO_ROOT}package.json`, "utf8")) as { exports: Record<string, ExportTarget> };
  // esbuild's active conditions: "default", "import" for import statements, the platform's own.
  const active = new Set(["default", "import", ...conditions, ...(platform === "node" ? ["node"] : platform === "browser" ? ["browser"] : [])]);
  return {
    name: "celery-edge-from-source",
    setup(b) {
      b.onResolve({ filter: /^celery-edge(\/.*)?$/ }, (args) => {
        const subpath = args.path === "celery-edge" ? "." : `./${args.path.slice("celery-edge/".length)}`;
        const entry = pkg.exports[subpath];
        if (entry === undefined) return { errors: [{ text: `package.json exports no ${JSON.stringify(subpath)}` }] };
        const target = resolveExport(entry, active);
        const match = target ? /^\.\/dist\/(sdk\/.+)\.js$/.exec(target) : null;
        if (!match) return { errors: [{ text: `exports[${JSON.stringify(subpath)}] gives ${JSON.stringify(target)} for ${[...active].join(",")}` }] };
        const source = `${REPO_ROOT}${match[1]}.ts`;
        if (!existsSync(source)) return { errors: [{ text: `${target} has no source ${source}` }] };
        return { path: source };
      });
    },
  };
}

/** Bundles like a user's build for a runtime; never writes to disk. */
export async function bundle(options: BundleOptions): Promise<Bundle> {
  const platform = options.platform ?? "neutral";
  const nodeBuiltins: NodeBuiltinImport[] = [];
  const plugins: Plugin[] = [];
  if (options.fromSource ?? true) plugins.push(celeryEdgeFromSource(options.conditions, platform));
  // On Node the built-ins are simply there; elsewhere each one is a finding.
  if (platform !== "node") plugins.push(nodeBuiltinRecorder(nodeBuiltins));
  const result = await build({
    ...(options.entry !== undefined
      ? { entryPoints: [options.entry] }
      : { stdin: { contents: options.contents ?? "", resolveDir: options.resolveDir ?? REPO_ROOT, loader: options.loader ?? "ts", sourcefile: `entry.${options.loader ?? "ts"}` } }),
    bundle: true,
    write: false,
    outfile: "bundle.js",
    format: options.format ?? "esm",
    platform,
    target: "es2022",
    conditions: [...options.conditions],
    ...(platform === "node" ? {} : { mainFields: ["browser", "module", "main"] }),
    minify: options.minify ?? false,
    metafile: true,
    logLevel: "silent",
    plugins,
  });
  const output = result.outputFiles.find((f) => f.path.endsWith(".js"));
  if (!output) throw new Error("esbuild produced no JavaScript");
  return {
    code: output.text,
    metafile: result.metafile,
    nodeBuiltins,
    inputs: Object.keys(result.metafile.inputs),
    warnings: result.warnings.map((w) => `${w.location?.file ?? "?"}:${w.location?.line ?? 0}: ${w.text}`),
  };
}

export interface BundleSize {
  raw: number;
  minified: number;
  gzipped: number;
}

/** Sizes in bytes: unminified, minified, and minified + gzip (level 9, as `gzip -9`). */
export async function measure(options: Omit<BundleOptions, "minify">): Promise<BundleSize & { minifiedBundle: Bundle }> {
  const [raw, min] = await Promise.all([bundle({ ...options, minify: false }), bundle({ ...options, minify: true })]);
  const bytes = Buffer.from(min.code);
  return { raw: Buffer.byteLength(raw.code), minified: bytes.length, gzipped: gzipSync(bytes, { level: 9 }).length, minifiedBundle: min };
}

/**
 * What each input costs once gzipped: the bundle minified and gzipped with and without that input's
 * code, largest first. gzip shares repeated text across inputs, so the costs do not add up to the
 * total exactly, but they say what a cut would save where minified bytes do not.
 */
export async function gzipCostByInput(options: Omit<BundleOptions, "minify">, count = 8): Promise<Array<{ input: string; bytes: number }>> {
  // Unminified output marks where each input's code starts with a `// <path>` line.
  const { code } = await bundle({ ...options, minify: false });
  const sections = code.split(/^(?=\/\/ [\w./-]+\.[cm]?[jt]sx?\n)/m);
  const gz = async (text: string): Promise<number> =>
    gzipSync((await transform(text, { minify: true, format: options.format ?? "esm", target: "es2022" })).code, { level: 9 }).length;
  const total = await gz(code);
  const costs = await Promise.all(
    sections.map(async (section, i) => {
      const input = /^\/\/ (\S+)\n/.exec(section)?.[1];
      if (!input) return null;
      return { input, bytes: total - (await gz(sections.filter((_, j) => j !== i).join(""))) };
    }),
  );
  return costs
    .filter((c): c is { input: string; bytes: number } => c !== null)
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, count);
}
