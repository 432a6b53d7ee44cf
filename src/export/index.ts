// `exportModel`: the one entry point the CLI (`aha export`) and `trainer.export()` call. Picks the writer for the
// format, checks the destination (exists → needs overwrite; free space via fs.statfs) before writing anything, and
// makes every output appear atomically: files via temp name + rename, folders (peft/hf) built in a temp sibling
// folder and swapped into place (src/files/atomic.ts); temporary names a killed export left are cleaned first. Every
// weight is checked finite as it is read (a NaN in the base, the adapter or the merge is refused, naming the tensor).
// Is not: a trainer hook; a live model exports by saving its adapter (savePeftAdapter) and calling this on folders.
import { existsSync, statfsSync, statSync } from "node:fs";
import { checkFolderTarget, cleanStaleTemps, writeFileAtomic, writeFolderAtomic } from "../files/atomic.ts";
import { basename, dirname, join, resolve } from "node:path";
import { exportGguf, readHfConfig } from "./gguf-model.js";
import { exportGgufLora } from "./gguf-lora.js";
import { GGUF_EXPORT_TYPES, type GgufExportType } from "./gguf-types.js";
import { saveHfCheckpoint, type HfDtype } from "./hf-checkpoint.js";
import { modelfileText } from "./modelfile.js";
import { loadPeftAdapter, savePeftAdapter } from "../models/peft.ts";
import { loadHfWeights, mergeLora, type WeightSet } from "./weights.js";
import { resolveHubPath } from "../hub/cache.ts";
import { isLinearWeight } from "./hf-checkpoint.js";
import { f32ToBf16, f32ToF16 } from "../models/safetensors.ts";
import { dequantize4, quantize4 } from "../engine/quant4.ts";
import type { Quant4Settings } from "../models/bnb4.ts";

export { savePeftAdapter, loadPeftAdapter, peftScaling, type PeftAdapter, type PeftLoraConfig, type LoraTensor } from "../models/peft.ts";
export { mergeLora, loadHfWeights, loraDelta, type WeightSet } from "./weights.js";
export { saveHfCheckpoint, type SaveHfOptions, type HfDtype } from "./hf-checkpoint.js";
export { exportGguf, type GgufExportOptions, type GgufExportResult } from "./gguf-model.js";
export { exportGgufLora } from "./gguf-lora.js";
export { modelfileText } from "./modelfile.js";
export { GGUF_EXPORT_TYPES, type GgufExportType } from "./gguf-types.js";

export interface ExportProgress {
  phase: "check" | "write" | "done";
  done: number;
  total: number;
  /** tensor or file being written */
  item?: string;
}

export interface ExportOptions {
  /** base model: a local Hugging Face folder (config.json + safetensors + tokenizer files), or a hub id in the local hub cache */
  model: string;
  /** where `model` is a hub id: the ref or commit of the cached snapshot (default "main") */
  revision?: string;
  /** PEFT LoRA adapter folder. 'peft' needs it; 'hf' and 'gguf' merge it into the weights (see `mergeAdapter`) */
  adapter?: string;
  /** 'peft': adapter folder; 'hf': merged safetensors checkpoint folder; 'gguf': one llama.cpp file (+ Modelfile) */
  format: "peft" | "hf" | "gguf";
  /**
   * gguf: f32 | f16 | bf16 | q8_0 | q4_0 | q4_k_m | q5_k_m | q6_k (default f16; K-quants use llama-quantize's mix).
   * hf: f32 | f16 | bf16 (default: the base config's dtype). peft: f32 | bf16 | f16 storage (default f32).
   */
  type?: string;
  /** peft/hf: the folder to create; gguf: the .gguf file path */
  out: string;
  /** replace an existing `out` (default false: an existing `out` is an error) */
  overwrite?: boolean;
  /**
   * gguf with an adapter: true (default) merges W + scale·B·A before converting; false writes the base GGUF at `out`
   * and the adapter as `<out minus .gguf>-LoRA.gguf`, which llama.cpp / Ollama apply at load time.
   */
  mergeAdapter?: boolean;
  /** hf: shard size limit in bytes (default 5e9) */
  maxShardBytes?: number;
  /**
   * 4-bit (--load-in-4bit). hf: write the checkpoint in bitsandbytes 4-bit (the adapter, if any, merged first), a folder
   * that loads as stored. gguf: start from the base quantised to 4 bits and dequantised (the base a QLoRA adapter was
   * trained on), then merge and convert. (A base saved in 4-bit always reads as its dequantised weights.)
   */
  quantization?: Quant4Settings | null;
  /** gguf: also write `<out minus .gguf>.Modelfile` for `ollama create` (default true) */
  modelfile?: boolean;
  onProgress?: (p: ExportProgress) => void;
}

