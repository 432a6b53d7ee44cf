// Test helper: synthetic llama-architecture HF folders wider than the fixtures (so K-quant blocks of 256 apply), with
// the fixture tokenizer, and a lazy random WeightSet for large exports. Not a test file itself.
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeSafetensors, type StWriteTensor } from "../src/models/safetensors.ts";
import type { WeightSet } from "../src/export/index.ts";

export interface SynthShape { hidden: number; inter: number; layers: number; heads: number; kvHeads: number; vocab: number }

export function synthNames(s: SynthShape): Map<string, number[]> {
  const hd = s.hidden / s.heads;
  const m = new Map<string, number[]>([["model.embed_tokens.weight", [s.vocab, s.hidden]]]);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    m.set(p + "input_layernorm.weight", [s.hidden]);
    m.set(p + "self_attn.q_proj.weight", [s.heads * hd, s.hidden]);
    m.set(p + "self_attn.k_proj.weight", [s.kvHeads * hd, s.hidden]);
    m.set(p + "self_attn.v_proj.weight", [s.kvHeads * hd, s.hidden]);
    m.set(p + "self_attn.o_proj.weight", [s.hidden, s.heads * hd]);
    m.set(p + "post_attention_layernorm.weight", [s.hidden]);
    m.set(p + "mlp.gate_proj.weight", [s.inter, s.hidden]);
    m.set(p + "mlp.up_proj.weight", [s.inter, s.hidden]);
    m.set(p + "mlp.down_proj.weight", [s.hidden, s.inter]);
  }
  m.set("model.norm.weight", [s.hidden]);
  m.set("lm_head.weight", [s.vocab, s.hidden]);
  return m;
}

function rand(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 2 ** 32 - 0.5; };
}

export function synthTensor(name: string, shape: number[], seed: number): Float32Array {
  const r = rand(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  if (shape.length === 1) { for (let i = 0; i < n; i++) out[i] = 1 + 0.2 * r(); return out; }
  const std = 1 / Math.sqrt(shape[1]);
  const sc = name.includes("embed") ? 1 : std * Math.sqrt(12);
  for (let i = 0; i < n; i++) out[i] = r() * sc;
  return out;
}

export function synthConfig(s: SynthShape): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: s.hidden, intermediate_size: s.inter,
    num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, head_dim: s.hidden / s.heads,
    max_position_embeddings: 512, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, vocab_size: s.vocab,
    bos_token_id: 1, eos_token_id: 2, dtype: "float32",
  };
}

/** Write config + tokenizer (copied from `tokFrom`) and, unless lazy, model.safetensors with random weights. */
export function makeSynthModel(dir: string, s: SynthShape, tokFrom: string, writeWeights = true): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(synthConfig(s), null, 2));
  for (const f of ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]) copyFileSync(join(tokFrom, f), join(dir, f));
  if (!writeWeights) return;
  const t: Record<string, StWriteTensor> = {};
  let seed = 1;
  for (const [n, shape] of synthNames(s)) t[n] = { dtype: "F32", shape, data: synthTensor(n, shape, seed++) };
  writeSafetensors(join(dir, "model.safetensors"), t);
}

/** Random weights generated on demand (nothing held in memory). */
export function lazySynthWeights(s: SynthShape): WeightSet {
  const m = synthNames(s);
  const names = [...m.keys()];
  return { names, shape: (n) => m.get(n)!, dtype: () => "F32", get: (n) => synthTensor(n, m.get(n)!, names.indexOf(n) + 1) };
}
