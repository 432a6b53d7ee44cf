// The GRPO-family loss over rows of completion tokens, and its gradient in the token log-probs (what the fused
// lm-head backward takes): the per-token terms of native/common/grpo_loss.h, the row reductions GSPO's sequence
// ratio and the off-policy mask need, and the entropy quantile of top_entropy_quantile. In double.
// Is not: the normalisers of the loss types (per-token weights w from src/grpo/loss.ts carry the mask and them).
#include "kernels.h"
#include <algorithm>
#include <cmath>
#include <vector>

namespace aha {

using aha_common::GrpoVariant;

// the linear q-quantile of x over the tokens with w != 0 (+inf when there are none)
double masked_quantile(const float* x, const float* w, long n, double q) {
  std::vector<float> v;
  for (long i = 0; i < n; i++) if (w[i] != 0.f) v.push_back(x[i]);
  if (v.empty()) return INFINITY;
  long lo;
  double frac;
  aha_common::quantile_position((long)v.size(), q, &lo, &frac);
  std::nth_element(v.begin(), v.begin() + lo, v.end());
  double a = v[lo];
  if (frac == 0) return a;
  double b = *std::min_element(v.begin() + lo + 1, v.end());
  return aha_common::lerp(a, b, frac);
}

double grpo_loss(float* dlogp, const float* logp, const float* old, const float* ref, const float* adv, const float* w,
                 const float* entropy, long rows, long T, const GrpoVariant& p, float gout, float* out) {
  const bool entMask = entropy && p.entropy_q < 1.f;
  const double thr = entMask ? masked_quantile(entropy, w, rows * T, 1.0 - p.entropy_q) : 0;
  double total = 0;
  for (long b = 0; b < rows; b++) {
    const long o = b * T;
    double n = 0, s = 0;  // valid tokens, Σ (logp − old) over them
    for (long t = 0; t < T; t++) if (w[o + t] != 0.f) { n++; s += (double)logp[o + t] - old[o + t]; }
    const double mean = s / std::max(n, 1.0), A = adv[o], rb = std::exp(mean);
    // off-policy mask: rows with A ≥ 0 always stay; mean(old − logp) = −mean
    const double keepRow = !p.off_policy || A >= 0 || -mean <= p.off_threshold ? 1 : 0;
    double G = 0;  // ∂L/∂r_b for the sequence-level ratio
    for (long t = 0; t < T; t++) {
      const long i = o + t;
      if (w[i] == 0.f) { if (dlogp) dlogp[i] = 0.f; continue; }
      const double lp = logp[i], r = p.seq ? rb : std::exp(lp - old[i]);
      const double wp = w[i] * keepRow * (entMask && !(entropy[i] >= thr) ? 0 : 1);
      const auto pt = aha_common::policy_term<double>(p, r, adv[i], lp);
      double l = wp * pt.loss, d = wp * pt.dlogp, dr = wp * pt.dr;
      if (p.beta != 0.f) {
        double k, dk;
        aha_common::kl_term<double>(ref[i], lp, &k, &dk);
        const double bw = (double)p.beta * w[i];
        if (p.bias_kl) { l += bw * k * r; d += bw * dk * r; dr += bw * k; }
        else { l += bw * k; d += bw * dk; }
      }
      total += l;
      if (p.seq) G += dr;
      else d += dr * r;
      if (dlogp) dlogp[i] = (float)(gout * d);
    }
    if (p.seq && dlogp) {
      const double g = gout * G * rb / std::max(n, 1.0);  // ∂r_b/∂logp_t = r_b / n on the row's valid tokens
      for (long t = 0; t < T; t++) if (w[o + t] != 0.f) dlogp[o + t] = (float)(dlogp[o + t] + g);
    }
  }
  if (out) *out = (float)total;
  return total;
}

}  // namespace aha
