// Builds the console into console/dist (what functions/console compiles in) and, with --test,
// runs its unit tests. Incremental: a stamp of every input's content skips an unchanged build.
//
//   node build.mjs            type-check (tsc), bundle (esbuild), write dist/, print the budget
//   node build.mjs --test     the same, then the unit tests in test/ with node's test runner
//   node build.mjs --force    rebuild even when the stamp matches
//
// The unit tests (test/*.test.ts, bundled by esbuild for node) always run.
// The first page's JavaScript must stay under BUDGET_GZIP bytes gzipped; the build fails past it.

import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const ROOT = new URL(".", import.meta.url).pathname;
const DIST = join(ROOT, "dist");
const TESTS_OUT = join(ROOT, ".build", "tests");
export const BUDGET_GZIP = 250 * 1024;

const args = new Set(process.argv.slice(2));
const log = (m) => console.error(`console: ${m}`);

function files(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

function stampOf(paths) {
  const h = createHash("sha256");
  for (const p of paths.sort()) {
    h.update(relative(ROOT, p));
    h.update(readFileSync(p));
  }
  return h.digest("hex");
}

const inputs = [...files(join(ROOT, "src")), ...["package-lock.json", "build.mjs", "tsconfig.json"].map((f) => join(ROOT, f))];

function typecheck() {
  execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", ROOT], { stdio: "inherit" });
}

async function build() {
  const stampFile = join(DIST, ".stamp");
  const stamp = stampOf(inputs);
  if (!args.has("--force") && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) {
    const budget = JSON.parse(readFileSync(join(DIST, "budget.json"), "utf8"));
    log(`dist up to date (first page: ${kb(budget.js_gzip)} KB of JavaScript gzipped, budget ${kb(BUDGET_GZIP)} KB)`);
    return;
  }
  typecheck();
  rmSync(DIST, { recursive: true, force: true });
  mkdirSync(DIST, { recursive: true });
  const result = await esbuild.build({
    entryPoints: { app: join(ROOT, "src/main.tsx"), style: join(ROOT, "src/style.css") },
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2020",
    jsx: "automatic",
    jsxImportSource: "preact",
    entryNames: "[name]-[hash]",
    outdir: DIST,
    metafile: true,
    legalComments: "none",
    logLevel: "warning",
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => relative(DIST, join(process.cwd(), p)));
  const js = outputs.find((p) => p.startsWith("app-") && p.endsWith(".js"));
  const css = outputs.find((p) => p.startsWith("style-") && p.endsWith(".css"));
  if (!js || !css) throw new Error(`esbuild wrote ${outputs.join(", ")}: no app-*.js or style-*.css`);
  const html = readFileSync(join(ROOT, "src/index.html"), "utf8").replace("%JS%", js).replace("%CSS%", css);
  writeFileSync(join(DIST, "index.html"), html);
  // Every JavaScript file is loaded by the first page (one bundle, no lazy chunks).
  const jsFiles = outputs.filter((p) => p.endsWith(".js"));
  const jsGzip = jsFiles.reduce((n, p) => n + gzipSync(readFileSync(join(DIST, p)), { level: 9 }).length, 0);
  const jsRaw = jsFiles.reduce((n, p) => n + statSync(join(DIST, p)).size, 0);
  const cssGzip = gzipSync(readFileSync(join(DIST, css)), { level: 9 }).length;
  const budget = { js_raw: jsRaw, js_gzip: jsGzip, css_gzip: cssGzip, budget_js_gzip: BUDGET_GZIP };
  writeFileSync(join(DIST, "budget.json"), JSON.stringify(budget, null, 2) + "\n");
  log(`first page: ${kb(jsGzip)} KB of JavaScript gzipped (${kb(jsRaw)} KB raw), ${kb(cssGzip)} KB of CSS gzipped; budget ${kb(BUDGET_GZIP)} KB`);
  if (jsGzip > BUDGET_GZIP) throw new Error(`the first page's JavaScript is ${kb(jsGzip)} KB gzipped, over the ${kb(BUDGET_GZIP)} KB budget`);
  writeFileSync(stampFile, stamp);
}

async function test() {
  rmSync(TESTS_OUT, { recursive: true, force: true });
  const entries = files(join(ROOT, "test")).filter((p) => p.endsWith(".test.ts"));
  await esbuild.build({
    entryPoints: entries,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outdir: TESTS_OUT,
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
  const built = files(TESTS_OUT).filter((p) => p.endsWith(".mjs"));
  // Always run (a quarter of a second): a test run is never skipped.
  execFileSync(process.execPath, ["--test", ...built], { stdio: "inherit" });
}

const kb = (n) => (n / 1024).toFixed(1);

try {
  await build();
  if (args.has("--test")) await test();
} catch (e) {
  log(`error: ${e.message ?? e}`);
  process.exit(1);
}
