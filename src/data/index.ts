// Public API of src/data: load datasets, format prompts, GSM8K preset.
export { loadDataset, readDataFile, resolveSplitFiles } from "./load.ts";
export { parseJsonl, parseJsonDocument, readJsonl, readJson } from "./json.ts";
export { parseCsv, parseCsvRecords, readCsv } from "./csv.ts";
export { readParquet, normalizeParquetValue } from "./parquet.ts";
export { formatPrompt, isConversational, rowPrompt, rowsToColumns, type FormatPromptOptions } from "./prompt.ts";
export { prepareGsm8k, extractHashAnswer, type Gsm8kOptions } from "./gsm8k.ts";
export { applyPreset, DATASET_PRESETS, type DatasetPreset, type PresetOptions } from "./presets.ts";
export { DatasetError } from "./errors.ts";
export type { LoadDatasetOptions, Row } from "./types.ts";