export interface ExportResult {
  /** absolute paths written */
  files: string[];
  warnings: string[];
}

const GGUF_BYTES_PER_WEIGHT: Record<GgufExportType, number> = {
  f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32, q4_k_m: 160 / 256, q5_k_m: 190 / 256, q6_k: 210 / 256,
};

function numel(w: WeightSet): number {
  return w.names.reduce((a, n) => a + w.shape(n).reduce((x, y) => x * y, 1), 0);
}

/** Throw unless `need` bytes (plus 5% and 16 MiB headroom) fit on the filesystem holding `path`. */
export function checkDiskSpace(path: string, need: number): void {
  let dir = resolve(dirname(path));
  while (!existsSync(dir)) dir = dirname(dir);
  const s = statfsSync(dir);
  const free = Number(s.bavail) * Number(s.bsize);
  const want = need * 1.05 + 16 * 2 ** 20;
  if (want > free) {
    const gb = (b: number) => (b / 1e9).toFixed(2) + " GB";
    throw new Error(`export: about ${gb(want)} needed for ${path} but only ${gb(free)} is free on ${dir}; free some space or choose another 'out'`);
  }
}

/** Refuse an existing output unless asked to replace it, and a folder where a file goes (or the reverse). */
function checkOverwrite(out: string, overwrite: boolean | undefined, kind: "file" | "folder"): void {
  if (!existsSync(out)) return;
  if (!overwrite) throw new Error(`export: ${out} already exists; pass overwrite: true (aha export --overwrite) to replace it`);
  if (kind === "folder") checkFolderTarget(out);
  else if (statSync(out).isDirectory()) throw new Error(`export: ${out} is a folder; the ${basename(out)} export is a file: choose another 'out'`);
}

/** The weights with every linear layer's quantised to 4 bits and dequantised (what a 4-bit load of them computes with). */
function through4bit(w: WeightSet, q: Quant4Settings): WeightSet {
  const q4 = (n: string) => {
    const x = w.get(n), dt = w.dtype(n), opts = { type: q.type, doubleQuant: q.doubleQuant };
    return dequantize4(dt === "BF16" ? quantize4(f32ToBf16(x), "bf16", w.shape(n), opts) : dt === "F16" ? quantize4(f32ToF16(x), "f16", w.shape(n), opts) : quantize4(x, "f32", w.shape(n), opts));
  };
  return { ...w, get: (n) => (isLinearWeight(n) && !w.q4?.(n) ? q4(n) : w.get(n)) };
}

