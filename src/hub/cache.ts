// Hugging Face hub ids, resolved offline through the local hub cache (what `hf download` / transformers fill).
// Is: "org/name" (or a bare "name") → <cache>/models--org--name (datasets: datasets--org--name) → refs/<revision>
// holds a commit hash → snapshots/<hash>/, whose files are symlinks into blobs/. The caches looked in, in order:
// $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub ($XDG_CACHE_HOME/huggingface/hub where that is set), as
// huggingface_hub places them. A `revision` is a ref (branch or tag: refs/<revision>) or a commit hash (40 hex
// digits, or a unique prefix of one: snapshots/<hash>/). A local path that exists always wins over a hub id.
// Is not: a downloader. aha never fetches anything: an id that is not in the cache is an error that lists the
// places it looked in.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export type RepoType = "model" | "dataset";

/** The hub caches to look in, in order (those named by the environment first), without duplicates. */
export function hubCacheDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs: string[] = [];
  if (env.HF_HUB_CACHE) dirs.push(env.HF_HUB_CACHE);
  if (env.HF_HOME) dirs.push(join(env.HF_HOME, "hub"));
  dirs.push(join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "huggingface", "hub"));
  return [...new Set(dirs.map((d) => resolve(d)))];
}

/** Whether a string has the shape of a hub id ("org/name" or "name": no leading . or /, at most one /). */
export function isHubId(spec: string): boolean {
  return /^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/.test(spec) && !spec.includes("..");
}

const HASH = /^[0-9a-f]{40}$/;

/** The snapshot folder of one cached repo for a revision, or a reason it is not there. */
function snapshotIn(repoDir: string, revision: string): { dir: string } | { missing: string } {
  const snaps = join(repoDir, "snapshots");
  const refFile = join(repoDir, "refs", revision);
  let hash: string | undefined;
  if (existsSync(refFile) && statSync(refFile).isFile()) hash = readFileSync(refFile, "utf8").trim();
  else if (/^[0-9a-f]{7,40}$/.test(revision) && existsSync(snaps)) {
    const hits = readdirSync(snaps).filter((h) => h.startsWith(revision));
    if (hits.length > 1) return { missing: `revision ${revision} matches several snapshots (${hits.join(", ")})` };
    hash = hits[0];
  }
  if (!hash) {
    const refs = existsSync(join(repoDir, "refs")) ? readdirSync(join(repoDir, "refs")) : [];
    const have = existsSync(snaps) ? readdirSync(snaps) : [];
    return { missing: `no revision "${revision}" (refs: ${refs.join(", ") || "none"}; snapshots: ${have.join(", ") || "none"})` };
  }
  if (!HASH.test(hash)) return { missing: `${refFile} does not hold a commit hash` };
  const dir = join(snaps, hash);
  return existsSync(dir) ? { dir } : { missing: `${refFile} points at ${hash}, but ${dir} is missing (an interrupted download?)` };
}

export class HubNotFoundError extends Error {}

/**
 * The local folder of a model or dataset: `spec` itself when it exists (a path), else the cached snapshot of the hub
 * id `spec` at `revision` (default "main"). `what` names the option in errors ("model", "dataset.path").
 */
export function resolveHubPath(spec: string, opts: { type?: RepoType; revision?: string; what?: string } = {}): string {
  const type = opts.type ?? "model", revision = opts.revision ?? "main", what = opts.what ?? type;
  if (existsSync(spec)) {
    if (opts.revision !== undefined && opts.revision !== "main")
      throw new Error(`${what}: ${resolve(spec)} is a local folder; revision "${opts.revision}" applies only to hub ids`);
    return spec;
  }
  const tried = [`local path "${spec}": no such file or folder`];
  if (isHubId(spec)) {
    const folder = `${type}s--${spec.replace("/", "--")}`;
    for (const cache of hubCacheDirs()) {
      const repo = join(cache, folder);
      if (!existsSync(repo)) {
        tried.push(`${repo}: not there`);
        continue;
      }
      const s = snapshotIn(repo, revision);
      if ("dir" in s) return s.dir;
      tried.push(`${repo}: ${s.missing}`);
    }
  }
  throw new HubNotFoundError(
    `${what} "${spec}" not found. Looked for ${isHubId(spec) ? `a local path and the Hugging Face ${type} "${spec}" (revision ${revision}) in the hub cache` : "a local path"}:\n` +
    tried.map((t) => `  - ${t}`).join("\n") +
    `\naha never downloads: fetch it first (e.g. \`hf download ${isHubId(spec) ? spec : "org/name"}${type === "dataset" ? " --repo-type dataset" : ""}\`), ` +
    `or give a local folder. The caches are $HF_HUB_CACHE, $HF_HOME/hub and ~/.cache/huggingface/hub.`,
  );
}
