// sample_rows: draw one token per row of logits [B, V] on the device that holds them, so generation copies back
// B token ids and B log-probs instead of the whole [B, V] logits. The CPU reference of native/cuda/sample.cu.
// Per row: p = exp((x − max) / temperature) rounded to f32 (pmax = 1); kept = {p ≥ τ, p > 0} with
// τ = min(1, max(τ_k, τ_p, minP)); τ_k / τ_p found exactly by a bit-by-bit binary search over the f32 bit
// patterns of p (no sort): τ_k = the largest τ with count(p ≥ τ) ≥ k, τ_p = the largest τ with
// mass(p ≥ max(τ, τ_k)) ≥ topP · mass(p ≥ τ_k) (top-p renormalised after top-k, Hugging Face's order).
// Draw: the first kept index i (in index order) with u·S < Σ_{kept j ≤ i} p_j, S the kept mass (the last kept
// index if rounding leaves none); logprob = log(p_i / S). Temperature ≤ 0 is greedy: the argmax of the raw
// logits (lowest index on ties) with the log-softmax of the raw logits there.
// Differs from src/generate/sampler.ts only on exact ties at a threshold (all tied tokens are kept) and by the
// f32 rounding of p. Masses are accumulated in double. Not handled: NaN logits.
#include "kernels.h"
#include "threadpool.h"
#include <vector>

namespace aha {

namespace {
// the largest f32 τ ≥ 0 (as a bit pattern below 2.0) for which pred(τ) holds; pred must be monotone (true, then
// false as τ grows) and true at 0. Bits 29 … 0: every p ≤ 1 < 2.0, so bit 30 is never needed.
template <class Pred> float search_threshold(Pred pred) {
  uint32_t bits = 0;
  for (int b = 29; b >= 0; b--) {
    uint32_t cand = bits | (1u << b);
    float t;
    std::memcpy(&t, &cand, 4);
    if (pred(t)) bits = cand;
  }
  float t;
  std::memcpy(&t, &bits, 4);
  return t;
}

// The values p ≥ max(floor, lo) in index order, lo the largest power of two whose suffix of an exponent histogram
// still satisfies ok(count, mass): the searched τ is ≥ lo, so searching these alone gives the same τ in far fewer
// operations (a CPU shortcut; the GPU searches the whole row).
template <class Ok> void candidates(std::vector<float>& cand, const float* p, long V, float floor, Ok ok) {
  long cnt[256] = {0};
  double mass[256] = {0};
  for (long v = 0; v < V; v++) {
    if (!(p[v] >= floor)) continue;
    uint32_t b;
    std::memcpy(&b, &p[v], 4);
    cnt[b >> 23]++;
    mass[b >> 23] += p[v];
  }
  long c = 0;
  double m = 0;
  uint32_t lo = 0;
  for (int e = 255; e > 0; e--) {
    c += cnt[e]; m += mass[e];
    if (ok(c, m)) { lo = (uint32_t)e << 23; break; }
  }
  float t;
  std::memcpy(&t, &lo, 4);
  if (floor > t) t = floor;
  cand.clear();
  for (long v = 0; v < V; v++) if (p[v] >= t) cand.push_back(p[v]);
}

void sample_row(int32_t* token, float* logprob, float* p, std::vector<float>& cand, const float* x, float u, long V,
                float temperature, long topK, float topP, float minP) {
  // max and argmax (lowest index on ties)
  long best = 0;
  for (long v = 1; v < V; v++) if (x[v] > x[best]) best = v;
  const double m = x[best];
  if (!(temperature > 0)) {
    double s = 0;
    for (long v = 0; v < V; v++) s += std::exp((double)x[v] - m);
    *token = (int32_t)best;
    *logprob = (float)((double)x[best] - m - std::log(s));
    return;
  }
  const double T = temperature;
  for (long v = 0; v < V; v++) p[v] = (float)std::exp(((double)x[v] - m) / T);  // p[best] = 1
  float tk = 0.f, tp = 0.f;
  if (topK > 0 && topK < V) {
    candidates(cand, p, V, 0.f, [&](long c, double) { return c >= topK; });
    tk = search_threshold([&](float t) {
      long c = 0;
      for (float q : cand) c += q >= t;
      return c >= topK;
    });
  }
  if (topP < 1.f) {
    double total = 0;
    for (long v = 0; v < V; v++) if (p[v] >= tk) total += p[v];
    const double target = (double)topP * total;
    // margin: the histogram sums in another order than the search, and τ_p must not fall below lo by rounding
    candidates(cand, p, V, tk, [&](long, double m) { return m >= target * (1 + 1e-9); });
    tp = search_threshold([&](float t) {
      const float th = t > tk ? t : tk;
      double s = 0;
      for (float q : cand) if (q >= th) s += q;
      return s >= target;
    });
  }
  float tau = tk > tp ? tk : tp;
  if (minP > tau) tau = minP;  // minP · pmax, pmax = 1
  if (tau > 1.f) tau = 1.f;    // the top token is always kept
  // inverse CDF in index order over the kept tokens
  double S = 0;
  long last = best;
  for (long v = 0; v < V; v++) if (p[v] >= tau && p[v] > 0) { S += p[v]; last = v; }
  const double target = (double)u * S;
  double acc = 0;
  long tok = last;
  for (long v = 0; v < V; v++) {
    if (!(p[v] >= tau && p[v] > 0)) continue;
    acc += p[v];
    if (target < acc) { tok = v; break; }
  }
  *token = (int32_t)tok;
  *logprob = (float)(std::log((double)p[tok]) - std::log(S));
}
}  // namespace

void sample_rows(int32_t* tokens, float* logprobs, const float* logits, const float* uniforms, long B, long V,
                 float temperature, long topK, float topP, float minP) {
  parallel_for(B, [&](long r) {
    thread_local std::vector<float> p, cand;
    if ((long)p.size() < V) p.resize(V);
    sample_row(tokens + r, logprobs + r, p.data(), cand, logits + r * V, uniforms[r], V, temperature, topK, topP, minP);
  });
}

// Hugging Face's repetition penalty, in place: logits[b, t] divided by penalty where positive, else multiplied, for
// each token t listed in row b of ids [B, L] (each once; -1 pads). Before sample_rows, as its processors come first.
void repetition_penalty(float* logits, const int32_t* ids, long B, long V, long L, float penalty) {
  for (long b = 0; b < B; b++)
    for (long j = 0; j < L; j++) {
      const long t = ids[b * L + j];
      if (t < 0 || t >= V) continue;
      float& z = logits[b * V + t];
      z = z > 0 ? z / penalty : z * penalty;
    }
}

}  // namespace aha
