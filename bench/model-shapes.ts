// config.json of real model shapes (values as their Hub configs give them), for memory planning and benchmarks
// without their weights: bench/memory-table.ts, `aha train --dry-run` tests. `tiny` is for smoke runs.
export const MODEL_SHAPES: Record<string, Record<string, unknown>> = {
  "qwen2.5-1.5b": {
    architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28,
    num_attention_heads: 12, num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000.0,
    tie_word_embeddings: true, hidden_act: "silu", torch_dtype: "bfloat16", use_sliding_window: false, bos_token_id: 151643, eos_token_id: 151645,
  },
  "llama-3.1-8b": {
    architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
    num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, vocab_size: 128256, max_position_embeddings: 131072, rms_norm_eps: 1e-5,
    rope_theta: 500000.0, rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
    tie_word_embeddings: false, hidden_act: "silu", torch_dtype: "bfloat16", attention_bias: false, mlp_bias: false, bos_token_id: 128000, eos_token_id: 128001,
  },
  tiny: {
    model_type: "llama", hidden_size: 64, intermediate_size: 128, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16,
    vocab_size: 512, max_position_embeddings: 4096, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, torch_dtype: "bfloat16",
  },
};
