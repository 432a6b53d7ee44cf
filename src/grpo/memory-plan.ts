// Will it fit: a GRPO step's peak device memory predicted from the model's config.json and the training config
// alone, before any weight is read (`aha train CONFIG --dry-run`), by category: weights, LoRA and optimiser,
// activations of a training micro-batch, the rollout's KV cache, and the fused loss's chunks of logits. A step's peak
// is the larger of its two phases: the rollout (weights, adapter, KV cache, a prefill's activations) and the training
// micro-batch (weights, adapter and gradients, checkpointed layer inputs, one layer's recompute and backward, the loss).
// Is: byte counts of the buffers the engine allocates (kvcache.ts, flat.ts, quant4.ts, the model's layer block,
// the CUDA allocator's rounding), checked against the CUDA emulator's allocator without arithmetic on real shapes
// (test/memory-plan.test.ts, bench/memory-table.ts). Is not: a measurement; transient scratch below a few MiB and the
// CUDA context itself (about 0.5 GiB, outside the allocator) are left out, so fitting keeps headroom (fits()).
import type { ModelConfig } from "../models/config.ts";
import type { Quant4Settings } from "../models/bnb4.ts";
import { matchesTarget } from "../models/lora.ts";

export interface PlanInput {
  cfg: ModelConfig;
  device: "cpu" | "cuda";
  /** LoRA rank and targets; null: full fine-tuning (every weight f32 and trainable) */
  lora: { r: number; targetModules: string[] | string } | null;
  /** 4-bit base weights, or null */
  fourBit: Quant4Settings | null;
  gradientCheckpointing: boolean | number | "offload";
  /** completions per training micro-batch (per_device_train_batch_size) */
  micro: number;
  /** prompt and completion tokens (max_prompt_length, max_completion_length) */
  P: number;
  T: number;
  /** prompts per generation round and completions per prompt */
  prompts: number;
  generations: number;
  /** KV-cache bytes generation may hold at once (generation_memory_budget) */
  genBudget: number;
  /** a frozen f32 copy of the weights for the KL reference (full fine-tuning with beta > 0) */
  refCopy?: boolean;
}

export interface MemoryPlan {
  weights: number;
  /** LoRA (or trained) parameters, their gradients and AdamW's moments */
  loraOptimizer: number;
  /** the training micro-batch's activations (layer inputs kept for checkpointing, one layer's recompute and backward) */
  activations: number;
  /** the rollout's KV caches at their largest (the prefilled prompts' and their completions', during the fan-out) */
  kvCache: number;
  /** the fused log-prob kernels' chunks of logits */
  lossChunks: number;
  /** the rollout phase's peak and the training phase's */
  rollout: number;
  train: number;
  peak: number;
  /** sequences per generation chunk (a long context's group may be split) */
  genSequences: number;
}

const MiB = 2 ** 20;
/** What the CUDA caching allocator hands out for n bytes (native/cuda/runtime.cu round_size). */
const block = (n: number) => (n < MiB ? Math.ceil(n / 512) * 512 : Math.ceil(n / MiB) * MiB);

/** A linear module of the model: name suffix, in and out features. */
function linearModules(cfg: ModelConfig): [string, number, number][] {
  const { hidden: C, headDim: D, heads: Hq, kvHeads: Hkv, intermediate: I } = cfg;
  const attn: [string, number, number][] = cfg.fused ? [["self_attn.qkv_proj", C, (Hq + 2 * Hkv) * D]]
    : [["self_attn.q_proj", C, Hq * D], ["self_attn.k_proj", C, Hkv * D], ["self_attn.v_proj", C, Hkv * D]];
  const mlp: [string, number, number][] = cfg.fused ? [["mlp.gate_up_proj", C, 2 * I]] : [["mlp.gate_proj", C, I], ["mlp.up_proj", C, I]];
  return [...attn, ["self_attn.o_proj", Hq * D, C], ...mlp, ["mlp.down_proj", I, C]];
}

