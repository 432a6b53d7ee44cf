// Dataset presets by name (the `preset:` key of a dataset config): each maps raw rows to prompt + reward columns.
// Is: a small registry. Is not: a place for user code — map your rows in TS and pass them directly instead.
import { prepareGsm8k } from "./gsm8k.ts";
import type { Row } from "./types.ts";

export interface PresetOptions {
  systemPrompt?: string;
  source?: string;
}

export type DatasetPreset = (rows: Row[], opts: PresetOptions) => Row[];

export const DATASET_PRESETS: Record<string, DatasetPreset> = {
  gsm8k: prepareGsm8k,
};

export function applyPreset(name: string, rows: Row[], opts: PresetOptions = {}): Row[] {
  const p = DATASET_PRESETS[name];
  if (!p) throw new Error(`unknown dataset preset "${name}"; known: ${Object.keys(DATASET_PRESETS).join(", ")}`);
  return p(rows, opts);
}
