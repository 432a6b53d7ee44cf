// Loading a user's reward module: the one function that imports "./rewards.ts"-style files, on the main thread (to
// check the export) and in each reward worker (to run it), so that how user files are loaded changes in one place.
// TypeScript files go through tsx's tsImport, which works from any folder (a plain import under a "type": "commonjs"
// package fails with "Cannot require() ES Module … in a cycle") and in a worker thread, where the parent's loader
// does not reach (worker-entry.mjs loads worker.ts the same way, as ESM: on Node 20 tsImport fails in a module that
// tsx's require hook loaded). JavaScript files are imported as they are.
import { pathToFileURL } from "node:url";

/** Import the module at an absolute path. */
export async function importUserModule(absPath: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(absPath).href;
  if (!/\.[cm]?tsx?$/.test(absPath)) return (await import(url)) as Record<string, unknown>;
  const { tsImport } = await import("tsx/esm/api");
  const mod = (await tsImport(url, import.meta.url)) as Record<string, unknown>;
  // a file under a "type": "commonjs" package comes back as CommonJS: its exports (with `default` among them) sit in
  // `default`, marked __esModule
  const inner = mod.default as { __esModule?: boolean } | undefined;
  return inner && typeof inner === "object" && inner.__esModule ? (inner as Record<string, unknown>) : mod;
}
