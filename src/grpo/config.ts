// The GRPO training config: TRL's GRPOConfig option names (snake_case in YAML, camelCase in the TS API), each
// documented once here with its default and trade-off, validated with zod so that every bad field is reported
// at once with what to change (an unknown name with the nearest known one). Defaults follow TRL's current GRPOConfig
// unless noted.
// Paths: in a config file, relative paths (model, adapter, output_dir, dataset.path, chat_template files, reward
// files) are taken from the config file's folder; on the command line (--output-dir, --adapter, …) and in the TS API,
// from the working directory. A model or dataset that is no local path may be a Hugging Face hub id in the local hub
// cache (hub/cache.ts).
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { looksLikeFile } from "../modules/user-module.ts";
import { isHubId } from "../hub/cache.ts";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

const lora = z.object({
  /** LoRA rank. Higher = more capacity and memory. Default 16. */
  r: z.number().int().positive().default(16),
  /** Scale numerator: updates are scaled by alpha / r. Default 32. */
  loraAlpha: z.number().positive().default(32),
  /** Dropout on the LoRA input path while training (masks drawn on the device; graphs work with it). Default 0. */
  loraDropout: z.number().min(0).lt(1).default(0),
  /** Modules to adapt: names (q_proj, …), a regex string, or "all-linear" (default). */
  targetModules: z.union([z.array(z.string()).nonempty(), z.string()]).default("all-linear"),
  /** rsLoRA: scale alpha / √r, steadier at high ranks. Default false. */
  useRslora: z.boolean().default(false),
}).strict();

const dataset = z.object({
  /** A JSONL/JSON/CSV/Parquet file, a Hugging Face dataset folder, or a hub id ("openai/gsm8k") in the local hub cache. */
  path: z.string().min(1),
  /** The dataset's configuration (subset), as `load_dataset(path, name)`: "main" for openai/gsm8k. Default none. */
  name: z.string().optional(),
  /** Where `path` is a hub id: a ref (branch, tag) or commit hash of the cached snapshot. Default "main". */
  revision: z.string().optional(),
  /** Split to train on (default "train"). */
  split: z.string().default("train"),
  /** Split for `aha eval` (default "test"). */
  evalSplit: z.string().default("test"),
  /** Built-in preparation: "gsm8k" turns question/answer rows into prompt + numeric answer. */
  preset: z.string().optional(),
  /** Use only the first N rows (default all). */
  limit: z.number().int().positive().optional(),
  /** Use only the first N rows of the eval split for evaluation during training (default all; TRL evaluates all). */
  evalLimit: z.number().int().positive().optional(),
}).strict();

