// PEFT LoRA adapter → GGUF LoRA adapter that llama.cpp applies at load time (`--lora`, node-llama-cpp
// `createContext({lora})`), as convert_lora_to_gguf.py writes it (FORMATS.md §7).
// Is: `<gguf base name>.lora_a` (ne [in, r]) / `.lora_b` (ne [r, out]) pairs, llama q/k B rows permuted like the
// base weights, general.type=adapter, adapter.type=lora, adapter.lora.alpha. PEFT scalings llama.cpp cannot express
// with one alpha (rsLoRA, rank_pattern, alpha_pattern) are baked into B so that alpha/r·B·A equals PEFT's update.
// Is not: embedding LoRA (lora_embedding_A/B), DoRA, or aLoRA; those throw.
import { ggufArchOf, ggufTensorName, permuteQK, qkPermuteHeads, textConfig } from "./gguf-arch.js";
import { GGML } from "./gguf-types.js";
import { writeGguf, type GgufKV, type GgufTensorPlan } from "./gguf-writer.js";
import { loadPeftAdapter, loraModules, peftScaling, type PeftAdapter } from "../models/peft.ts";
import { readHfConfig } from "./gguf-model.js";

export interface GgufLoraOptions {
  onProgress?: (done: number, total: number, tensor: string) => void;
}

/** Write `adapter` (for the base model in `baseDir`) as a GGUF LoRA at `outPath`. Returns the byte size. */
export function exportGgufLora(baseDir: string, adapter: string | PeftAdapter, outPath: string, opts: GgufLoraOptions = {}): number {
  const ad = typeof adapter === "string" ? loadPeftAdapter(adapter) : adapter;
  if (ad.config.use_dora) throw new Error("GGUF LoRA export: DoRA adapters are not supported by llama.cpp");
  for (const k of ad.tensors.keys()) {
    if (k.includes("lora_embedding_")) throw new Error(`GGUF LoRA export: embedding LoRA (${k}) is not supported; merge it instead (format 'gguf' with the adapter)`);
  }
  const cfg = textConfig(readHfConfig(baseDir));
  const arch = ggufArchOf(cfg);
  const alpha = ad.config.lora_alpha;
  const plans: GgufTensorPlan[] = [];
  for (const [module, { A, B }] of loraModules(ad)) {
    const base = ggufTensorName(arch, module + ".weight");
    if (base === null) throw new Error(`GGUF LoRA export: module ${module} has no GGUF tensor`);
    if (base === "output.weight" && cfg.tie_word_embeddings) throw new Error(`GGUF LoRA export: ${module} targets lm_head, which is tied to the embeddings in this model`);
    const r = A.shape[0], nin = A.shape[1], nout = B.shape[0];
    // llama.cpp applies alpha/r; PEFT applies peftScaling (alpha/√r with rsLoRA, per-module patterns): fold the ratio into B
    const factor = peftScaling(ad.config, module) / (alpha / r);
    const heads = qkPermuteHeads(arch, cfg, base);
    plans.push({ name: `${base}.lora_a`, ne: [nin, r], type: GGML.F32, data: () => new Uint8Array(A.data.slice().buffer) });
    plans.push({
      name: `${base}.lora_b`, ne: [r, nout], type: GGML.F32, data: () => {
        let b: Float32Array = B.data.slice();
        if (factor !== 1) for (let i = 0; i < b.length; i++) b[i] *= factor;
        if (heads) b = permuteQK(b, nout, r, heads);
        return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      },
    });
  }
  const kvs: GgufKV[] = [
    ["general.architecture", { type: "string", value: arch }],
    ["general.type", { type: "string", value: "adapter" }],
    ["adapter.type", { type: "string", value: "lora" }],
    ["adapter.lora.alpha", { type: "f32", value: alpha }],
    ["general.quantization_version", { type: "u32", value: 2 }],
  ];
  return writeGguf(outPath, kvs, plans, { onTensor: opts.onProgress });
}
