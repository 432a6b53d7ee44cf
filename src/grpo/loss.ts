// The GRPO-family loss on a batch of completions: per-token log-probs (and entropies) from the model (fused lm-head,
// logits / τ), the loss kernel (engine op `grpoLoss`: the clipped ratio with two-sided delta, CISPO, SAPO, per token
// or per sequence (GSPO), the k3 KL or its bias-corrected form, the off-policy and entropy masks), and the
// normalisation of each loss type, expressed as per-token weights:
//   grpo, sapo        mean over sequences of (masked token sum / that sequence's tokens)
//   bnpo              masked token sum / tokens in this batch
//   dr_grpo           masked token sum / (sequences × max_completion_length)
//   dapo, cispo       masked token sum / completion tokens in the whole accumulated batch
//   luspo             masked token sum / sequences: each sequence's mean loss weighted by its length
// (grpo, sapo, bnpo, dr_grpo and luspo are also divided by the micro-batches accumulated, as TRL does.)
// Differs from TRL on purpose (see config.ts, lossType): luspo's normaliser masks padding. TRL takes
// mean(per_token_loss · length) over the broadcast [B, T] when the loss is per token (β > 0, an entropy mask, token
// level), so the KL at padded positions enters the loss and the pad tokens' log-probs get a gradient; with an entropy
// mask the policy term is also rescaled by (#kept tokens)/T. Without those (sequence level, β = 0, no entropy mask)
// both are the same: mean over sequences of length × sequence loss.
import { embedding, fromHost, grpoLoss, type Tensor } from "../engine/index.ts";
import type { GrpoLossParams } from "../engine/ops/logprobs.ts";
import type { CausalLM } from "../models/model.ts";

export type LossType = "grpo" | "bnpo" | "dr_grpo" | "dapo" | "cispo" | "sapo" | "luspo";

export interface LossParams {
  lossType: LossType;
  /** "token" (default) or "sequence" (GSPO: one ratio per sequence) */
  importanceSamplingLevel?: "token" | "sequence";
  epsilon: number;
  /** the clip's upper range; for cispo the cap on the ratio itself (TRL: ScaleRL's ε_max, 5.0 recommended) */
  epsilonHigh: number;
  /** two-sided clipping bound (0 or undefined = off) */
  delta?: number;
  beta: number;
  /** KL × ratio (DeepSeek-V3.2's unbiased KL estimate) */
  useBiasCorrectionKl?: boolean;
  sapoTemperaturePos?: number;
  sapoTemperatureNeg?: number;
  /** policy loss only on the top-ρ tokens by entropy of each micro-batch (1 = all) */
  topEntropyQuantile?: number;
  /** DeepSeek-V3.2's off-policy sequence mask threshold (null/undefined = off) */
  offPolicyMaskThreshold?: number | null;
  temperature: number;
  maxCompletionLength: number;
  /** dapo / cispo: completion tokens in the whole accumulated batch (default: this batch's) */
  numItemsInBatch?: number;
  /** the other types: micro-batches accumulated into one step; the loss is divided by it (TRL) */
  accumulation?: number;
}

/** dapo and cispo normalise by the tokens of the whole accumulated batch; the others per micro-batch. */
export const globalNormaliser = (t: LossType): boolean => t === "dapo" || t === "cispo";

/** Per-token weights [B*T] that turn a masked token sum into the loss type's normalised loss. */
export function lossWeights(mask: Float32Array, B: number, T: number, p: Pick<LossParams, "lossType" | "maxCompletionLength" | "numItemsInBatch" | "accumulation">): Float32Array {
  const w = new Float32Array(B * T);
  let total = 0;
  for (const m of mask) total += m;
  for (let b = 0; b < B; b++) {
    let row = 0;
    for (let t = 0; t < T; t++) row += mask[b * T + t];
    let denom: number;
    switch (p.lossType) {
      case "grpo": case "sapo": denom = Math.max(row, 1) * B; break;
      case "bnpo": denom = Math.max(total, 1); break;
      case "dr_grpo": denom = B * p.maxCompletionLength; break;
      case "luspo": denom = B; break;
      case "dapo": case "cispo": denom = Math.max(p.numItemsInBatch ?? total, 1); break;
    }
    if (!globalNormaliser(p.lossType)) denom *= p.accumulation ?? 1;
    for (let t = 0; t < T; t++) w[b * T + t] = mask[b * T + t] / denom;
  }
  return w;
}

