// Writes a random-weight Hugging Face folder of a given llama-family shape (for benchmarks: no weights can be
// downloaded here). Shapes of real models are listed in SHAPES.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { f32ToBf16, writeSafetensors, type StWriteTensor } from "../src/models/safetensors.ts";

export interface Shape {
  model_type: "llama" | "qwen2";
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  intermediate_size: number;
  vocab_size: number;
  tie_word_embeddings: boolean;
}

export const SHAPES: Record<string, Shape> = {
  "small-llama": { model_type: "llama", hidden_size: 512, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 1408, vocab_size: 8192, tie_word_embeddings: true },
  "qwen2.5-0.5b": { model_type: "qwen2", hidden_size: 896, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, intermediate_size: 4864, vocab_size: 151936, tie_word_embeddings: true },
};

/** dtype: how the tensors are stored ("BF16", as the real checkpoints are; default "F32") */
export function writeRandomModel(dir: string, s: Shape, seed = 1, dtype: "F32" | "BF16" = "F32"): void {
  mkdirSync(dir, { recursive: true });
  const D = s.hidden_size / s.num_attention_heads;
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...s, head_dim: D, rms_norm_eps: 1e-6, rope_theta: 1e6, max_position_embeddings: 4096, bos_token_id: 1, eos_token_id: 2 }, null, 2));
  let x = seed >>> 0;
  const rand = () => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return x / 2 ** 32 - 0.5; };
  const T: Record<string, StWriteTensor> = {};
  const add = (name: string, shape: number[], std: number, constant?: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = constant ?? rand() * std * 3.46;
    T[name] = dtype === "F32" ? { dtype, shape, data } : { dtype, shape, data: f32ToBf16(data) };
  };
  const C = s.hidden_size, I = s.intermediate_size, Hq = s.num_attention_heads, Hkv = s.num_key_value_heads;
  add("model.embed_tokens.weight", [s.vocab_size, C], 0.02);
  add("model.norm.weight", [C], 0, 1);
  if (!s.tie_word_embeddings) add("lm_head.weight", [s.vocab_size, C], 0.02);
  for (let l = 0; l < s.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [C], 0, 1);
    add(`${p}.post_attention_layernorm.weight`, [C], 0, 1);
    add(`${p}.self_attn.q_proj.weight`, [Hq * D, C], 0.02);
    add(`${p}.self_attn.k_proj.weight`, [Hkv * D, C], 0.02);
    add(`${p}.self_attn.v_proj.weight`, [Hkv * D, C], 0.02);
    if (s.model_type === "qwen2") for (const [n, o] of [["q", Hq * D], ["k", Hkv * D], ["v", Hkv * D]] as const) add(`${p}.self_attn.${n}_proj.bias`, [o], 0.02);
    add(`${p}.self_attn.o_proj.weight`, [C, Hq * D], 0.02);
    add(`${p}.mlp.gate_proj.weight`, [I, C], 0.02);
    add(`${p}.mlp.up_proj.weight`, [I, C], 0.02);
    add(`${p}.mlp.down_proj.weight`, [C, I], 0.02);
  }
  writeSafetensors(join(dir, "model.safetensors"), T);
}
