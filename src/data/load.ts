// loadDataset: read a local data file or Hugging Face dataset folder into rows.
// Is: format dispatch by extension and split resolution inside dataset folders (shards concatenated in name order).
// Is not: a Hub downloader, a dataset-script runner, or lazy — all rows are returned in memory.
// Simplifies: folder layouts are the ones `datasets` writes or reads by convention (see LoadDatasetOptions.path).
import { existsSync, readdirSync, statSync } from "node:fs";
import { extname, join, relative } from "node:path";
import { HubNotFoundError, resolveHubPath } from "../hub/cache.ts";
import { readCsv } from "./csv.ts";
import { DatasetError } from "./errors.ts";
import { readJson, readJsonl } from "./json.ts";
import { readParquet } from "./parquet.ts";
import type { LoadDatasetOptions, Row } from "./types.ts";

const EXTENSIONS = [".parquet", ".jsonl", ".ndjson", ".json", ".csv", ".tsv"];

/** Read one data file, choosing the reader by its extension. */
export async function readDataFile(file: string): Promise<Row[]> {
  const ext = extname(file).toLowerCase();
  switch (ext) {
    case ".jsonl":
    case ".ndjson":
      return readJsonl(file);
    case ".json":
      return readJson(file);
    case ".csv":
      return readCsv(file, ",");
    case ".tsv":
      return readCsv(file, "\t");
    case ".parquet":
      return readParquet(file);
    default:
      throw new DatasetError(file, "", `unknown data file type "${ext}" (expected one of ${EXTENSIONS.join(", ")})`);
  }
}

/**
 * The files that hold `split` in a dataset folder, in order: `<dir>/data/` first, then `<dir>/` (with a configuration
 * `name`: `<dir>/<name>/`, then `<dir>/data/<name>/`); in each, files named `<split>.<ext>` or
 * `<split>-<anything>.<ext>` (shards like `train-00000-of-00002.parquet`).
 */
export function resolveSplitFiles(dir: string, split: string, name?: string): string[] {
  const escaped = split.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = new RegExp(`^${escaped}(-[^/]*)?(${EXTENSIONS.map((e) => e.replace(".", "\\.")).join("|")})$`, "i");
  const searched: string[] = [];
  for (const base of name ? [join(dir, name), join(dir, "data", name)] : [join(dir, "data"), dir]) {
    if (!existsSync(base) || !statSync(base).isDirectory()) continue;
    searched.push(base);
    const files = readdirSync(base)
      .filter((n) => re.test(n) && statSync(join(base, n)).isFile())
      .sort();
    if (files.length === 0) continue;
    const exts = new Set(files.map((f) => extname(f).toLowerCase()));
    if (exts.size > 1) {
      throw new DatasetError(base, "", `split "${split}" is stored in several formats (${[...exts].join(", ")}); keep one`);
    }
    return files.map((f) => join(base, f));
  }
  const present = searched.flatMap((b) => readdirSync(b).map((n) => relative(dir, join(b, n))));
  const where = name ? `${name}/ and data/${name}/` : "data/ and the folder itself";
  // a dataset with configurations keeps each in a sub-folder (openai/gsm8k: main/, socratic/)
  const configs = name ? [] : readdirSync(dir).filter((n) => statSync(join(dir, n)).isDirectory() && n !== "data" && readdirSync(join(dir, n)).some((f) => re.test(f)));
  throw new DatasetError(
    dir,
    "",
    `no files for split "${split}" in ${where} (looked for ${split}-*.parquet, ${split}.{jsonl,json,csv,parquet}); ` +
      (configs.length ? `the dataset has configurations ${configs.join(", ")}: pick one with dataset.name` : `found: ${present.slice(0, 20).join(", ") || "nothing"}`),
  );
}

/** Load a dataset: a single file, or one split of a Hugging Face dataset folder. */
export async function loadDataset(opts: LoadDatasetOptions): Promise<Row[]> {
  let path: string;
  try {
    path = resolveHubPath(opts.path, { type: "dataset", revision: opts.revision, what: "dataset" });
  } catch (e) {
    if (e instanceof HubNotFoundError) throw new DatasetError(opts.path, "", e.message);
    throw e;
  }
  if (statSync(path).isDirectory()) {
    const files = resolveSplitFiles(path, opts.split ?? "train", opts.name);
    const parts = await Promise.all(files.map(readDataFile));
    return parts.flat();
  }
  return readDataFile(path);
}