export const GRPOConfigSchema = z.object({
  /** A Hugging Face model folder, or a hub id ("Qwen/Qwen2.5-0.5B-Instruct") found in the local hub cache (never
   *  downloaded). Required. */
  model: z.string().min(1),
  /** Where `model` is a hub id: a ref (branch, tag) or commit hash of the cached snapshot. Default "main". */
  revision: z.string().optional(),
  /** "cpu" (default) or "cuda". */
  device: z.enum(["cpu", "cuda"]).default("cpu"),
  /** LoRA settings; set `fullFinetune: true` instead to train every weight (f32, much more memory). */
  lora: lora.default(lora.parse({})),
  /**
   * Recompute each layer's activations in the backward pass: far less memory, about one more forward of time. Default
   * true. A number checkpoints that many of the first layers and keeps the others' activations (between the two).
   * "offload": every layer, and each layer's input waits in host memory (pinned, copied on a stream of its own while
   * the next layers compute) instead of on the GPU, which then holds one layer's input at a time beyond the current
   * one: the long-context setting (8B at 20K tokens: 10 GiB less), for the copies' PCIe traffic, mostly hidden.
   */
  gradientCheckpointing: z.union([z.boolean(), z.number().int().min(0), z.literal("offload")], { error: "true, false, or how many of the first layers to checkpoint (an integer ≥ 0), or \"offload\"" }).default(true),
  /**
   * QLoRA: the base model's linear layers in 4 bits (bitsandbytes' format, quantised at load): about 3.6× less weight
   * memory than bf16 for slightly less exact base weights. Embeddings, norms, biases and the lm head stay as stored.
   * Folders saved in 4-bit (e.g. unsloth/*-bnb-4bit) load as stored either way. Default false.
   */
  loadIn4bit: z.boolean().default(false),
  /** 4-bit codes: nf4 (QLoRA's normal-float levels; default) or fp4. */
  bnb4bitQuantType: z.enum(["nf4", "fp4"]).default("nf4"),
  /** Quantise the 4-bit blocks' scales too (double quantisation): 0.5 → 0.127 bits of scale per weight. Default true. */
  bnb4bitUseDoubleQuant: z.boolean().default(true),
  /** The type CUDA's 4-bit products compute in: bfloat16 (default), float16 (cards without bf16, e.g. T4) or float32. The CPU computes in f32. */
  bnb4bitComputeDtype: z.enum(["bfloat16", "float16", "float32"]).default("bfloat16"),
  /** Train all weights instead of a LoRA adapter. Default false. */
  fullFinetune: z.boolean().default(false),
  /** Start from an existing PEFT adapter folder. */
  adapter: z.string().optional(),
  dataset: dataset.optional(),
  /** System prompt prepended to every conversation. */
  systemPrompt: z.string().optional(),
  /**
   * Render prompts with a chat template: true / false (default: true when the tokenizer has one), or a template of
   * its own, given as Jinja text (it has `{{` or `{%`) or as the path of a .jinja file, used instead of the tokenizer's.
   */
  chatTemplate: z.union([z.boolean(), z.string().min(1)]).optional(),
  /** Extra variables for the chat template (TRL's chat_template_kwargs), e.g. Qwen3's `{enable_thinking: false}`; passed
   *  as written (YAML keys are not renamed). Default none. */
  chatTemplateKwargs: z.record(z.string(), z.unknown()).optional(),

  /** Peak learning rate. TRL default 1e-6 (for full fine-tuning); LoRA usually wants 1e-5 … 1e-4. */
  learningRate: z.number().positive().default(1e-6),
  /** constant, linear or cosine decay after warmup. Default linear (TRL). */
  lrSchedulerType: z.enum(["constant", "linear", "cosine", "constant_with_warmup"]).default("linear"),
  /** Fraction of steps spent warming up (used when warmupSteps is 0). Default 0. */
  warmupRatio: z.number().min(0).max(1).default(0),
  /** Warm-up steps (overrides warmupRatio). Default 0. */
  warmupSteps: z.number().int().min(0).default(0),
  /** AdamW decoupled weight decay. Default 0. */
  weightDecay: z.number().min(0).default(0),
  adamBeta1: z.number().min(0).lt(1).default(0.9),
  adamBeta2: z.number().min(0).lt(1).default(0.999),
  adamEpsilon: z.number().positive().default(1e-8),
  /** Gradient clipping by global norm (0 = off). Default 1.0. */
  maxGradNorm: z.number().min(0).default(1.0),

  /** Completions per micro-batch (TRL counts completions, not prompts). Default 8. */
  perDeviceTrainBatchSize: z.number().int().positive().default(8),
  /** Micro-batches per optimiser step. Prompts per step = batch × accumulation / numGenerations. Default 1. */
  gradientAccumulationSteps: z.number().int().positive().default(1),
  /** Completions sampled per prompt (the group). More = better advantage estimates, slower. Default 8. */
  numGenerations: z.number().int().min(2).default(8),
  /** Prompts longer than this are cut from the left. Default 512. */
  maxPromptLength: z.number().int().positive().default(512),
  /** New tokens per completion. Default 256. */
  maxCompletionLength: z.number().int().positive().default(256),
  /** Optimisation passes over each generated batch (>1 uses recorded old log-probs and clipping). Default 1. */
  numIterations: z.number().int().positive().default(1),

  /** KL coefficient against the base model (adapter off; under full fine-tuning a frozen copy of the starting weights,
   *  loaded again from `model`: twice the weights' memory). 0 skips the reference pass. Default 0. */
  beta: z.number().min(0).default(0),
  /** Lower clip range of the ratio. Default 0.2. */
  epsilon: z.number().positive().default(0.2),
  /** Upper clip range (DAPO's clip-higher); default = epsilon. */
  epsilonHigh: z.number().positive().optional(),
  /** Two-sided clipping: ratios above delta contribute no gradient (INTELLECT-2). Off by default. */
  delta: z.number().gt(1).optional(),
  /**
   * How per-token losses are formed and normalised (TRL's names and meanings; formulas in src/grpo/loss.ts):
   * - `dapo` (default): clipped ratio, normalised by the completion tokens of the whole optimiser step (DAPO). TRL
   *   counts the tokens of the generation batch instead: the same unless steps_per_generation differs from
   *   gradient_accumulation_steps, where TRL's step loss is scaled by their ratio (we keep the step's own count).
   * - `grpo`: each sequence's mean, then the mean over sequences (length-biased: prefers short right answers).
   * - `bnpo`: normalised by the tokens of each micro-batch. `dr_grpo`: by sequences × max_completion_length.
   * - `cispo` (MiniMax-M1 / ScaleRL): −sg(min(r, epsilon_high))·A·logp, a REINFORCE term with the importance weight
   *   capped and detached, normalised as dapo. The cap is epsilon_high itself, not 1 + epsilon_high: left unset it
   *   falls back to epsilon (0.2) and caps every weight at 0.2, as TRL does (the trainer warns); ScaleRL uses 5.0.
   * - `sapo` (Soft Adaptive Policy Optimization): the hard clip replaced by the gate σ(τ(r − 1))·4/τ, τ =
   *   sapo_temperature_pos for A > 0 else sapo_temperature_neg; normalised as grpo.
   * - `luspo` (Length-Unbiased Sequence Policy Optimization): GSPO with each sequence's loss weighted by its length;
   *   use importance_sampling_level: sequence (the trainer warns otherwise, as TRL). Differs from TRL on purpose: the
   *   sum runs over the completion tokens only, (1/B)·Σ_b Σ_t mask·per_token_loss. TRL takes mean(per_token_loss ·
   *   length) over the whole padded [B, T] once the per-token loss has a token axis (beta > 0, top_entropy_quantile <
   *   1, or token level), so the KL at padded positions enters the loss and pushes on pad tokens' log-probs, and an
   *   entropy mask also rescales each row by (kept tokens)/T. Without those the two are the same.
   */
  lossType: z.enum(["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo"]).default("dapo"),
  /**
   * "token" (default): one importance ratio per token. "sequence" (GSPO): one per sequence, the exp of the mean of its
   * token log-ratios (gradient through every token of it), steadier with sequence-level rewards. With bnpo, dr_grpo,
   * dapo or cispo the token sum then weights each sequence by its length (the trainer warns, as TRL); GSPO proper is
   * loss_type grpo.
   */
  importanceSamplingLevel: z.enum(["token", "sequence"]).default("token"),
  /** SAPO's gate temperature for tokens with positive advantage. Default 1.0. */
  sapoTemperaturePos: z.number().positive().default(1.0),
  /** SAPO's gate temperature for tokens with zero or negative advantage. Default 1.05. */
  sapoTemperatureNeg: z.number().positive().default(1.05),
  /**
   * ρ of "Beyond the 80/20 rule": only the tokens at or above the (1 − ρ) entropy quantile of each micro-batch's
   * completion tokens take policy loss (0.2 in the paper; 0 keeps only the highest; 1, the default, keeps all). The
   * entropies come from the same fused lm-head pass as the log-probs; the KL term is not masked (TRL).
   */
  topEntropyQuantile: z.number().min(0).max(1).default(1.0),
  /**
   * DeepSeek-V3.2's off-policy sequence masking: a completion with negative advantage whose mean log-ratio of sampling
   * to current policy, mean(old − logp), exceeds this drops out of the policy loss (not the KL). Only matters when the
   * policy has moved since sampling (num_iterations > 1, steps_per_generation > gradient_accumulation_steps). Off by
   * default; 0.5 is a typical value.
   */
  offPolicyMaskThreshold: z.number().min(0).optional(),
  /** Multiply the k3 KL by the importance ratio (DeepSeek-V3.2's unbiased KL under off-policy samples). Default false. */
  useBiasCorrectionKl: z.boolean().default(false),
  /**
   * Advantage scaling: by group std (default), batch std (Lite PPO), none (Dr. GRPO), or `mean`: (r − mean)/mean of
   * the group (MaxRL; meant for binary rewards, as its paper says; we divide by |mean| + 1e-4 so that a negative group
   * mean, which binary rewards never give, cannot flip the advantages' signs). Not a TRL value: its MaxRL pull request
   * was not merged. As in TRL, true means "group" and false "none".
   */
  scaleRewards: z.union([z.enum(["group", "batch", "none", "mean"]), z.boolean()]).default("group").transform((v) => (v === true ? "group" : v === false ? "none" : v)),
  /**
   * How several reward functions make one advantage. `sum_then_normalize` (default): the weighted sum, then
   * scale_rewards. `normalize_then_sum` (GDPO): each function normalised within its group ((r − mean)/(std + 1e-4)),
   * the weighted sum of those, then normalised over the batch; scale_rewards is not used.
   */
  multiObjectiveAggregation: z.enum(["sum_then_normalize", "normalize_then_sum"]).default("sum_then_normalize"),
  /** Truncated completions (no EOS) get no loss. Default false. */
  maskTruncatedCompletions: z.boolean().default(false),

  /**
   * DAPO's dynamic sampling: groups whose rewards have no spread (every completion scored the same: advantage 0, no
   * learning signal) are dropped and more prompts are generated until the generation batch is full of groups with
   * spread. Logged: dynamic_sampling/groups_dropped, dynamic_sampling/extra_rounds, frac_reward_zero_std (after
   * filling: 0 unless the rounds ran out). Default false.
   */
  dynamicSampling: z.boolean().default(false),
  /**
   * Extra generation rounds dynamic sampling may take per generation batch. When they run out the run says so and
   * trains on what it has: the groups with spread, topped up with zero-spread ones (which carry no policy gradient)
   * so the batch keeps its size. Default 10.
   */
  maxResampleRounds: z.number().int().min(0).default(10),
  /**
   * Micro-batches each generation round feeds (TRL). Default gradient_accumulation_steps: one generation per optimiser
   * step. Larger: one bigger generation batch (better batched decoding) is split over several optimiser steps, the
   * later ones off-policy (old log-probs are then recorded and the ratio clips). Exclusive with generation_batch_size.
   */
  stepsPerGeneration: z.number().int().positive().optional(),
  /**
   * Completions per generation round: per_device_train_batch_size × steps_per_generation (TRL). Must be a multiple of
   * per_device_train_batch_size and of num_generations. Exclusive with steps_per_generation.
   */
  generationBatchSize: z.number().int().positive().optional(),

  /** Sampling temperature for rollouts (and the log-prob temperature). Default 1. */
  temperature: z.number().positive().default(1.0),
  topP: z.number().gt(0).max(1).default(1.0),
  /** 0 = off. */
  topK: z.number().int().min(0).default(0),
  /** 0 = off. */
  minP: z.number().min(0).max(1).default(0),
  repetitionPenalty: z.number().positive().default(1.0),

  /** Reward functions: built-in names (gsm8k/correctness, …), "./file.ts#export", or functions (TS API). */
  rewardFuncs: z.array(z.any()).nonempty().optional(),
  /** One weight per reward function (default all 1). */
  rewardWeights: z.array(z.number()).optional(),
  /** What a reward failure (throw, timeout, NaN) does: skip the sample, or stop the run (default). */
  rewardErrors: z.enum(["skip", "stop"]).default("stop"),
  /** Per-call reward timeout in ms; a call in a worker thread that runs past it is cut (the worker is replaced). Default 60000. */
  rewardTimeoutMs: z.number().int().positive().default(60000),
  /**
   * Worker threads for user reward functions (files, and functions that use nothing from around them). Default: the
   * cores. Each batch is split between the workers at prompt-group boundaries, so a function sees whole groups but not
   * necessarily the whole batch: set 1 for a function whose values depend on the whole batch. 0 runs every reward
   * inline on the main thread (no thread start-up, ~0.1 ms less per call, but a synchronous loop cannot be cut).
   */
  rewardWorkers: z.number().int().min(0).optional(),

  /** Optimiser steps (overrides numTrainEpochs when > 0). */
  maxSteps: z.number().int().default(-1),
  numTrainEpochs: z.number().positive().default(1),
  /** Log every N steps. Default 1. */
  loggingSteps: z.number().int().positive().default(1),
  /** Checkpoint every N steps (0 = only at the end). Default 0. */
  saveSteps: z.number().int().min(0).default(0),
  /** Keep at most N checkpoints (oldest deleted). Default all. */
  saveTotalLimit: z.number().int().positive().optional(),
  /**
   * Evaluation during training on the eval split (dataset.eval_split, or the eval rows given to the API): "no"
   * (default) or "steps" (every eval_steps optimiser steps, and at the end). Logs eval/accuracy, eval/reward,
   * eval/rewards/<name>/mean and std, eval/completions/mean_length to metrics.jsonl (a line of its own, with the step)
   * and to the console.
   */
  evalStrategy: z.enum(["no", "steps"]).default("no"),
  /** Evaluate every N optimiser steps (default logging_steps, as transformers does). */
  evalSteps: z.number().int().positive().optional(),
  /** Also evaluate before the first step (transformers' eval_on_start). Default false. */
  evalOnStart: z.boolean().default(false),
  /** Completions per eval prompt (default num_generations). */
  numGenerationsEval: z.number().int().positive().optional(),
  /** Completions generated per eval batch; a multiple of num_generations_eval. Default 8 (transformers). */
  perDeviceEvalBatchSize: z.number().int().positive().default(8),

  /**
   * TR-DPO's reference refresh: every ref_model_sync_steps optimiser steps the KL reference becomes
   * ref_model_mixup_alpha · policy + (1 − alpha) · reference. Needs beta > 0. Under full fine-tuning every weight of
   * the kept reference copy is mixed. Under LoRA (where TRL refuses it) the reference is a kept reference adapter:
   * the base model with the adapter off until the first sync, then a second set of LoRA weights mixed the same way
   * (A and B each mixed, so the reference's update is a mix of the factors, not of their product); it is saved with
   * each checkpoint. Default false.
   */
  syncRefModel: z.boolean().default(false),
  /** alpha of the reference mixup. Default 0.6. */
  refModelMixupAlpha: z.number().min(0).max(1).default(0.6),
  /** Steps between reference syncs (τ). Default 512. */
  refModelSyncSteps: z.number().int().positive().default(512),
  /** Train with LoRA dropout off (the only dropout aha's models have). Default false. */
  disableDropout: z.boolean().default(false),
  /** Visit the prompts in a seeded shuffled order each epoch (default true), or in dataset order. */
  shuffleDataset: z.boolean().default(true),
  /**
   * Accepted for TRL recipes and changes nothing: aha's fused lm-head already computes the logits, log-softmax and
   * entropies in f32 (bf16/f16 weights widened in the kernel), which is what this option buys in TRL (ScaleRL).
   */
  castLmHeadToFp32: z.boolean().default(false),

  /** Completions per logged step written to completions.jsonl. Default 8; TRL's true / false mean 8 / 0. */
  logCompletions: z.union([z.number().int().min(0), z.boolean()]).default(8).transform((v) => (v === true ? 8 : v === false ? 0 : v)),
  seed: z.number().int().default(42),
  /** SFT (`aha sft`): the dataset column holding the target completion. Default "completion". */
  completionColumn: z.string().default("completion"),
  /** Where metrics, completions and checkpoints go. One run per folder: a fresh run refuses a folder that holds
   *  another run's metrics or checkpoints (use `--resume` to continue it, or overwriteOutputDir to replace it). */
  outputDir: z.string().default("runs/aha"),
  /** Replace the run in outputDir (TRL's overwrite_output_dir). Its files are removed only once the new run's first
   *  step has run, so a config error loses nothing. Default false. */
  overwriteOutputDir: z.boolean().default(false),
  /** A step whose rewards, advantages, loss or gradient norm is not finite is skipped (no update); after this many
   *  such steps in a row the run stops with an error naming the first bad quantity. Default 3. */
  maxNonfiniteSteps: z.number().int().positive().default(3),
  /** KV-cache bytes generation may use at once. Default 1 GiB. */
  generationMemoryBudget: z.number().positive().default(2 ** 30),
  /**
   * Replay captured graphs instead of launching every kernel from JavaScript: each rollout decode step (fixed shapes;
   * finished sequences stay in the batch until half of it is done) and each training micro-batch (one capture per
   * optimiser step; LoRA dropout masks are drawn on the device). Same completions, metrics and parameters as without. CUDA graphs on the
   * GPU; on the CPU, recorded kernel calls (which saves the JavaScript of every step). Default: on
   * for the CPU, off for CUDA until measured on a GPU; the environment variable AHA_GRAPHS=1 or 0 overrides.
   */
  graphs: z.boolean().optional(),
  /**
   * Where the run is reported besides metrics.jsonl and the console (TRL's option name): "none" (default) or
   * "dashboard", a local web page with live curves, the newest completions, evaluations and the config, served while
   * the run trains (`aha train --dashboard [port]`; `aha dashboard DIR…` opens finished runs).
   */
  reportTo: z.union([z.enum(["none", "dashboard"]), z.array(z.enum(["none", "dashboard"]))]).default("none"),
  /** Port of the dashboard page (report_to: dashboard; 0 = any free port). Default 6006. */
  dashboardPort: z.number().int().min(0).max(65535).default(6006),

  // ---- agents (src/agents): tools and environments inside the rollout ----
  /**
   * Tools the model may call during its rollout: "./tools.ts#tools" (a list of {name, description, parameters: JSON
   * schema or zod, execute}, or an object of them by name) or the tools themselves (TS API). Shown to the model through
   * the chat template's `tools` argument; calls are parsed per model family (tool_call_format), run concurrently with
   * a timeout, and their results (errors included) prefilled into the live KV cache as `tool` messages. Only the
   * model's own tokens take loss. Needs a chat template that renders tool calls. Default none.
   */
  tools: z.union([z.string(), z.array(z.any()), z.record(z.string(), z.any())]).optional(),
  /**
   * "./env.ts#create" (or the function, TS API): create(row) → {reset() → messages, step(assistantMessage) →
   * {messages, done, reward?}}, one instance per completion. It answers every turn without a tool call until it
   * says done; step rewards are summed into a reward named "environment" (weight 1). Default none.
   */
  environment: z.union([z.string(), z.function()]).optional(),
  /** Tool-calling turns per episode (TRL's name); a further call ends the episode ("cut"). Default no limit. */
  maxToolCallingIterations: z.number().int().positive().optional(),
  /** hermes (Qwen2.5/Qwen3), llama3_json, mistral or phi4_mini; default: read from the chat template. */
  toolCallFormat: z.enum(["hermes", "llama3_json", "mistral", "phi4_mini"]).optional(),
  /** Per-call tool timeout in ms (the error goes back to the model). Default 30000. */
  toolTimeoutMs: z.number().int().positive().default(30000),
}).strict();

