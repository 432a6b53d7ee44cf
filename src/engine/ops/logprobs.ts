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

export interface GrpoLossParams {
  epsilonLow: number;
  epsilonHigh: number;
  /** two-sided clipping bound on the ratio (0 = off) */
  delta: number;
  beta: number;
}

/**
 * sum_i w_i * ( -min(r_i A_i, clip(r_i) A_i) + beta * k3_i ), r_i = exp(logp_i - old_i),
 * k3 = exp(ref - logp) - (ref - logp) - 1. All inputs [N]; w carries the mask and the loss type's normaliser.
 */
export function grpoLoss(logp: Tensor, old: Tensor, ref: Tensor, adv: Tensor, w: Tensor, p: GrpoLossParams, onDevice = false): Tensor {
  assertF32("grpoLoss", logp, old, ref, adv, w);
  const n = logp.numel;
  for (const t of [old, ref, adv, w]) if (t.numel !== n) throw new Error(`grpoLoss: ${t.describe()} vs logp [${n}]`);
  const k = logp.backend.k;
  const out = like(logp, [1]);
  if (onDevice) {
    // the value stays on the device (no sync: a captured graph's loss); item() reads it
    k.grpo_loss(null, logp.buf, old.buf, ref.buf, adv.buf, w.buf, n, p.epsilonLow, p.epsilonHigh, p.delta, p.beta, 1, out.buf);
  } else {
    const value = k.grpo_loss(null, logp.buf, old.buf, ref.buf, adv.buf, w.buf, n, p.epsilonLow, p.epsilonHigh, p.delta, p.beta, 1);
    logp.backend.write(out.buf, Float32Array.of(value));
    out.knownScalar(value); // loss.item() and the backward's seed need no device read
  }
  return record(out, "grpo_loss", [logp], (g) => {
    const d = like(logp), unused = like(logp, [1]); // the total goes to `unused`, so the kernel returns without a sync
    k.grpo_loss(d.buf, logp.buf, old.buf, ref.buf, adv.buf, w.buf, n, p.epsilonLow, p.epsilonHigh, p.delta, p.beta, g.item(), unused.buf);
    unused.dispose();
    return [d];
  });
}
