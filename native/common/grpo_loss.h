// The GRPO family's per-token loss terms, shared by native/cpu/grpo_loss.cpp (double) and native/cuda/grpo_loss.cu
// (float), so both backends compute the same formulas: TRL's GRPOTrainer._compute_loss (commit f2cd577) term by term.
// Is: the options (GrpoVariant), the policy term of one token for each loss kind, the k3 KL term, and the masked
// linear quantile's position. Is not: the row loops, reductions and normalisers (those live with each backend; the
// normalisers come in as per-token weights w from src/grpo/loss.ts).
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define AHA_HD __host__ __device__ __forceinline__
#else
#define AHA_HD inline
#endif

namespace aha_common {

// loss kinds: the clipped ratio (grpo, bnpo, dr_grpo, dapo, luspo), CISPO, SAPO
enum GrpoKind { GRPO_CLIP = 0, GRPO_CISPO = 1, GRPO_SAPO = 2 };

struct GrpoVariant {
  int kind = GRPO_CLIP;
  // 1: one ratio per row (GSPO), exp of the masked mean of the row's log-ratios
  int seq = 0;
  float eps_low = 0.2f, eps_high = 0.2f;
  // two-sided clipping bound on the unclipped branch (0 = off)
  float delta = 0.f;
  float beta = 0.f;
  // KL × ratio (DeepSeek-V3.2's unbiased KL)
  int bias_kl = 0;
  float sapo_pos = 1.f, sapo_neg = 1.05f;
  // off-policy sequence mask: drop a row's policy term when A < 0 and mean(old − logp) > off_threshold
  int off_policy = 0;
  float off_threshold = 0.f;
  // keep the policy term only on tokens whose entropy is at least the (1 − entropy_q) quantile of the batch's
  // (entropy_q >= 1: off)
  float entropy_q = 1.f;
};

template <class R> struct PolicyTerm {
  R loss;   // the per-token policy loss ℓ
  R dr;     // ∂ℓ/∂r (through the ratio)
  R dlogp;  // ∂ℓ/∂logp held apart from the ratio (CISPO's REINFORCE form)
};

// ℓ for ratio r, advantage A and (CISPO) the token's log-prob
template <class R> AHA_HD PolicyTerm<R> policy_term(const GrpoVariant& p, R r, R A, R logp) {
  PolicyTerm<R> t{0, 0, 0};
  if (p.kind == GRPO_CISPO) {
    // −sg(min(r, ε_high))·A·logp: the cap is epsilon_high itself (TRL), no gradient through r
    R cc = r < (R)p.eps_high ? r : (R)p.eps_high;
    t.loss = -cc * A * logp;
    t.dlogp = -cc * A;
  } else if (p.kind == GRPO_SAPO) {
    // −σ(τ(r − 1))·4/τ·A with τ by the sign of A; ∂/∂r = −4σ(1 − σ)A
    R tau = A > 0 ? (R)p.sapo_pos : (R)p.sapo_neg;
    R x = tau * (r - 1);
    R s = x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
    t.loss = -s * 4 / tau * A;
    t.dr = -4 * s * (1 - s) * A;
  } else {
    // −min(r′A, clip(r, 1 − ε_low, 1 + ε_high)A), r′ = min(r, δ) with δ; torch.minimum splits a tie's gradient
    bool capped = p.delta > 0 && r > (R)p.delta;
    R c1 = capped ? (R)p.delta : r;
    R lo = 1 - (R)p.eps_low, hi = 1 + (R)p.eps_high;
    R c2 = r < lo ? lo : r > hi ? hi : r;
    R l1 = c1 * A, l2 = c2 * A;
    t.loss = -(l1 < l2 ? l1 : l2);
    R d1 = capped ? 0 : A, d2 = (r >= lo && r <= hi) ? A : 0;
    t.dr = -(l1 < l2 ? d1 : l2 < l1 ? d2 : (d1 + d2) / 2);
  }
  return t;
}

// k3 KL estimator exp(ref − logp) − (ref − logp) − 1 and its derivative in logp
template <class R> AHA_HD void kl_term(R ref, R logp, R* k, R* dk) {
  R x = ref - logp, e = exp(x);
  *k = e - x - 1;
  *dk = 1 - e;
}

// torch.quantile's linear interpolation between the order statistics lo and lo + 1 of n values at fraction q
AHA_HD void quantile_position(long n, double q, long* lo, double* frac) {
  double pos = q * (double)(n - 1);
  *lo = (long)floor(pos);
  if (*lo > n - 1) *lo = n - 1;
  if (*lo < 0) *lo = 0;
  *frac = pos - (double)*lo;
}
// a + (b − a)·t as torch.lerp / numpy compute it (from the nearer end)
template <class R> AHA_HD R lerp(R a, R b, R t) { return t < (R)0.5 ? a + (b - a) * t : b - (b - a) * (1 - t); }

}  // namespace aha_common