/** Checks across fields, run on whatever parsed (so they are reported together with per-field problems). */
function crossFieldProblems(c: Record<string, unknown>): [string, string][] {
  const out: [string, string][] = [];
  const n = (k: string, d: number) => (typeof c[k] === "number" ? (c[k] as number) : d);
  const per = n("perDeviceTrainBatchSize", 8), G = n("numGenerations", 8);
  // TRL's checks on the generation batch (GRPOConfig.__post_init__)
  if (c.generationBatchSize !== undefined && c.stepsPerGeneration !== undefined)
    out.push(["generationBatchSize", "generation_batch_size and steps_per_generation cannot both be set"]);
  else if (typeof c.generationBatchSize === "number" && c.generationBatchSize % per !== 0)
    out.push(["generationBatchSize", `generation_batch_size (${c.generationBatchSize}) must be a multiple of per_device_train_batch_size (${per})`]);
  else {
    const gbs = typeof c.generationBatchSize === "number" ? c.generationBatchSize : per * n("stepsPerGeneration", n("gradientAccumulationSteps", 1));
    const how = c.generationBatchSize !== undefined ? "generation_batch_size" : c.stepsPerGeneration !== undefined ? "per_device_train_batch_size × steps_per_generation" : "per_device_train_batch_size × gradient_accumulation_steps";
    if (G > 0 && gbs % G !== 0)
      out.push([c.generationBatchSize !== undefined ? "generationBatchSize" : "perDeviceTrainBatchSize", `the generation batch (${how} = ${gbs}) must be a multiple of num_generations (${G})`]);
  }
  if (c.evalStrategy === "steps") {
    const Ge = n("numGenerationsEval", G), eb = n("perDeviceEvalBatchSize", 8);
    if (eb % Ge !== 0) out.push(["perDeviceEvalBatchSize", `per_device_eval_batch_size (${eb}) must be a multiple of the eval generations per prompt (num_generations_eval or num_generations: ${Ge})`]);
  }
  if (c.syncRefModel === true && !(n("beta", 0) > 0))
    out.push(["syncRefModel", "sync_ref_model needs beta > 0 (with beta 0 there is no reference model to refresh)"]);
  if (c.fullFinetune === true && c.loadIn4bit === true) out.push(["loadIn4bit", "4-bit base weights are frozen: use LoRA (full_fine_tune: false) with load_in_4bit"]);
  const w = c.rewardWeights, f = c.rewardFuncs;
  if (Array.isArray(w) && Array.isArray(f) && w.length !== f.length) out.push(["rewardWeights", `${w.length} weights for ${f.length} reward functions`]);
  return out;
}

