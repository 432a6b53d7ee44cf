// Hugging Face config.json → one normalised ModelConfig for the llama family (llama, qwen2, qwen3, mistral,
// gemma3 text, phi3). Reads both config forms: transformers 5 `rope_parameters` (per layer type for gemma3) and
// the older top-level `rope_theta` / `rope_scaling` / `rope_local_base_freq` most Hub checkpoints carry.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export type Arch = "llama" | "qwen2" | "qwen3" | "mistral" | "gemma3" | "phi3";

export interface RopeParams {
  type: "default" | "linear" | "dynamic" | "yarn" | "llama3" | "longrope";
  theta: number;
  factor?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
  betaFast?: number;
  betaSlow?: number;
  attentionFactor?: number;
  mscale?: number;
  mscaleAllDim?: number;
  truncate?: boolean;
  shortFactor?: number[];
  longFactor?: number[];
}

export interface ModelConfig {
  arch: Arch;
  /** the folder it was read from */
  dir: string;
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  maxPositions: number;
  /** rotary dims per head (headDim × partial_rotary_factor) */
  rotaryDim: number;
  /** rope per layer (gemma3 sliding layers use their own base) */
  ropeByLayer: RopeParams[];
  /** sliding window per layer (0 = full attention) */
  windowByLayer: number[];
  attentionBias: boolean;
  attentionOutBias: boolean;
  mlpBias: boolean;
  qkNorm: boolean;
  /** Gemma: norms scale by (1 + w) */
  normOffset: number;
  /** Gemma: four norms per layer (pre/post attention, pre/post feed-forward) */
  sandwichNorms: boolean;
  /** Gemma: embeddings × sqrt(hidden) */
  embedScale: number;
  /** attention score scale (head_dim^-0.5, or query_pre_attn_scalar^-0.5) */
  attnScale: number;
  attnSoftcap: number;
  finalSoftcap: number;
  act: "silu" | "gelu_tanh";
  /** Phi-3: fused qkv_proj and gate_up_proj */
  fused: boolean;
  tieEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  raw: Record<string, unknown>;
}

const ARCH_BY_TYPE: Record<string, Arch> = {
  llama: "llama", qwen2: "qwen2", qwen3: "qwen3", mistral: "mistral", gemma3_text: "gemma3", gemma3: "gemma3", phi3: "phi3",
};

export function readModelConfig(dir: string): ModelConfig {
  const path = join(dir, "config.json");
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`${path}: cannot read model config (${(e as Error).message})`);
  }
  return parseModelConfig(raw, dir, path);
}

