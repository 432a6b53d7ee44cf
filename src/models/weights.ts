// Finds the tensors of a Hugging Face checkpoint folder: model.safetensors, or the shards named by
// model.safetensors.index.json (checked against what the shards really hold), and loads them as engine tensors
// with shape checks whose errors name the tensor and the file.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors, type SafetensorsFile } from "./safetensors.ts";
import { empty, fromHost, type Tensor } from "../engine/index.ts";
import type { ModelConfig } from "./config.ts";
import type { DType } from "../engine/dtype.ts";

export class WeightStore {
  private files = new Map<string, SafetensorsFile>();
  private where = new Map<string, string>();

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
      t = fromHost(f.weight16(name), shape, (info.dtype === "BF16" ? "bf16" : "f16") as DType);
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
    const t = empty(shape, keep16 ? this.dtype : "f32");
    t.name = name;
    return t.setCategory("weights").keep();
  }
}
