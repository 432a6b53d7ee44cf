// Per-architecture GGUF conversion rules (FORMATS.md §3.3, §4): HF config → `{arch}.*` keys, HF tensor name → GGUF
// name, and the tensor transforms llama.cpp expects (llama Q/K row permutation, Gemma3 norm + 1, llama3 rope_freqs,
// phi3 longrope factors).
// Is: what convert_hf_to_gguf.py does for llama (and mistral), qwen2, qwen3, gemma3 and phi3 text models; gemma3 also
// gets the per-layer `sliding_window_pattern` from config.layer_types (the converter relies on llama.cpp's hard-coded
// every-6th-layer pattern, which is wrong for models with other layouts, e.g. the 2-layer fixture).
// Is not: vocab (gguf-vocab.ts), dtype choice (quant-mix.ts), multimodal towers.
import type { GgufKV } from "./gguf-writer.js";

export type GgufArch = "llama" | "qwen2" | "qwen3" | "gemma3" | "phi3";
export type HfConfig = Record<string, any>;

const ARCH_OF_MODEL_TYPE: Record<string, GgufArch> = {
  llama: "llama", mistral: "llama", qwen2: "qwen2", qwen3: "qwen3", gemma3: "gemma3", gemma3_text: "gemma3", phi3: "phi3",
};

/** The llama.cpp architecture for an HF config (error names the supported model types). */
export function ggufArchOf(cfg: HfConfig): GgufArch {
  const mt = String(cfg.text_config?.model_type ?? cfg.model_type ?? "");
  const a = ARCH_OF_MODEL_TYPE[mt];
  if (!a) throw new Error(`GGUF export: model_type '${mt}' is not supported (supported: ${Object.keys(ARCH_OF_MODEL_TYPE).join(", ")})`);
  return a;
}

/** The text model's config (gemma3 multimodal nests it under text_config). */
export function textConfig(cfg: HfConfig): HfConfig {
  return cfg.text_config ? { ...cfg, ...cfg.text_config } : cfg;
}

export function headDim(cfg: HfConfig): number {
  return cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads;
}

/** Rope parameters of one attention kind: transformers 5 `rope_parameters` (maybe per layer type) or 4.x keys. */
export function ropeParams(cfg: HfConfig, layerType?: string): Record<string, any> {
  let rp: Record<string, any> = cfg.rope_parameters ?? cfg.rope_scaling ?? {};
  if (layerType && rp[layerType]) rp = rp[layerType];
  else if (rp.full_attention) rp = rp.full_attention;
  const out = { ...rp };
  if (out.rope_theta === undefined) out.rope_theta = layerType === "sliding_attention" ? cfg.rope_local_base_freq ?? 10000 : cfg.rope_theta ?? 10000;
  out.rope_type = out.rope_type ?? out.type ?? "default";
  return out;
}

const u32 = (value: number) => ({ type: "u32" as const, value });
const f32 = (value: number) => ({ type: "f32" as const, value });