export function parseModelConfig(rawIn: Record<string, unknown>, dir: string, path = join(dir, "config.json")): ModelConfig {
  // multimodal gemma3 keeps the language model under text_config
  const raw = (rawIn.model_type === "gemma3" && rawIn.text_config ? { ...(rawIn.text_config as object), model_type: "gemma3_text" } : rawIn) as Record<string, unknown>;
  const mt = raw.model_type;
  if (typeof mt !== "string") throw new Error(`${path}: field 'model_type' is missing`);
  const arch = ARCH_BY_TYPE[mt];
  if (!arch) throw new Error(`${path}: unknown architecture model_type '${mt}' (supported: ${Object.keys(ARCH_BY_TYPE).join(", ")})`);
  const num = (k: string, def?: number): number => {
    const v = raw[k];
    if (v === undefined || v === null) {
      if (def !== undefined) return def;
      throw new Error(`${path}: field '${k}' is missing`);
    }
    if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`${path}: field '${k}' must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const hidden = num("hidden_size");
  const heads = num("num_attention_heads");
  const kvHeads = num("num_key_value_heads", heads);
  const headDim = num("head_dim", hidden / heads);
  const layers = num("num_hidden_layers");
  const gemma = arch === "gemma3";
  const partial = num("partial_rotary_factor", (raw.rope_parameters as Record<string, number> | undefined)?.partial_rotary_factor ?? 1);
  const rotaryDim = Math.floor(headDim * partial);
  const maxPositions = num("max_position_embeddings", 4096);

  // layer types (gemma3): explicit list, or the sliding pattern (every Nth layer full)
  let layerTypes: string[] | undefined = raw.layer_types as string[] | undefined;
  if (gemma && !layerTypes) {
    const pattern = num("sliding_window_pattern", num("_sliding_window_pattern", 6));
    layerTypes = Array.from({ length: layers }, (_, i) => ((i + 1) % pattern === 0 ? "full_attention" : "sliding_attention"));
  }
  const sliding = raw.sliding_window == null ? 0 : num("sliding_window");
  const windowByLayer = Array.from({ length: layers }, (_, i) => {
    if (layerTypes) return layerTypes[i] === "sliding_attention" ? sliding : 0;
    if (arch === "mistral" || arch === "phi3") return sliding;
    if ((arch === "qwen2" || arch === "qwen3") && raw.use_sliding_window) return i >= num("max_window_layers", layers) ? sliding : 0;
    return 0;
  });

  const ropeByLayer = Array.from({ length: layers }, (_, i) => ropeFor(raw, path, layerTypes?.[i], gemma));
  const eos = raw.eos_token_id;
  const eosTokenIds = Array.isArray(eos) ? (eos as number[]) : typeof eos === "number" ? [eos] : [];
  const act = String(raw.hidden_activation ?? raw.hidden_act ?? "silu");
  if (!["silu", "gelu_pytorch_tanh", "gelu_tanh"].includes(act)) throw new Error(`${path}: field 'hidden_act' = '${act}' is not supported (silu, gelu_pytorch_tanh)`);

  return {
    arch,
    dir,
    vocabSize: num("vocab_size"),
    hidden,
    intermediate: num("intermediate_size"),
    layers,
    heads,
    kvHeads,
    headDim,
    eps: num("rms_norm_eps", 1e-6),
    maxPositions,
    rotaryDim,
    ropeByLayer,
    windowByLayer,
    attentionBias: arch === "qwen2" ? true : Boolean(raw.attention_bias),
    attentionOutBias: arch === "qwen2" ? false : Boolean(raw.attention_bias),
    mlpBias: Boolean(raw.mlp_bias),
    qkNorm: arch === "qwen3" || gemma,
    normOffset: gemma ? 1 : 0,
    sandwichNorms: gemma,
    embedScale: gemma ? Math.fround(Math.sqrt(hidden)) : 1,
    attnScale: gemma ? num("query_pre_attn_scalar", headDim) ** -0.5 : headDim ** -0.5,
    attnSoftcap: raw.attn_logit_softcapping == null ? 0 : num("attn_logit_softcapping"),
    finalSoftcap: raw.final_logit_softcapping == null ? 0 : num("final_logit_softcapping"),
    act: act === "silu" ? "silu" : "gelu_tanh",
    fused: arch === "phi3",
    tieEmbeddings: raw.tie_word_embeddings === undefined ? gemma : Boolean(raw.tie_word_embeddings),
    bosTokenId: typeof raw.bos_token_id === "number" ? raw.bos_token_id : null,
    eosTokenIds,
    padTokenId: typeof raw.pad_token_id === "number" ? raw.pad_token_id : null,
    raw,
  };
}

function ropeFor(raw: Record<string, unknown>, path: string, layerType: string | undefined, gemma: boolean): RopeParams {
  let p: Record<string, unknown> | undefined;
  const rp = raw.rope_parameters as Record<string, unknown> | undefined;
  if (rp && layerType && typeof rp[layerType] === "object") p = rp[layerType] as Record<string, unknown>;
  else if (rp && (rp.rope_type || rp.rope_theta)) p = rp;
  if (!p) {
    // older form: rope_theta + rope_scaling (+ gemma3's rope_local_base_freq for sliding layers, unscaled)
    const scaling = (raw.rope_scaling ?? {}) as Record<string, unknown>;
    if (gemma && layerType === "sliding_attention") p = { rope_type: "default", rope_theta: raw.rope_local_base_freq ?? 10000 };
    else p = { ...scaling, rope_type: scaling.rope_type ?? scaling.type ?? "default", rope_theta: raw.rope_theta ?? 10000 };
  }
  const type = String(p.rope_type ?? p.type ?? "default") as RopeParams["type"];
  if (!["default", "linear", "dynamic", "yarn", "llama3", "longrope"].includes(type))
    throw new Error(`${path}: rope type '${type}' is not supported`);
  const theta = Number(p.rope_theta ?? raw.rope_theta ?? 10000);
  const f = (k: string) => (p![k] == null ? undefined : Number(p![k]));
  const orig = f("original_max_position_embeddings") ?? (raw.original_max_position_embeddings as number | undefined);
  if (type === "llama3" && (f("factor") === undefined || f("low_freq_factor") === undefined || f("high_freq_factor") === undefined || orig === undefined))
    throw new Error(`${path}: llama3 rope scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings`);
  if ((type === "linear" || type === "dynamic" || type === "yarn") && f("factor") === undefined)
    throw new Error(`${path}: ${type} rope scaling needs field 'factor'`);
  return {
    type, theta, factor: f("factor"), lowFreqFactor: f("low_freq_factor"), highFreqFactor: f("high_freq_factor"),
    originalMaxPositions: orig, betaFast: f("beta_fast"), betaSlow: f("beta_slow"), attentionFactor: f("attention_factor"),
    mscale: f("mscale"), mscaleAllDim: f("mscale_all_dim"), truncate: p.truncate === undefined ? true : Boolean(p.truncate),
    shortFactor: p.short_factor as number[] | undefined, longFactor: p.long_factor as number[] | undefined,
  };
}
