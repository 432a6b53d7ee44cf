// Loading users' own modules: reward functions, tools, environments named as "./path/file.ts#exportName".
// Is: one loader for every extension and package type. TypeScript (.ts, .mts, .cts) goes through tsx's tsImport
// (tsx/esm/api), which compiles the file as its folder says (a .ts under "type": "commonjs" or with no package.json is
// CommonJS, under "module" ESM) without hooking aha's own imports; JavaScript (.js, .mjs, .cjs) through Node's own
// import(), which follows the same rules. Both work from aha's ESM and CommonJS builds, so a reward file in a
// project made by `npm init -y` loads the same as one in an ESM project. tsImport also works in a worker thread, where
// the parent's loader does not reach (the reward pool's workers load user files through this module too).
// Is not: a sandbox (the file runs with the trainer's rights) or a resolver of bare package names.
import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** A "file#export" reference, split. */
export interface ExportRef {
  /** the path as written */
  file: string;
  /** absolute path (resolved against baseDir) */
  abs: string;
  /** export name ("default" when the reference has no #name) */
  name: string;
}

/** Whether a spec names a file (rather than a built-in name): it has #, a script extension, or starts with . or /. */
export function looksLikeFile(spec: string): boolean {
  return spec.includes("#") || /\.(m?[jt]s|c[jt]s)$/.test(spec) || spec.startsWith(".") || isAbsolute(spec);
}

/** Split "path#name" and resolve the path against baseDir (default: the working directory). */
export function parseExportRef(spec: string, baseDir = process.cwd()): ExportRef {
  const hash = spec.lastIndexOf("#");
  const file = hash >= 0 ? spec.slice(0, hash) : spec;
  return { file, abs: resolve(baseDir, file), name: hash >= 0 ? spec.slice(hash + 1) || "default" : "default" };
}

const TS = /\.[cm]?tsx?$/;

/**
 * Import a user's module by absolute path: its exports as the author wrote them (authoredExports). `what` names it in
 * errors ("reward \"./r.ts#fn\"").
 */
export async function importUserModule(abs: string, what: string): Promise<Record<string, unknown>> {
  if (!existsSync(abs)) throw new Error(`${what}: cannot import ${abs}: the file does not exist`);
  const url = pathToFileURL(abs).href;
  try {
    if (TS.test(abs)) {
      const { tsImport } = await import("tsx/esm/api");
      return authoredExports((await tsImport(url, import.meta.url)) as Record<string, unknown>);
    }
    return authoredExports((await import(url)) as Record<string, unknown>);
  } catch (e) {
    throw new Error(`${what}: cannot import ${abs} (${(e as Error).message})`);
  }
}

/**
 * A module's exports as its author wrote them. Node hands a CommonJS module to import() with `default` =
 * module.exports; where that object comes from compiled ES syntax (TypeScript under "type": "commonjs" sets
 * `__esModule`), it is the real namespace, whose `default` is the author's `export default`.
 */
function authoredExports(mod: Record<string, unknown>): Record<string, unknown> {
  const d = mod.default as Record<string, unknown> | undefined;
  if (d && typeof d === "object" && d.__esModule) return Object.fromEntries(Object.entries(d).filter(([k]) => k !== "__esModule"));
  return mod;
}

/** Load one export of a user's module; a missing export is an error naming the file and the exports it has. */
export async function loadUserExport(spec: string, what: string, baseDir?: string): Promise<{ value: unknown; ref: ExportRef }> {
  const ref = parseExportRef(spec, baseDir);
  const mod = await importUserModule(ref.abs, what);
  const value = mod[ref.name];
  if (value === undefined)
    throw new Error(`${what}: ${ref.abs} has no export "${ref.name}" (exports: ${Object.keys(mod).join(", ") || "none"})`);
  return { value, ref };
}