/** `{arch}.*` hyper-parameter keys, typed as llama.cpp reads them (§3.1). */
export function archKVs(arch: GgufArch, cfg: HfConfig): GgufKV[] {
  const a = arch;
  const hd = headDim(cfg);
  const kv: GgufKV[] = [
    [`${a}.context_length`, u32(cfg.max_position_embeddings ?? (arch === "gemma3" ? 131072 : 4096))],
    [`${a}.embedding_length`, u32(cfg.hidden_size)],
    [`${a}.block_count`, u32(cfg.num_hidden_layers)],
    [`${a}.feed_forward_length`, u32(cfg.intermediate_size)],
    [`${a}.attention.head_count`, u32(cfg.num_attention_heads)],
    [`${a}.attention.head_count_kv`, u32(cfg.num_key_value_heads ?? cfg.num_attention_heads)],
    [`${a}.attention.layer_norm_rms_epsilon`, f32(cfg.rms_norm_eps ?? 1e-6)],
  ];
  const rp = ropeParams(cfg, arch === "gemma3" ? "full_attention" : undefined);
  kv.push([`${a}.rope.freq_base`, f32(rp.rope_theta)]);
  if (cfg.head_dim !== undefined || arch === "qwen3" || arch === "gemma3") {
    kv.push([`${a}.attention.key_length`, u32(hd)], [`${a}.attention.value_length`, u32(hd)]);
  }
  if (arch === "llama") {
    kv.push([`${a}.vocab_size`, u32(cfg.vocab_size)], [`${a}.rope.dimension_count`, u32(hd)]);
  }
  if (arch === "phi3") {
    const prf = rp.partial_rotary_factor ?? cfg.partial_rotary_factor ?? 1.0;
    const orig = rp.original_max_position_embeddings ?? cfg.original_max_position_embeddings ?? cfg.max_position_embeddings;
    kv.push([`${a}.rope.dimension_count`, u32(Math.floor(Math.floor(prf * cfg.hidden_size) / cfg.num_attention_heads))]);
    kv.push([`${a}.rope.scaling.original_context_length`, u32(orig)]);
    kv.push([`${a}.attention.sliding_window`, u32(cfg.sliding_window ?? 0)]);
    if (rp.long_factor) {
      const scale = cfg.max_position_embeddings / orig;
      const t = String(rp.rope_type).toLowerCase();
      const af = scale <= 1 ? 1 : t === "yarn" ? 0.1 * Math.log(scale) + 1 : Math.sqrt(1 + Math.log(scale) / Math.log(orig));
      kv.push([`${a}.rope.scaling.attn_factor`, f32(af)]);
    }
  }
  if (arch === "gemma3") {
    if (cfg.final_logit_softcapping) kv.push([`${a}.final_logit_softcapping`, f32(cfg.final_logit_softcapping)]);
    if (cfg.sliding_window && cfg.sliding_window_pattern !== 1) {
      kv.push([`${a}.attention.sliding_window`, u32(cfg.sliding_window)]);
      const types: string[] | undefined = cfg.layer_types;
      if (types && types.length === cfg.num_hidden_layers) {
        kv.push([`${a}.attention.sliding_window_pattern`, { type: "array", itemType: "bool", value: types.map((t) => t === "sliding_attention") }]);
      } else if (cfg.sliding_window_pattern ?? cfg._sliding_window_pattern) {
        kv.push([`${a}.attention.sliding_window_pattern`, u32(cfg.sliding_window_pattern ?? cfg._sliding_window_pattern)]);
      }
      kv.push([`${a}.rope.freq_base_swa`, f32(ropeParams(cfg, "sliding_attention").rope_theta)]);
    }
  }
  // rope scaling other than llama3 (llama3 becomes the rope_freqs tensor; phi3 longrope becomes factor tensors)
  if (rp.rope_type === "linear" && rp.factor) {
    kv.push([`${a}.rope.scaling.type`, { type: "string", value: "linear" }], [`${a}.rope.scaling.factor`, f32(rp.factor)]);
  } else if (rp.rope_type === "yarn" && rp.factor) {
    kv.push([`${a}.rope.scaling.type`, { type: "string", value: "yarn" }], [`${a}.rope.scaling.factor`, f32(rp.factor)]);
    if (arch !== "phi3" && rp.original_max_position_embeddings)
      kv.push([`${a}.rope.scaling.original_context_length`, u32(rp.original_max_position_embeddings)]);
    if (rp.beta_fast) kv.push([`${a}.rope.scaling.yarn_beta_fast`, f32(rp.beta_fast)]);
    if (rp.beta_slow) kv.push([`${a}.rope.scaling.yarn_beta_slow`, f32(rp.beta_slow)]);
  }
  return kv;
}

const LAYER_MAP: Record<string, string> = {
  "input_layernorm.weight": "attn_norm.weight",
  "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
  "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
  "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
  "self_attn.o_proj.weight": "attn_output.weight", "self_attn.o_proj.bias": "attn_output.bias",
  "self_attn.qkv_proj.weight": "attn_qkv.weight",
  "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
  "post_attention_layernorm.weight": "ffn_norm.weight",
  "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
  "mlp.gate_up_proj.weight": "ffn_up.weight",
};
const GEMMA3_LAYER_MAP: Record<string, string> = {
  "post_attention_layernorm.weight": "post_attention_norm.weight",
  "pre_feedforward_layernorm.weight": "ffn_norm.weight",
  "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
};