/** Combinations TRL runs but warns about (the trainer prints these at the start). */
export function configWarnings(c: GRPOConfig): string[] {
  const out: string[] = [];
  if (c.lossType === "luspo" && c.importanceSamplingLevel !== "sequence")
    out.push("loss_type luspo with importance_sampling_level token: LUSPO is defined on sequence-level ratios (set importance_sampling_level: sequence)");
  if (c.importanceSamplingLevel === "sequence" && ["bnpo", "dr_grpo", "dapo", "cispo"].includes(c.lossType))
    out.push(`importance_sampling_level sequence with loss_type ${c.lossType}: the token sum weights each sequence by its length; GSPO proper is loss_type grpo`);
  if (c.lossType === "cispo" && c.epsilonHigh === undefined)
    out.push(`loss_type cispo caps the importance weight at epsilon_high itself; unset, it falls back to epsilon (${c.epsilon}), so every weight near 1 is capped at ${c.epsilon} (set epsilon_high, e.g. 5.0 as ScaleRL)`);
  return out;
}

/** What a TS user writes (defaults optional). */
export type GRPOConfigInput = z.input<typeof GRPOConfigSchema>;
/** The validated config with every default filled in. */
export type GRPOConfig = z.output<typeof GRPOConfigSchema>;

// (a digit run that starts a word gets its underscore: loadIn4bit ↔ load_in_4bit, bnb4bitQuantType ↔ bnb_4bit_quant_type)
const snake = (k: string) => k.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`).replace(/(?<=[a-z])(?=\d+[a-z])/g, "_");
const camel = (k: string) => k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());

/** Whether a chat_template string is Jinja text (rather than the path of a template file). */
export const isJinja = (s: string): boolean => /\{[{%]/.test(s);

/** Options whose values are the user's own mappings, passed on as written (not renamed to camelCase). */
const FREE_FORM = new Set(["chatTemplateKwargs"]);

function camelKeys(v: unknown, depth = 0): unknown {
  if (depth > 1 || !v || typeof v !== "object" || Array.isArray(v)) return v;
  return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [camel(k), FREE_FORM.has(camel(k)) ? x : camelKeys(x, depth + 1)]));
}

/** Levenshtein distance (insertions, deletions, substitutions), for "did you mean". */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** The known name nearest to an unknown one, when it is near enough to be a typo (a third of its length, at least 2). */
export function nearestName(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/** The option names of each level of the config, by path ("" for the top level). */
const KNOWN_KEYS: Record<string, string[]> = { "": Object.keys(GRPOConfigSchema.shape), lora: Object.keys(lora.shape), dataset: Object.keys(dataset.shape) };

export class ConfigError extends Error {
  constructor(readonly source: string, readonly problems: string[]) {
    super(`${source}: invalid config:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

