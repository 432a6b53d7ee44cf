// `aha train CONFIG --dry-run [--gpu-memory SIZE | --gpu NAME]`: will it fit. Prints the predicted peak device
// memory of a GRPO step by category (grpo/memory-plan.ts) from the config and the model's config.json alone, before
// any weight is read; with a memory budget (a size, a card's name, or the CUDA device found here) the largest
// micro-batch that fits it, and a warning when the config does not fit.
import { join } from "node:path";
import { loadConfigFile, type GRPOConfig } from "../grpo/config.ts";
import { quantizationOf } from "../grpo/trainer.ts";
import { readModelConfig } from "../models/config.ts";
import { storedQuant4 } from "../models/bnb4.ts";
import { fits, largestMicroBatch, loraParams, modelParams, planMemory, HEADROOM, type PlanInput } from "../grpo/memory-plan.ts";
import { gpuByName, parseMemorySize } from "../engine/gpus.ts";
import { cudaInfo } from "../engine/cuda.ts";

export interface DryRunArgs {
  device?: string;
  gpuMemory?: string;
  gpu?: string;
}

/** The plan's input for a config (its model's config.json read; nothing else). */
export function planInputOf(cfg: GRPOConfig): PlanInput {
  const model = readModelConfig(cfg.model);
  const fourBit = storedQuant4(model.raw, join(cfg.model, "config.json")) ?? quantizationOf(cfg);
  return {
    cfg: model, device: cfg.device, lora: cfg.fullFinetune ? null : { r: cfg.lora.r, targetModules: cfg.lora.targetModules }, fourBit,
    gradientCheckpointing: cfg.gradientCheckpointing, micro: cfg.perDeviceTrainBatchSize, P: cfg.maxPromptLength, T: cfg.maxCompletionLength,
    prompts: (cfg.perDeviceTrainBatchSize * cfg.gradientAccumulationSteps) / cfg.numGenerations, generations: cfg.numGenerations,
    genBudget: cfg.generationMemoryBudget, refCopy: cfg.fullFinetune && cfg.beta > 0,
  };
}

export function runDryRun(configPath: string, a: DryRunArgs, out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): void {
  const cfg = loadConfigFile(configPath, a.device ? { device: a.device } : {});
  const x = planInputOf(cfg), p = planMemory(x), m = x.cfg;
  const GiB = 2 ** 30, g = (b: number) => (b / GiB).toFixed(2).padStart(7);
  let budget: number | null = null, budgetName = "";
  if (a.gpuMemory) { budget = parseMemorySize(a.gpuMemory); budgetName = `--gpu-memory ${a.gpuMemory}`; }
  else if (a.gpu) { const card = gpuByName(a.gpu); budget = card.memory; budgetName = card.name; }
  else if (cfg.device === "cuda" && cudaInfo().ok && cudaInfo().totalMemory) { budget = cudaInfo().totalMemory!; budgetName = `this machine's ${cudaInfo().name}`; }
  const w = (s: string) => out.write(s + "\n");
  const q = x.fourBit ? `4-bit base (${x.fourBit.type}${x.fourBit.doubleQuant ? ", double quant" : ""})` : `${String(m.raw.torch_dtype ?? m.raw.dtype ?? "float32")} base`;
  const trained = x.lora ? `LoRA r=${x.lora.r} on ${JSON.stringify(x.lora.targetModules)} (${(loraParams(m, x.lora.r, x.lora.targetModules) / 1e6).toFixed(1)}M parameters)` : "full fine-tuning";
  w(`aha train ${configPath} --dry-run: predicted from the configs alone (no weights read)`);
  w(`model: ${cfg.model} (${m.arch}, ${(modelParams(m) / 1e9).toFixed(2)}B parameters, ${m.layers} layers); ${q}; ${trained}`);
  w(`step: ${x.prompts} prompt(s) × ${x.generations} completions of ${x.P} + ${x.T} tokens, micro-batches of ${x.micro}, gradient checkpointing ${JSON.stringify(x.gradientCheckpointing)}, on ${cfg.device}`);
  w("predicted peak device memory by category (GiB):");
  w(`  weights            ${g(p.weights)}`);
  w(`  LoRA + optimizer   ${g(p.loraOptimizer)}   (parameters, gradients, AdamW moments)`);
  w(`  activations        ${g(p.activations)}   (a training micro-batch of ${x.micro} × ${x.P + x.T} tokens)`);
  w(`  KV cache           ${g(p.kvCache)}   (the rollout, ${p.genSequences} sequences at a time)`);
  w(`  loss chunks        ${g(p.lossChunks)}   (the fused log-probs' logits)`);
  w(`  peak               ${g(p.peak)}   (rollout ${(p.rollout / GiB).toFixed(2)}, train step ${(p.train / GiB).toFixed(2)})`);
  if (budget === null) {
    w("(give --gpu-memory SIZE or --gpu NAME for the largest micro-batch that fits a card)");
    return;
  }
  const need = p.peak * HEADROOM.factor + HEADROOM.bytes;
  w(`budget: ${(budget / GiB).toFixed(2)} GiB (${budgetName}); the peak needs about ${(need / GiB).toFixed(2)} GiB with the CUDA context and allocator slack`);
  const best = largestMicroBatch(x, budget);
  if (best > 0) w(`largest micro-batch that fits: per_device_train_batch_size ${best} (the config has ${x.micro})`);
  if (!fits(p.peak, budget)) {
    const hints = [!x.fourBit && x.lora ? "load_in_4bit: true" : "", x.gradientCheckpointing !== "offload" ? "gradient_checkpointing: offload" : "",
      best > 0 && best < x.micro ? `per_device_train_batch_size: ${best}` : "", p.rollout > p.train ? "a smaller generation_memory_budget" : ""].filter(Boolean);
    err.write(`warning: this config does not fit ${(budget / GiB).toFixed(2)} GiB (${budgetName}): about ${(need / GiB).toFixed(2)} GiB needed` +
      (best === 0 ? ", and no micro-batch fits" : "") + (hints.length ? `; try ${hints.join(", ")}` : "") + "\n");
  }
}
