// PEFT LoRA adapter folder: writer and reader (FORMATS.md §8). adapter_config.json with PEFT's LoraConfig field
// set (as peft 0.21 writes it: sorted keys, 2-space indent) and adapter_model.safetensors with
// `base_model.model.<module>.lora_{A,B}.weight` keys and {"format":"pt"} metadata.
// Is not: a LoRA layer (models/ owns that; loadPeftAdapter returns plain data for it), nor DoRA/embedding-LoRA aware
// beyond passing such tensors through unchanged.
// Simplifies: tensors are float32 in memory; the file may store F32 (default), BF16 or F16.
// Hand-written: PEFT is Python; its format is a JSON file and a safetensors file.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { f32ToBf16, f32ToF16, readSafetensors, writeSafetensors, type StWriteTensor } from "./safetensors.ts";
import { ensureDir, writeFileAtomic } from "../files/atomic.ts";

/** LoRA hyper-parameters, with PEFT's key names. Unset fields get PEFT's defaults. */
export interface PeftLoraConfig {
  /** rank (PEFT default 8) */
  r: number;
  /** scaling numerator: scale = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora */
  lora_alpha: number;
  /** module-name suffixes (["q_proj", ...]), a regex string, or "all-linear" */
  target_modules: string[] | string;
  use_rslora?: boolean;
  lora_dropout?: number;
  /** the base model's Hub id or local path; PEFT loads it from here when not given one */
  base_model_name_or_path?: string | null;
  /** "CAUSAL_LM" (default here) lets AutoPeftModelForCausalLM load the folder; null is what the fixtures carry */
  task_type?: string | null;
  bias?: "none" | "all" | "lora_only";
  fan_in_fan_out?: boolean;
  /** per-module overrides of r / lora_alpha, keyed by module-name pattern */
  rank_pattern?: Record<string, number>;
  alpha_pattern?: Record<string, number>;
  modules_to_save?: string[] | null;
  [field: string]: unknown;
}

export interface LoraTensor {
  shape: number[];
  data: Float32Array;
}

/** A loaded adapter: the full config and tensors keyed by saved PEFT name (no `.default`). */
export interface PeftAdapter {
  config: PeftLoraConfig;
  tensors: Map<string, LoraTensor>;
}

/** Every LoraConfig field peft 0.21 serialises, with its default (the fixture adapter's field set). */
const PEFT_DEFAULTS: Record<string, unknown> = {
  alora_invocation_tokens: null, alpha_pattern: {}, arrow_config: null, auto_mapping: null,
  base_model_name_or_path: null, bias: "none", corda_config: null, ensure_weight_tying: false, eva_config: null,
  exclude_modules: null, fan_in_fan_out: false, inference_mode: true, init_lora_weights: true, kasa_config: null,
  layer_replication: null, layers_pattern: null, layers_to_transform: null, loftq_config: {}, lora_alpha: 8,
  lora_bias: false, lora_dropout: 0.0, lora_ga_config: null, megatron_config: null, megatron_core: "megatron.core",
  modules_to_save: null, monteclora_config: null, peft_type: "LORA", peft_version: "0.21.0", qalora_group_size: 16,
  r: 8, rank_pattern: {}, revision: null, target_modules: null, target_parameters: null, task_type: "CAUSAL_LM",
  trainable_token_indices: null, use_bdlora: null, use_dora: false, use_qalora: false, use_rslora: false,
  velora_config: null,
};

export const PEFT_PREFIX = "base_model.model.";

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) o[k] = sortKeys((v as Record<string, unknown>)[k]);
    return o;
  }
  return v;
}

/** Normalise a LoRA tensor name to the saved form `base_model.model.<module>.lora_X.weight`. */
export function peftKey(name: string): string {
  let n = name.replace(/\.default(?=\.weight$|$)/, "");
  if (!n.startsWith(PEFT_PREFIX)) n = PEFT_PREFIX + n;
  return n;
}

/** PEFT's pattern match for rank_pattern / alpha_pattern keys against a module path. */
function patternValue(patterns: Record<string, number> | undefined, module: string): number | undefined {
  if (!patterns) return undefined;
  for (const [k, v] of Object.entries(patterns)) {
    if (module === k || module.endsWith("." + k)) return v;
    try { if (new RegExp(`^(.*\\.)?${k}$`).test(module)) return v; } catch { /* not a regex */ }
  }
  return undefined;
}

