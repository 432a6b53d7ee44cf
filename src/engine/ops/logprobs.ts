// Fused lm-head + log-softmax + gather: per-token log-probs of chosen tokens from hidden states, in chunks, so
// the [tokens × vocab] logits never exist whole; and the GRPO per-token loss over those log-probs.
import { Tensor } from "../tensor.ts";
import { record } from "../autograd.ts";
import { assertF32, dtypeCode, like, likeZero } from "./util.ts";

export interface TokenLogprobs {
  /** [N] log p(target) under softmax(softcap(h Wᵀ) / temperature) */
  logp: Tensor;
  /** [N] entropy of that distribution (no gradient) */
  entropy: Tensor;
}

/** h [N, C], W [V, C] (any float dtype), targets i32 [N]. */
export function tokenLogprobs(h: Tensor, W: Tensor, targets: Tensor, temperature = 1, softcap = 0): TokenLogprobs {
  assertF32("tokenLogprobs", h);
  const [V, C] = W.shape, N = h.numel / C;
  if (h.shape[h.shape.length - 1] !== C) throw new Error(`tokenLogprobs: hidden [${h.shape}] vs lm-head [${W.shape}]`);
  if (targets.numel !== N || targets.dtype !== "i32") throw new Error(`tokenLogprobs: targets must be i32 [${N}]`);
  const logp = like(h, [N]), lse = like(h, [N]), entropy = like(h, [N]);
  const k = h.backend.k, inv = 1 / temperature;
  k.lm_logp_forward(logp.buf, lse.buf, entropy.buf, h.buf, W.buf, dtypeCode(W.dtype), targets.buf, N, C, V, inv, softcap);
  record(logp, "lm_logp", [h, W], (g) => {
    const dh = likeZero(h); // written even when h needs no gradient (scratch)
    const dW = W.requiresGrad ? likeZero(W) : null;
    k.lm_logp_backward(dh.buf, dW?.buf ?? null, g.buf, lse.buf, h.buf, W.buf, dtypeCode(W.dtype), targets.buf, N, C, V, inv, softcap);
    if (!h.requiresGrad) { dh.dispose(); return [null, dW]; }
    return [dh, dW];
  });
  return { logp, entropy };
}

/** The GRPO-family loss variant (native/common/grpo_loss.h reads these fields). */
export interface GrpoLossParams {
  /** 0 the clipped ratio (grpo, bnpo, dr_grpo, dapo, luspo), 1 cispo, 2 sapo (default 0) */
  kind?: 0 | 1 | 2;
  /** 1: one ratio per row, the exp of its masked mean log-ratio (GSPO; default 0) */
  seq?: 0 | 1;
  epsilonLow: number;
  /** the clip's upper range; cispo's cap on the ratio itself */
  epsilonHigh: number;
  /** two-sided clipping bound on the ratio (0 = off) */
  delta: number;
  beta: number;
  /** 1: KL × ratio (DeepSeek-V3.2's unbiased KL) */
  biasKl?: 0 | 1;
  sapoPos?: number;
  sapoNeg?: number;
  /** 1: drop the policy term of rows with A < 0 whose mean(old − logp) exceeds offThreshold */
  offPolicy?: 0 | 1;
  offThreshold?: number;
  /** policy term only on tokens at or above the (1 − q) entropy quantile of the batch's valid tokens (1 = all) */
  entropyQuantile?: number;
}

/** Row layout and the entropies the entropy mask reads (needed when entropyQuantile < 1). */
export interface GrpoLossRows {
  /** rows of T tokens (default 1 row: sequence-level options then treat the whole batch as one sequence) */
  rows?: number;
  /** [N] token entropies (no gradient) */
  entropy?: Tensor | null;
}

/**
 * The GRPO-family loss over rows of completion tokens: Σ w · (policy term · off-policy mask · entropy mask)
 * + β · Σ w · KL, per token, with the ratio exp(logp − old) per token or per row (GSPO). All inputs [N]; w carries
 * the mask (0 = padding) and the loss type's normaliser. Gradient to logp only.
 */
export function grpoLoss(logp: Tensor, old: Tensor, ref: Tensor, adv: Tensor, w: Tensor, p: GrpoLossParams, onDevice = false, layout: GrpoLossRows = {}): Tensor {
  assertF32("grpoLoss", logp, old, ref, adv, w);
  const n = logp.numel, rows = layout.rows ?? 1, T = n / rows, ent = layout.entropy ?? null;
  for (const t of [old, ref, adv, w]) if (t.numel !== n) throw new Error(`grpoLoss: ${t.describe()} vs logp [${n}]`);
  if (!Number.isInteger(T)) throw new Error(`grpoLoss: ${n} tokens are not ${rows} rows`);
  if ((p.entropyQuantile ?? 1) < 1 && (!ent || ent.numel !== n)) throw new Error(`grpoLoss: entropyQuantile < 1 needs the [${n}] token entropies`);
  const k = logp.backend.k, entBuf = ent?.buf ?? null;
  const out = like(logp, [1]);
  if (onDevice) {
    // the value stays on the device (no sync: a captured graph's loss); item() reads it
    k.grpo_loss(null, logp.buf, old.buf, ref.buf, adv.buf, w.buf, entBuf, rows, T, p, 1, out.buf);
  } else {
    const value = k.grpo_loss(null, logp.buf, old.buf, ref.buf, adv.buf, w.buf, entBuf, rows, T, p, 1);
    logp.backend.write(out.buf, Float32Array.of(value));
    out.knownScalar(value); // loss.item() and the backward's seed need no device read
  }
  return record(out, "grpo_loss", [logp], (g) => {
    const d = like(logp), unused = like(logp, [1]); // the total goes to `unused`, so the kernel returns without a sync
    k.grpo_loss(d.buf, logp.buf, old.buf, ref.buf, adv.buf, w.buf, entBuf, rows, T, p, g.item(), unused.buf);
    unused.dispose();
    return [d];
  });
}