/** Validate a config object; `yamlNames` reports fields by their snake_case names. */
export function validateConfig(input: unknown, source = "config", yamlNames = false): GRPOConfig {
  const r = GRPOConfigSchema.safeParse(input);
  const name = (p: PropertyKey) => (typeof p === "string" && yamlNames ? snake(p) : String(p));
  const problems: string[] = [];
  if (!r.success) {
    for (const i of r.error.issues) {
      const path = i.path.map(name).join(".");
      if (i.code === "unrecognized_keys")
        for (const k of i.keys) {
          const near = nearestName(name(k), (KNOWN_KEYS[i.path.join(".")] ?? []).map(name));
          problems.push(`${path ? path + "." : ""}${name(k)}: unknown option${near ? ` (did you mean ${near}?)` : ""}`);
        }
      else problems.push(`${path || "(top level)"}: ${i.message}`);
    }
  }
  const obj = (r.success ? r.data : input) as Record<string, unknown>;
  if (obj && typeof obj === "object") for (const [k, m] of crossFieldProblems(obj)) problems.push(`${name(k)}: ${m}`);
  if (problems.length) throw new ConfigError(source, problems);
  return r.data!;
}

/** The config as a run folder records it (run_config.json): TRL's snake_case names, reward functions by name. */
export function configForLog(c: GRPOConfig): Record<string, unknown> {
  const name = (f: unknown) => (typeof f === "string" ? f : (f as { name?: string })?.name || "function");
  return Object.fromEntries(Object.entries({ ...c, rewardFuncs: c.rewardFuncs?.map(name) }).map(([k, v]) => [snake(k), v]));
}