/** LoRA scaling for one module (HF path, e.g. model.layers.0.self_attn.q_proj): alpha/r or alpha/√r. */
export function peftScaling(config: PeftLoraConfig, module: string): number {
  const r = patternValue(config.rank_pattern, module) ?? config.r;
  const alpha = patternValue(config.alpha_pattern, module) ?? config.lora_alpha;
  return config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** LoRA modules of an adapter: HF module path → its A ([r, in]) and B ([out, r]) tensors. */
export function loraModules(adapter: PeftAdapter): Map<string, { A: LoraTensor; B: LoraTensor }> {
  const out = new Map<string, { A?: LoraTensor; B?: LoraTensor }>();
  for (const [k, t] of adapter.tensors) {
    const m = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/.exec(k);
    if (!m) continue;
    const e = out.get(m[1]) ?? {};
    e[m[2] as "A" | "B"] = t;
    out.set(m[1], e);
  }
  for (const [mod, e] of out) {
    if (!e.A || !e.B) throw new Error(`LoRA module ${mod}: lora_${e.A ? "B" : "A"}.weight is missing`);
    if (e.A.shape.length !== 2 || e.B.shape.length !== 2 || e.A.shape[0] !== e.B.shape[1])
      throw new Error(`LoRA tensors '${PEFT_PREFIX}${mod}.lora_A.weight' (shape [${e.A.shape}]) and '${PEFT_PREFIX}${mod}.lora_B.weight' (shape [${e.B.shape}]) do not share a rank (want A [r, in], B [out, r])`);
  }
  return out as Map<string, { A: LoraTensor; B: LoraTensor }>;
}

/** Complete a user config with PEFT's defaults (and validate the fields every loader needs). */
export function fullPeftConfig(config: PeftLoraConfig): PeftLoraConfig {
  if (!(Number.isInteger(config.r) && config.r > 0)) throw new Error(`PEFT config: r must be a positive integer, got ${config.r}`);
  if (typeof config.lora_alpha !== "number") throw new Error(`PEFT config: lora_alpha must be a number, got ${config.lora_alpha}`);
  if (config.target_modules == null) throw new Error(`PEFT config: target_modules is required (e.g. ["q_proj","v_proj"] or "all-linear")`);
  const full: Record<string, unknown> = { ...PEFT_DEFAULTS };
  for (const [k, v] of Object.entries(config)) if (v !== undefined) full[k] = v;
  return full as PeftLoraConfig;
}

export interface SavePeftOptions {
  /** storage dtype of adapter_model.safetensors (default F32, as PEFT saves float32 adapters) */
  dtype?: "F32" | "BF16" | "F16";
}

/** Write `dir/adapter_config.json` and `dir/adapter_model.safetensors` (each atomically). */
export function savePeftAdapter(dir: string, config: PeftLoraConfig, tensors: Map<string, LoraTensor>, opts: SavePeftOptions = {}): void {
  const full = fullPeftConfig(config);
  const dtype = opts.dtype ?? "F32";
  const st: Record<string, StWriteTensor> = {};
  const byKey = new Map<string, LoraTensor>();
  for (const [name, t] of tensors) {
    const key = peftKey(name);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) throw new Error(`LoRA tensor ${name}: shape [${t.shape}] holds ${numel} values, data has ${t.data.length}`);
    if (st[key]) throw new Error(`LoRA tensor ${name}: duplicate key ${key}`);
    const data = dtype === "F32" ? t.data : dtype === "BF16" ? f32ToBf16(t.data) : f32ToF16(t.data);
    st[key] = { dtype, shape: t.shape, data };
    byKey.set(key, t);
  }
  loraModules({ config: full, tensors: byKey }); // every A has its B, ranks agree
  ensureDir(dir);
  writeSafetensors(join(dir, "adapter_model.safetensors"), st, { format: "pt" });
  writeFileAtomic(join(dir, "adapter_config.json"), JSON.stringify(sortKeys(full), null, 2) + "\n");
}

/** Read a PEFT adapter folder (adapter_config.json + adapter_model.safetensors) as float32 tensors. */
export function loadPeftAdapter(dir: string): PeftAdapter {
  const cfgPath = join(dir, "adapter_config.json");
  if (!existsSync(cfgPath)) throw new Error(`${dir}: no adapter_config.json (not a PEFT adapter folder?)`);
  const config = JSON.parse(readFileSync(cfgPath, "utf8")) as PeftLoraConfig;
  if (config.peft_type !== undefined && config.peft_type !== "LORA")
    throw new Error(`${cfgPath}: peft_type is ${String(config.peft_type)}; only LORA adapters are supported`);
  const stPath = join(dir, "adapter_model.safetensors");
  if (!existsSync(stPath))
    throw new Error(`${dir}: no adapter_model.safetensors${existsSync(join(dir, "adapter_model.bin")) ? " (adapter_model.bin is a pickle; re-save with safe_serialization=True)" : ""}`);
  const f = readSafetensors(stPath);
  const tensors = new Map<string, LoraTensor>();
  for (const [name, info] of f.tensors) tensors.set(peftKey(name), { shape: [...info.shape], data: f.weight(name) });
  return { config, tensors };
}