/** GGUF name for an HF tensor name, or null for tensors the GGUF does not carry (rotary caches). */
export function ggufTensorName(arch: GgufArch, hf: string): string | null {
  const n = hf.replace(/^model\.language_model\./, "model.").replace(/^language_model\.model\./, "model.");
  if (n === "model.embed_tokens.weight") return "token_embd.weight";
  if (n === "model.norm.weight") return "output_norm.weight";
  if (n === "lm_head.weight" || n === "language_model.lm_head.weight") return "output.weight";
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(n);
  if (m) {
    const rest = (arch === "gemma3" ? GEMMA3_LAYER_MAP[m[2]] : undefined) ?? LAYER_MAP[m[2]];
    if (rest) return `blk.${m[1]}.${rest}`;
    if (m[2].endsWith("rotary_emb.inv_freq")) return null;
  }
  throw new Error(`GGUF export (${arch}): no GGUF name for tensor ${hf}`);
}

/**
 * Reorder the output rows of a llama q/k projection from HF's rotate-half layout to llama.cpp's adjacent pairs
 * (§4.2): within each head, new row 2j = old row j, new row 2j+1 = old row hd/2 + j. Works on weights [rows, cols],
 * biases (cols = 1) and LoRA B matrices.
 */
export function permuteQK(x: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  const hd = rows / nHead, half = hd / 2;
  const out = new Float32Array(x.length);
  for (let h = 0; h < nHead; h++) {
    for (let j = 0; j < half; j++) {
      out.set(x.subarray((h * hd + j) * cols, (h * hd + j + 1) * cols), (h * hd + 2 * j) * cols);
      out.set(x.subarray((h * hd + half + j) * cols, (h * hd + half + j + 1) * cols), (h * hd + 2 * j + 1) * cols);
    }
  }
  return out;
}

/** Which permutation (head count) a GGUF tensor needs on llama, or 0. */
export function qkPermuteHeads(arch: GgufArch, cfg: HfConfig, gguf: string): number {
  if (arch !== "llama") return 0;
  if (/^blk\.\d+\.attn_q\.(weight|bias)$/.test(gguf)) return cfg.num_attention_heads;
  if (/^blk\.\d+\.attn_k\.(weight|bias)$/.test(gguf)) return cfg.num_key_value_heads ?? cfg.num_attention_heads;
  return 0;
}

/** Apply the per-architecture value transforms to one tensor (data is modified in place or replaced). */
export function transformTensor(arch: GgufArch, cfg: HfConfig, gguf: string, shape: number[], data: Float32Array,
  opts: { skipPermute?: boolean } = {}): Float32Array {
  const heads = opts.skipPermute ? 0 : qkPermuteHeads(arch, cfg, gguf);
  if (heads) data = permuteQK(data, shape[0], shape.length > 1 ? shape[1] : 1, heads);
  if (arch === "gemma3" && gguf.endsWith("norm.weight")) for (let i = 0; i < data.length; i++) data[i] += 1;
  return data;
}

/** Tensors the converter generates from the config: llama3 `rope_freqs`, phi3 longrope factors. */
export function extraTensors(arch: GgufArch, cfg: HfConfig): { name: string; data: Float32Array }[] {
  const rp = ropeParams(cfg);
  const out: { name: string; data: Float32Array }[] = [];
  if (arch === "llama" && rp.rope_type === "llama3") {
    const hd = headDim(cfg);
    const base = rp.rope_theta;
    const factor = rp.factor ?? 8, low = rp.low_freq_factor ?? 1, high = rp.high_freq_factor ?? 4;
    const L = rp.original_max_position_embeddings ?? 8192;
    const lowWl = L / low, highWl = L / high;
    const f = new Float32Array(hd / 2);
    for (let i = 0; i < hd / 2; i++) {
      const freq = 1 / Math.pow(base, (2 * i) / hd);
      const wl = (2 * Math.PI) / freq;
      if (wl < highWl) f[i] = 1;
      else if (wl > lowWl) f[i] = factor;
      else {
        const s = (L / wl - low) / (high - low);
        f[i] = 1 / ((1 - s) / factor + s);
      }
    }
    out.push({ name: "rope_freqs.weight", data: f });
  }
  if (arch === "phi3" && rp.long_factor && rp.short_factor) {
    out.push({ name: "rope_factors_long.weight", data: Float32Array.from(rp.long_factor) });
    out.push({ name: "rope_factors_short.weight", data: Float32Array.from(rp.short_factor) });
  }
  return out;
}