/** Export a model (and/or adapter) as a PEFT folder, a merged HF checkpoint, or a GGUF file. */
export async function exportModel(opts: ExportOptions): Promise<ExportResult> {
  const out = resolve(opts.out);
  const progress = (phase: ExportProgress["phase"], done: number, total: number, item?: string) => opts.onProgress?.({ phase, done, total, item });
  progress("check", 0, 1);
  const id = opts.model;
  opts = { ...opts, model: resolveHubPath(opts.model, { revision: opts.revision }) };
  readHfConfig(opts.model); // fail early on a wrong model folder
  const stem = out.replace(/\.gguf$/i, "");
  // what a killed export left: temporary names of dead processes, or an old folder set aside mid-swap
  const ours = new Set([basename(out), `${basename(stem)}-LoRA.gguf`, `${basename(stem)}.Modelfile`]);
  cleanStaleTemps(dirname(out), (base) => ours.has(base));
  checkOverwrite(out, opts.overwrite, opts.format === "gguf" ? "file" : "folder");
  const warnings: string[] = [];

  if (opts.format === "peft") {
    if (opts.quantization) throw new Error("export: a PEFT adapter is the same with a 4-bit base; drop --load-in-4bit");
    if (!opts.adapter) throw new Error("export: format 'peft' needs an adapter folder ('adapter')");
    const ad = loadPeftAdapter(opts.adapter);
    const dtype = (opts.type ?? "f32").toUpperCase();
    if (dtype !== "F32" && dtype !== "BF16" && dtype !== "F16") throw new Error(`export: peft type must be f32, bf16 or f16, got ${opts.type}`);
    const bytes = [...ad.tensors.values()].reduce((a, t) => a + t.data.length * (dtype === "F32" ? 4 : 2), 0);
    checkDiskSpace(out, bytes);
    const config = { ...ad.config, base_model_name_or_path: ad.config.base_model_name_or_path ?? (id === opts.model ? resolve(id) : id) };
    writeFolderAtomic(out, (tmp) => savePeftAdapter(tmp, config, ad.tensors, { dtype: dtype as "F32" | "BF16" | "F16" }));
    progress("done", 1, 1);
    return { files: [join(out, "adapter_config.json"), join(out, "adapter_model.safetensors")], warnings };
  }

  if (opts.format === "hf") {
    const dtype = opts.type as HfDtype | undefined;
    if (dtype !== undefined && !["f32", "f16", "bf16"].includes(dtype)) throw new Error(`export: hf type must be f32, f16 or bf16, got ${opts.type}`);
    const base = loadHfWeights(opts.model);
    const weights = opts.adapter ? mergeLora(base, opts.adapter) : base;
    checkDiskSpace(out, numel(weights) * (opts.quantization ? 0.6 : dtype === "f32" || dtype === undefined ? 4 : 2));
    let files: string[] = [];
    writeFolderAtomic(out, (tmp) => {
      files = saveHfCheckpoint(tmp, weights, {
        dtype, maxShardBytes: opts.maxShardBytes, sourceDir: opts.model, quantize4: opts.quantization,
        onProgress: (d, t, n) => progress("write", d, t, n),
      });
    });
    progress("done", 1, 1);
    return { files: files.map((f) => join(out, f)), warnings };
  }

  if (opts.format === "gguf") {
    const type = (opts.type ?? "f16").toLowerCase() as GgufExportType;
    if (!GGUF_EXPORT_TYPES.includes(type)) throw new Error(`export: gguf type must be one of ${GGUF_EXPORT_TYPES.join(", ")}, got ${opts.type}`);
    const base = opts.quantization ? through4bit(loadHfWeights(opts.model), opts.quantization) : loadHfWeights(opts.model);
    const merge = opts.adapter !== undefined && opts.mergeAdapter !== false;
    const weights = merge ? mergeLora(base, opts.adapter!) : base;
    const loraPath = opts.adapter && !merge ? `${stem}-LoRA.gguf` : undefined;
    if (loraPath) checkOverwrite(loraPath, opts.overwrite, "file");
    checkDiskSpace(out, numel(weights) * GGUF_BYTES_PER_WEIGHT[type]);
    const res = exportGguf(opts.model, weights, out, { type, onProgress: (d, t, n) => progress("write", d, t, n) });
    warnings.push(...res.warnings);
    const files = [out];
    if (loraPath) {
      exportGgufLora(opts.model, opts.adapter!, loraPath);
      files.push(loraPath);
    }
    if (opts.modelfile !== false) {
      const mf = `${stem}.Modelfile`;
      const text = modelfileText({
        gguf: basename(out), adapter: loraPath ? basename(loraPath) : undefined,
        chatTemplate: res.chatTemplate, stopTokens: res.stopTokens, modelDir: opts.model,
      });
      writeFileAtomic(mf, text);
      files.push(mf);
    }
    progress("done", 1, 1);
    return { files, warnings };
  }
  throw new Error(`export: format must be 'peft', 'hf' or 'gguf', got '${String((opts as { format: unknown }).format)}'`);
}
