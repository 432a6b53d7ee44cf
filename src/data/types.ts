// Dataset row and loader option types.
// Is: the shapes every loader returns. Is not: a schema — columns are whatever the file has.

/** One example: column name → value (strings, numbers, nested lists/objects as the file holds them). */
export type Row = Record<string, unknown>;

export interface LoadDatasetOptions {
  /**
   * A file (.jsonl/.ndjson, .json, .csv, .tsv, .parquet), a Hugging Face dataset folder
   * (`<dir>/data/<split>-*.parquet`, `<dir>/<split>-*.parquet`, or `<dir>/<split>.{jsonl,json,csv,parquet}`), or a
   * hub id ("openai/gsm8k") of a dataset in the local hub cache.
   */
  path: string;
  /** Which split of a dataset folder to read. Default "train". Ignored for a single file. */
  split?: string;
  /** The dataset's configuration (subset), as `load_dataset(path, name)`: its files are in `<dir>/<name>/` or
   *  `<dir>/data/<name>/` (openai/gsm8k: "main" or "socratic"). */
  name?: string;
  /** Where `path` is a hub id: the ref or commit of the cached snapshot (default "main"; hub/cache.ts). */
  revision?: string;
}