/** Whether report_to asks for the dashboard. */
export function reportsToDashboard(c: Pick<GRPOConfig, "reportTo">): boolean {
  return Array.isArray(c.reportTo) ? c.reportTo.includes("dashboard") : c.reportTo === "dashboard";
}

/**
 * Read a YAML (or JSON) config file; relative paths in it are resolved from the file's folder. `overrides` (command-line
 * flags, snake_case or camelCase) replace the file's values; their paths stay relative to the working directory.
 */
export function loadConfigFile(path: string, overrides: Record<string, unknown> = {}): GRPOConfig {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`${path}: cannot read config (${(e as Error).message})`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new Error(`${path}: a config must be a mapping of option names to values`);
  const obj = camelKeys(raw) as Record<string, unknown>;
  const base = dirname(resolve(path));
  // a path relative to the config file; a model or dataset that is no path there and has a hub id's shape stays as
  // written (hub/cache.ts looks it up)
  const rel = (p: unknown, orHubId = false) =>
    typeof p === "string" && !isAbsolute(p) && !(orHubId && isHubId(p) && !existsSync(resolve(base, p))) ? resolve(base, p) : p;
  if (typeof obj.model === "string") obj.model = rel(obj.model, true);
  if (typeof obj.adapter === "string") obj.adapter = rel(obj.adapter);
  if (typeof obj.outputDir === "string") obj.outputDir = rel(obj.outputDir);
  if (typeof obj.chatTemplate === "string" && !isJinja(obj.chatTemplate)) obj.chatTemplate = rel(obj.chatTemplate);
  const ds = obj.dataset as Record<string, unknown> | undefined;
  if (ds && typeof ds === "object") ds.path = rel(ds.path, true);
  const relSpec = (f: unknown) => (typeof f === "string" && looksLikeFile(f) ? rel(f) : f); // a file, or {type: verifier, path}
  if (Array.isArray(obj.rewardFuncs)) obj.rewardFuncs = obj.rewardFuncs.map((f) => (f && typeof f === "object" && "path" in f ? { ...f, path: relSpec(f.path) } : relSpec(f)));
  for (const k of ["tools", "environment"]) if (typeof obj[k] === "string") obj[k] = rel(obj[k]);
  return validateConfig({ ...obj, ...(camelKeys(overrides) as object) }, path, true);
}
