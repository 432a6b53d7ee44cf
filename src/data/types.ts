// Dataset row and loader option types.
// Is: the shapes every loader returns. Is not: a schema — columns are whatever the file has.

/** One example: column name → value (strings, numbers, nested lists/objects as the file holds them). */
export type Row = Record<string, unknown>;

export interface LoadDatasetOptions {
  /**
   * A file (.jsonl/.ndjson, .json, .csv, .tsv, .parquet) or a Hugging Face dataset folder
   * (`<dir>/data/<split>-*.parquet`, `<dir>/<split>-*.parquet`, or `<dir>/<split>.{jsonl,json,csv,parquet}`).
   */
  path: string;
  /** Which split of a dataset folder to read. Default "train". Ignored for a single file. */
  split?: string;
}