export interface CompletionBatch {
  /** [B, P] prompt ids (left-padded where promptMask is 0) */
  promptIds: Int32Array;
  promptMask?: Int32Array;
  /** [B, T] completion ids */
  completionIds: Int32Array;
  /** [B, T] 1 for tokens that count (0 after EOS, or for masked truncated completions) */
  completionMask: Float32Array;
  B: number;
  P: number;
  T: number;
}

/**
 * Per-token log-probs [B*T] of the completion tokens (and their entropies) under the model as it is now
 * (adapter on unless called inside model.withoutAdapter).
 */
export function completionLogprobs(model: CausalLM, batch: CompletionBatch, temperature: number): { logp: Tensor; entropy: Tensor } {
  const { B, T } = batch;
  const { ids, mask, rows, L } = completionInputs(batch);
  const h = model.forward(ids, B, L, { attentionMask: mask });
  const hSel = embedding(fromHost(rows, [B * T], "i32"), h); // row gather, scatter-add backward
  return model.tokenLogprobs(hSel, batch.completionIds, temperature);
}

/**
 * The host inputs of a completion batch's forward: prompt + completion ids and their key mask [B, L] (L = P + T),
 * and the rows of the hidden states [B*L, C] that predict the completion tokens (positions P-1 .. L-2 of each row).
 */
export function completionInputs(batch: CompletionBatch): { ids: Int32Array; mask: Int32Array; rows: Int32Array; L: number } {
  const { B, P, T } = batch;
  const L = P + T;
  const ids = new Int32Array(B * L), mask = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    ids.set(batch.promptIds.subarray(b * P, (b + 1) * P), b * L);
    ids.set(batch.completionIds.subarray(b * T, (b + 1) * T), b * L + P);
    for (let j = 0; j < P; j++) mask[b * L + j] = batch.promptMask ? batch.promptMask[b * P + j] : 1;
    for (let j = 0; j < T; j++) mask[b * L + P + j] = 1;
  }
  const rows = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) rows[b * T + t] = b * L + P - 1 + t;
  return { ids, mask, rows, L };
}

/** Per-token advantages [B*T] (each sequence's advantage on every one of its tokens). */
export function tokenAdvantages(advantages: Float32Array, B: number, T: number): Float32Array {
  const adv = new Float32Array(B * T);
  for (let b = 0; b < B; b++) adv.fill(advantages[b], b * T, (b + 1) * T);
  return adv;
}


export interface LossResult {
  loss: Tensor;
  logp: Tensor;
  entropy: Tensor;
}

/**
 * The loss for one batch (a scalar tensor with its autograd graph), given old and reference log-probs [B*T].
 * old = null: on-policy (one iteration per generation), the ratio is exp(logp - logp.detach()) = 1.
 * ref = null: no KL term.
 */
export function batchLoss(model: CausalLM, batch: CompletionBatch, old: Float32Array | null, ref: Float32Array | null, advantages: Float32Array, p: LossParams): LossResult {
  const { B, T } = batch;
  const { logp, entropy } = completionLogprobs(model, batch, p.temperature);
  const adv = tokenAdvantages(advantages, B, T);
  const w = lossWeights(batch.completionMask, B, T, p);
  const oldT = old ? fromHost(old, [B * T]) : logp; // the kernel reads values only: no gradient through old
  const loss = grpoLoss(logp, oldT, ref ? fromHost(ref, [B * T]) : oldT, fromHost(adv, [B * T]), fromHost(w, [B * T]), kernelParams(p, ref !== null), false, { rows: B, entropy });
  return { loss, logp, entropy };
}

/** The loss kernel's parameters for these loss params (the KL term only with reference log-probs). */
export function kernelParams(p: LossParams, hasRef: boolean): GrpoLossParams {
  const off = p.offPolicyMaskThreshold;
  return {
    kind: p.lossType === "cispo" ? 1 : p.lossType === "sapo" ? 2 : 0,
    seq: p.importanceSamplingLevel === "sequence" ? 1 : 0,
    epsilonLow: p.epsilon, epsilonHigh: p.epsilonHigh, delta: p.delta ?? 0, beta: hasRef ? p.beta : 0,
    biasKl: p.useBiasCorrectionKl ? 1 : 0,
    sapoPos: p.sapoTemperaturePos ?? 1, sapoNeg: p.sapoTemperatureNeg ?? 1.05,
    offPolicy: off === null || off === undefined ? 0 : 1, offThreshold: off ?? 0,
    entropyQuantile: p.topEntropyQuantile ?? 1,
  };
}
