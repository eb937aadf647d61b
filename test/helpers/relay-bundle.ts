/**
 * The relay handler bundled the way `CeleryRelay` bundles it for Lambda (infra/celery-relay.ts
 * `bundlingOptions`): esbuild, ESM, minified, the createRequire banner, AWS SDK external. Written
 * under the repo (`.cache/`) so the external AWS SDK resolves from node_modules as in the runtime.
 */
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
let bundled: Promise<string> | undefined;

export function bundleRelay(): Promise<string> {
  bundled ??= (async () => {
    const outfile = `${REPO}.cache/relay-bundle/handler.mjs`;
    await mkdir(`${REPO}.cache/relay-bundle`, { recursive: true });
    await build({
      entryPoints: [`${REPO}functions/relay/handler.ts`],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      mainFields: ["module", "main"],
      minify: true,
      outfile,
      logLevel: "silent",
      banner: { js: "import { createRequire as __celeryEdgeCreateRequire } from 'node:module'; const require = __celeryEdgeCreateRequire(import.meta.url);" },
      external: ["@aws-sdk/*", "@smithy/*"],
    });
    return outfile;
  })();
  return bundled;
}