/** Bytes of one 4-bit weight of n values (quant4.ts: packed codes, absmax, code table, double quantisation). */
export function q4Bytes(n: number, doubleQuant: boolean): number {
  const nb = Math.ceil(n / 64);
  return block(Math.ceil(n / 2)) + block(nb * (doubleQuant ? 1 : 4)) + block(64) + (doubleQuant ? block(Math.ceil(nb / 256) * 4) + block(1024) : 0);
}

/** The trainable parameter count of a LoRA config on this model. */
export function loraParams(cfg: ModelConfig, r: number, targets: string[] | string): number {
  let n = 0;
  for (let l = 0; l < cfg.layers; l++)
    for (const [m, inF, outF] of linearModules(cfg)) if (matchesTarget(`model.layers.${l}.${m}`, targets)) n += r * (inF + outF);
  return n;
}

/** The model's parameter count (tied embeddings once). */
export function modelParams(cfg: ModelConfig): number {
  const { hidden: C, vocabSize: V, layers: L } = cfg;
  const lin = linearModules(cfg).reduce((a, [, i, o]) => a + i * o, 0);
  return V * C * (cfg.tieEmbeddings ? 1 : 2) + L * (lin + (cfg.sandwichNorms ? 4 : 2) * C) + C;
}

export function planMemory(x: PlanInput): MemoryPlan {
  const { cfg } = x, cuda = x.device === "cuda";
  const { hidden: C, headDim: D, heads: Hq, kvHeads: Hkv, intermediate: I, vocabSize: V, layers: L } = cfg;
  const stored = String(cfg.raw.torch_dtype ?? cfg.raw.dtype ?? "float32");
  const full = x.lora === null;
  const wb = full || stored === "float32" ? 4 : 2; // bytes of a stored weight value as loaded
  // GEMM inputs rounded to 16 bits (CUDA's default mode with 16-bit or 4-bit weights): the activations' 16-bit copies
  const low = cuda && (wb === 2 || !!x.fourBit) && !full;
  const kvb = low ? 2 : 4;

  // weights: embeddings (and an untied lm head), norms and biases f32, the linear layers 16-bit, 4-bit or f32
  let weights = block(V * C * wb) * (cfg.tieEmbeddings ? 1 : 2) + block(C * 4);
  const mods = linearModules(cfg);
  const perLayerNorms = (cfg.sandwichNorms ? 4 : 2) * block(C * 4) + (cfg.qkNorm ? 2 * block(D * 4) : 0);
  const biases = (cfg.attentionBias ? (cfg.fused ? (Hq + 2 * Hkv) * D : (Hq + 2 * Hkv) * D) : 0) + (cfg.attentionOutBias ? C : 0) + (cfg.mlpBias ? 2 * I + C : 0);
  const linBytes = x.fourBit ? mods.reduce((a, [, i, o]) => a + q4Bytes(i * o, x.fourBit!.doubleQuant), 0)
    : cfg.fused ? mods.reduce((a, [, i, o]) => a + block(i * o * wb), 0)
    : block((C * (Hq + 2 * Hkv) * D + 2 * 128) * wb) + block(Hq * D * C * wb) + block((2 * C * I + 128) * wb) + block(I * C * wb); // (q/k/v and gate/up packed)
  weights += L * (perLayerNorms + linBytes + block(biases * 4));
  if (x.refCopy) weights *= 2;

  // LoRA: parameters and AdamW's two moments, f32 each (one flat buffer apiece), and in a train step their gradients;
  // full fine-tuning: every weight
  const trainable = full ? modelParams(cfg) : loraParams(cfg, x.lora!.r, x.lora!.targetModules);
  const param = block(trainable * 4), loraOptimizer = 4 * param;

  // the rollout: per sequence, the KV cache of P + T positions, in chunks as generate() makes them: the prompts' cache
  // is prefilled (with the prefill's activations), then fanned out to the completions' (both exist for a moment)
  const perSeq = 2 * L * Hkv * D * kvb * (x.P + x.T), cacheOf = (seqs: number) => 2 * L * block((seqs * perSeq) / (2 * L));
  let promptSeqs: number, genSequences: number;
  if (perSeq * x.generations > x.genBudget && x.generations > 1) { // one prompt's completions in groups
    promptSeqs = 1;
    genSequences = Math.min(x.generations, Math.max(1, Math.floor(x.genBudget / perSeq)));
  } else {
    promptSeqs = Math.min(x.prompts, Math.max(1, Math.floor(x.genBudget / (perSeq * x.generations))));
    genSequences = promptSeqs * x.generations;
  }
  const kvCache = cacheOf(promptSeqs) + cacheOf(genSequences);
  // a prefill through the fused layers, at its widest (the MLP: the residual stream, the norm and its 16-bit copy,
  // gate/up, the activation and its copy), then the last rows' logits
  const rows = promptSeqs * x.P;
  const prefill = rows * 4 * (2 * C + 3 * I) + (low ? rows * 2 * (C + I) : 0) + promptSeqs * V * 4;

  // a training micro-batch of N positions, Nc of them completion tokens (the loss's rows)
  const N = x.micro * (x.P + x.T), Nc = x.micro * x.T;
  const row = N * C * 4;
  // the layer inputs kept between forward and backward (offload: the one on the device, the one being brought back and
  // the previous layer's copy in flight); layers not checkpointed keep their whole forward
  const layerForward = 6 * C + 3 * Hq * D + 3 * Hkv * D + 3 * I; // floats per position a layer's forward keeps for its backward
  const gc = x.gradientCheckpointing;
  const ckptLayers = gc === true || gc === "offload" ? L : gc === false ? 0 : Math.min(L, gc);
  const kept = gc === "offload" ? 3 * row : ckptLayers * row + (L - ckptLayers) * N * 4 * layerForward;
  // the final norm's output and the completion rows gathered from it, kept for the loss's backward
  const head = row + Nc * C * 4;
  // a layer's backward at its widest (gate/up's): its forward, the incoming gradient and the input's, gate's and up's
  // gradients, and (GEMMs in 16 bits) the gradient rounded for the weights' product
  const layer = N * 4 * (layerForward + 2 * C + 2 * I) + (low ? N * 2 * I : 0);
  // the loss at its widest (its backward): a chunk of logits and its 16-bit copy, the completion rows' gradient and
  // its scatter into [N, C]
  const R = cuda ? Math.min(Math.floor(2 ** 27 / V), 65535, Nc) : 0; // (the CPU's chunks of 32 rows live outside the allocator)
  const lossChunks = R * V * 4 + R * V * (wb === 2 && low ? 2 : 0);
  const activations = kept + head + Math.max(layer, Nc * C * 4 + row + lossChunks) - lossChunks;

  const fixed = weights + 3 * param;
  const rollout = fixed + Math.max(cacheOf(promptSeqs) + prefill, kvCache);
  const train = fixed + param + activations + lossChunks;
  return { weights, loraOptimizer, activations, kvCache, lossChunks, rollout, train, peak: Math.max(rollout, train), genSequences };
}

/** The CUDA context and allocator slack a card needs beyond the allocated peak. */
export const HEADROOM = { factor: 1.1, bytes: 0.5 * 2 ** 30 };
/** Whether a predicted allocated peak fits `budget` bytes of device memory, with the headroom. */
export function fits(peak: number, budget: number): boolean {
  return peak * HEADROOM.factor + HEADROOM.bytes <= budget;
}

/** The largest micro-batch (completions per micro-batch, up to `limit`) whose step fits the budget; 0 if none. */
export function largestMicroBatch(x: PlanInput, budget: number, limit = 256): number {
  let best = 0;
  for (let m = 1; m <= limit; m++) {
    if (!fits(planMemory({ ...x, micro: m }).peak, budget)) break;
    best = m;
  }
  return best;
}
