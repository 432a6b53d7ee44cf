// Finds the tensors of a Hugging Face checkpoint folder: model.safetensors, or the shards named by
// model.safetensors.index.json (checked against what the shards really hold), and loads them as engine tensors
// with shape checks whose errors name the tensor and the file. 16-bit weights stay 16-bit in the type the device
// keeps them in (Backend.weightDtype): on a GPU without bf16 tensor cores (Turing) a bf16 checkpoint becomes f16,
// checked value by value: a weight beyond f16's range is an error naming the tensor, never an Inf.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { bf16ToF32, f32ToF16, readSafetensors, type SafetensorsFile } from "./safetensors.ts";
import { defaultBackend, empty, fromHost, type Tensor } from "../engine/index.ts";
import type { ModelConfig } from "./config.ts";
import type { DType } from "../engine/dtype.ts";

/** bf16 → f16 of every 65,536 bf16 bit patterns (round to nearest even; beyond ±65504 → ±Inf), made once. */
let bf16ToF16Table: Uint16Array | null = null;

/**
 * bf16 words as f16 words. Values beyond f16's largest (65504) throw, naming `where`; values below f16's smallest
 * subnormal (6e-8) become 0 and are counted (`flushed`). Inf and NaN stay what they are.
 */
export function bf16ToF16(words: Uint16Array, where: string): { out: Uint16Array; flushed: number } {
  if (!bf16ToF16Table) bf16ToF16Table = f32ToF16(bf16ToF32(Uint16Array.from({ length: 65536 }, (_, i) => i)));
  const t = bf16ToF16Table, out = new Uint16Array(words.length);
  let overflow = 0, flushed = 0, largest = 0;
  for (let i = 0; i < words.length; i++) {
    const w = words[i], h = t[w];
    out[i] = h;
    if ((h & 0x7fff) === 0x7c00 && (w & 0x7fff) !== 0x7f80) {
      overflow++;
      largest = Math.max(largest, Math.abs(bf16ToF32(Uint16Array.of(w))[0]));
    } else if ((h & 0x7fff) === 0 && (w & 0x7fff) !== 0) flushed++;
  }
  if (overflow)
    throw new Error(`${where}: ${overflow} value(s) beyond fp16's range (largest |x| ${largest.toExponential(3)}, fp16 holds up to 65504): ` +
      "this GPU has no bf16 tensor cores (Turing), so bf16 weights are kept in fp16 there; load the model in f32 (dtype: \"f32\") instead");
  return { out, flushed };
}

export class WeightStore {
  private files = new Map<string, SafetensorsFile>();
  private where = new Map<string, string>();
  /** bf16 tensors loaded as f16 for the device (weightDtype), and their values below f16's range that became 0 */
  readonly toF16 = { tensors: 0, flushed: 0 };

  constructor(readonly dir: string) {
    const single = join(dir, "model.safetensors");
    const index = join(dir, "model.safetensors.index.json");
    if (existsSync(index)) {
      let weightMap: Record<string, string>;
      try {
        weightMap = JSON.parse(readFileSync(index, "utf8")).weight_map;
      } catch (e) {
        throw new Error(`${index}: cannot parse (${(e as Error).message})`);
      }
      if (!weightMap || typeof weightMap !== "object") throw new Error(`${index}: field 'weight_map' is missing`);
      for (const shard of new Set(Object.values(weightMap))) {
        const f = readSafetensors(join(dir, shard));
        this.files.set(shard, f);
        for (const name of f.tensors.keys()) this.where.set(name, shard);
      }
      for (const [name, shard] of Object.entries(weightMap))
        if (this.where.get(name) !== shard) throw new Error(`${index}: tensor '${name}' is listed in ${shard} but not found there`);
    } else if (existsSync(single)) {
      const f = readSafetensors(single);
      this.files.set("model.safetensors", f);
      for (const name of f.tensors.keys()) this.where.set(name, "model.safetensors");
    } else {
      throw new Error(`${dir}: no model.safetensors or model.safetensors.index.json`);
    }
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  file(name: string): SafetensorsFile {
    const shard = this.where.get(name);
    if (!shard) throw new Error(`${this.dir}: tensor '${name}' is missing from the checkpoint`);
    return this.files.get(shard)!;
  }

  /**
   * Load `name` with the expected shape. keep16: store bf16/f16 as such (weights of matmuls and embeddings);
   * otherwise convert to f32.
   */
  load(name: string, shape: number[], keep16 = true): Tensor {
    const f = this.file(name);
    const info = f.info(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))
      throw new Error(`${f.path}: tensor '${name}' has shape [${info.shape}], expected [${shape}]`);
    let t: Tensor;
    if (keep16 && (info.dtype === "BF16" || info.dtype === "F16")) {
      const stored: DType = info.dtype === "BF16" ? "bf16" : "f16", kept = defaultBackend().weightDtype?.(stored) ?? stored;
      let words = f.weight16(name);
      if (kept !== stored) {
        const c = bf16ToF16(words, `${f.path}: tensor '${name}'`);
        words = c.out;
        this.toF16.tensors++;
        this.toF16.flushed += c.flushed;
      }
      t = fromHost(words, shape, kept);
    } else {
      t = fromHost(f.weight(name), shape, "f32");
    }
    t.name = name;
    return t.setCategory("weights").keep();
  }
}

/**
 * A model's weights allocated in the config's dtype but never read from a file, their values undefined: memory
 * planning on the CUDA emulator without arithmetic (AHA_EMU_NO_COMPUTE=1; bench/memory-table.ts), where no kernel
 * reads them. `has` follows the config (lm_head present unless tied).
 */
export class ShapeOnlyWeights {
  readonly dtype: DType;
  constructor(readonly cfg: ModelConfig) {
    const dt = String(cfg.raw.torch_dtype ?? cfg.raw.dtype ?? "bfloat16");
    this.dtype = dt === "float32" ? "f32" : dt === "float16" ? "f16" : "bf16";
  }
  has(name: string): boolean {
    return name !== "lm_head.weight" || !this.cfg.tieEmbeddings;
  }
  load(name: string, shape: number[], keep16 = true): Tensor {
    const t = empty(shape, keep16 ? (defaultBackend().weightDtype?.(this.dtype) ?? this.dtype) : "f32");
    t.name = name;
    return t.setCategory("weights").keep();
  }
}
