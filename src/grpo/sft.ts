// Supervised fine-tuning on (prompt, completion) rows before GRPO, as the Unsloth guide recommends: a short pass
// that teaches the output format, so that GRPO spends its samples on correctness. Loss on completion tokens only
// (mean negative log-likelihood over them); same model object, adapter, optimiser and config style as GRPO, and the
// same non-finite guard (guard.ts: a step whose loss or gradient is not finite makes no update).
import { backward, fromHost, scope, sum, scale, mul } from "../engine/index.ts";
import type { CausalLM } from "../models/model.ts";
import type { Message, Tokenizer } from "../tokenize/index.ts";
import type { Row } from "../data/index.ts";
import { mixSeed, Xoshiro } from "../engine/rng.ts";
import type { GRPOConfig } from "./config.ts";
import { completionLogprobs } from "./loss.ts";
import { encodeRow } from "./rollout.ts";
import { AdamW, clipGradNorm, scheduledLr } from "./optim.ts";
import { checkStep, NonFiniteGuard } from "./guard.ts";

export interface SftResult {
  steps: number;
  /** mean completion-token NLL per step */
  losses: number[];
}

/** Train on rows with a prompt and a completion column; returns per-step losses. `onNote` hears of skipped steps. */
export function sft(model: CausalLM, tok: Tokenizer, rows: Row[], cfg: GRPOConfig, onStep?: (step: number, total: number, loss: number) => void, onNote?: (line: string) => void): SftResult {
  const params = model.parameters();
  if (params.length === 0) throw new Error("sft: the model has no trainable parameters");
  const col = cfg.completionColumn;
  const eos = tok.eosTokenIds[0] ?? model.config.eosTokenIds[0];
  const examples = rows.map((r, i) => {
    // (a `messages` row's trailing assistant turn is its completion)
    const last = Array.isArray(r.messages) ? (r.messages as Message[])[r.messages.length - 1] : undefined;
    const c = r[col] ?? (last?.role === "assistant" ? last.content : undefined);
    if (typeof c !== "string") throw new Error(`sft: row ${i + 1} has no string '${col}' column (nor a messages column ending with an assistant turn)`);
    const prompt = encodeRow(tok, r, cfg).ids;
    const completion = [...tok.encode(c, { addSpecialTokens: false }), ...(eos !== undefined ? [eos] : [])].slice(0, cfg.maxCompletionLength);
    return { prompt, completion };
  });
  const bs = cfg.perDeviceTrainBatchSize;
  const stepsPerEpoch = Math.ceil(examples.length / bs);
  const total = cfg.maxSteps > 0 ? cfg.maxSteps : Math.ceil(cfg.numTrainEpochs * stepsPerEpoch);
  const opt = new AdamW(params, { lr: cfg.learningRate, beta1: cfg.adamBeta1, beta2: cfg.adamBeta2, eps: cfg.adamEpsilon, weightDecay: cfg.weightDecay });
  const warmup = cfg.warmupSteps > 0 ? cfg.warmupSteps : Math.ceil(cfg.warmupRatio * total);
  const losses: number[] = [];
  const guard = new NonFiniteGuard(cfg.maxNonfiniteSteps);
  let order: number[] = [];
  for (let step = 0; step < total; step++) {
    const pos = (step % stepsPerEpoch) * bs;
    if (pos === 0) {
      const rng = new Xoshiro(mixSeed(cfg.seed, 0x5f7, Math.floor(step / stepsPerEpoch)));
      order = examples.map((_, i) => i);
      for (let i = order.length - 1; i > 0; i--) { const j = Math.floor(rng.next() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
    }
    const batch = order.slice(pos, pos + bs).map((i) => examples[i]);
    const B = batch.length, P = Math.max(...batch.map((e) => e.prompt.length)), T = Math.max(...batch.map((e) => e.completion.length));
    const promptIds = new Int32Array(B * P), promptMask = new Int32Array(B * P), completionIds = new Int32Array(B * T), mask = new Float32Array(B * T);
    batch.forEach((e, b) => {
      promptIds.set(e.prompt, b * P + P - e.prompt.length);
      promptMask.fill(1, b * P + P - e.prompt.length, (b + 1) * P);
      completionIds.set(e.completion, b * T);
      mask.fill(1, b * T, b * T + e.completion.length);
    });
    let tokens = 0;
    for (const m of mask) tokens += m;
    const loss = scope(() => {
      const { logp } = completionLogprobs(model, { promptIds, promptMask, completionIds, completionMask: mask, B, P, T }, 1);
      const l = scale(sum(mul(logp, fromHost(mask, [B * T]))), -1 / Math.max(1, tokens));
      backward(l);
      return l.item();
    });
    const bad = checkStep(loss, clipGradNorm(params, cfg.maxGradNorm), params);
    if (!bad) opt.update(scheduledLr(cfg.learningRate, cfg.lrSchedulerType, step, total, warmup));
    opt.zeroGrad();
    const skipped = guard.record(step + 1, bad);
    if (skipped) onNote?.(`sft ${skipped}`);
    if (guard.stopped) throw guard.stopped;
    losses.push(loss);
    onStep?.(step + 1, total, loss);
  }
  opt.dispose();
  return { steps: total, losses };
}
