// Where aha's own files are: the package root (the folder of aha's package.json) and its version.
// Is: a walk up from this module's file to the first package.json named "aha", so the same code finds the root from
// src/ (a checkout, run through tsx), dist/ (the built ESM) and dist/cjs/index.cjs (the CommonJS bundle, where the
// build defines import.meta.url as the bundle's own URL). Is not: a lookup of the user's project.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

let root: string | null = null;

/** The folder holding aha's package.json (with assets/, native/, prebuilds/ beside it). */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, "package.json");
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, "utf8")) as { name?: string }).name === "aha") return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`aha: cannot find aha's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** aha's version, from its package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version: string }).version;
}

/**
 * One of aha's own module files that a worker thread loads by URL, `rel` under src/ ("rewards/worker-entry.mjs"):
 * from the sources (the caller's `from` — its import.meta.url — ends in .ts) the file in src/, from a build (dist/, or
 * the CommonJS bundle dist/cjs/index.cjs, whose import.meta.url is the bundle's) the one in dist/ (.ts becomes .js).
 */
export function ownModule(rel: string, from: string): URL {
  if (from.endsWith(".ts")) return pathToFileURL(join(packageRoot(), "src", rel));
  return pathToFileURL(join(packageRoot(), "dist", rel.replace(/\.ts$/, ".js")));
}
