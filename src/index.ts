// The typed API of aha: what `import … from "aha"` gives.
export { GRPOTrainer, type TrainerOptions } from "./grpo/trainer.ts";
export { validateConfig, loadConfigFile, type GRPOConfig, type GRPOConfigInput } from "./grpo/config.ts";
export { sft } from "./grpo/sft.ts";
export { evaluate, type EvalResult } from "./grpo/eval.ts";
export { CausalLM } from "./models/model.ts";
export { LoraAdapter, type LoraConfig } from "./models/lora.ts";
export { KVCache } from "./models/kvcache.ts";
export { generate, type GenerateOptions, type Completion } from "./generate/generate.ts";
export { generateText, type TextGenerateOptions } from "./text/generate-text.ts";
export { loadTokenizer, Tokenizer, type Message } from "./tokenize/index.ts";
export { loadDataset, applyPreset, prepareGsm8k, type Row } from "./data/index.ts";
export { resolveHubPath, hubCacheDirs } from "./hub/cache.ts";
export * as rewards from "./rewards/index.ts";
export type { NamedReward, RewardFunc, RewardArgs } from "./rewards/index.ts";
export { exportModel, type ExportOptions } from "./export/index.ts";
export * as engine from "./engine/index.ts";
