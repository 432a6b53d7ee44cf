// The GRPO-family loss over rows of completion tokens and its gradient in the token log-probs, as
// native/cpu/grpo_loss.cpp computes it (in float, sums in double across rows): one block per row does the row's
// reductions (valid tokens, GSPO's mean log-ratio, the off-policy mask) and its tokens; the entropy threshold of
// top_entropy_quantile is a radix select over the valid tokens in one block before it. Nothing syncs unless the
// caller asks for the value back, so a captured training graph can hold it.
#include "common.cuh"

namespace aha_cuda {

using aha_common::GrpoVariant;

// floats as unsigned keys in the same order (negatives flipped)
__device__ __forceinline__ unsigned ord_key(float x) {
  unsigned u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_float(unsigned k) { return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k); }

// the key of the k-th smallest (0-based) x over w != 0: four 8-bit radix passes, one block
__device__ unsigned select_kth(const float* x, const float* w, long n, unsigned k, unsigned* hist /* [256] */, unsigned* st /* [2] */) {
  unsigned prefix = 0, prefixMask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = threadIdx.x; d < 256; d += blockDim.x) hist[d] = 0;
    __syncthreads();
    for (long i = threadIdx.x; i < n; i += blockDim.x) {
      if (w[i] == 0.f) continue;
      unsigned key = ord_key(x[i]);
      if ((key & prefixMask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned cum = 0, d = 0;
      for (; d < 255; d++) { if (cum + hist[d] > k) break; cum += hist[d]; }
      st[0] = d;
      st[1] = k - cum;
    }
    __syncthreads();
    prefix |= st[0] << shift;
    prefixMask |= 255u << shift;
    k = st[1];
    __syncthreads();
  }
  return prefix;
}

// out[0] = the linear q-quantile of x over w != 0 (+inf when there are none), as torch.quantile
__global__ void masked_quantile_kernel(float* out, const float* x, const float* w, long n, double q) {
  __shared__ unsigned hist[256];
  __shared__ unsigned st[2];
  __shared__ float sh[32];
  float c = 0.f;
  for (long i = threadIdx.x; i < n; i += blockDim.x) c += w[i] != 0.f ? 1.f : 0.f;
  long cnt = (long)block_sum(c, sh);
  if (cnt == 0) { if (threadIdx.x == 0) *out = INFINITY; return; }
  long lo;
  double frac;
  aha_common::quantile_position(cnt, q, &lo, &frac);
  float a = key_float(select_kth(x, w, n, (unsigned)lo, hist, st));
  float v = a;
  if (frac > 0) v = aha_common::lerp(a, key_float(select_kth(x, w, n, (unsigned)lo + 1, hist, st)), (float)frac);
  if (threadIdx.x == 0) *out = v;
}

// one block per row of T tokens
__global__ void grpo_loss_rows_kernel(double* total, float* dlogp, const float* logp, const float* old, const float* ref, const float* adv,
                                      const float* w, const float* entropy, const float* thr, long T, GrpoVariant p, float gout) {
  __shared__ float sh[32];
  const long o = blockIdx.x * T;
  float n = 0.f, s = 0.f;
  for (long t = threadIdx.x; t < T; t += blockDim.x) if (w[o + t] != 0.f) { n += 1.f; s += logp[o + t] - old[o + t]; }
  n = block_sum(n, sh);
  s = block_sum(s, sh);
  const float mean = s / fmaxf(n, 1.f), A = adv[o], rb = expf(mean);
  const float keepRow = (!p.off_policy || A >= 0.f || -mean <= p.off_threshold) ? 1.f : 0.f;
  const bool entMask = thr != nullptr;
  const float th = entMask ? *thr : 0.f;
  float loss = 0.f, G = 0.f;
  for (long t = threadIdx.x; t < T; t += blockDim.x) {
    const long i = o + t;
    if (w[i] == 0.f) { if (dlogp) dlogp[i] = 0.f; continue; }
    const float lp = logp[i], r = p.seq ? rb : expf(lp - old[i]);
    const float wp = w[i] * keepRow * ((entMask && !(entropy[i] >= th)) ? 0.f : 1.f);
    const auto pt = aha_common::policy_term<float>(p, r, adv[i], lp);
    float l = wp * pt.loss, d = wp * pt.dlogp, dr = wp * pt.dr;
    if (p.beta != 0.f) {
      float k, dk;
      aha_common::kl_term<float>(ref[i], lp, &k, &dk);
      const float bw = p.beta * w[i];
      if (p.bias_kl) { l += bw * k * r; d += bw * dk * r; dr += bw * k; }
      else { l += bw * k; d += bw * dk; }
    }
    loss += l;
    if (p.seq) G += dr;
    else d += dr * r;
    if (dlogp) dlogp[i] = gout * d;
  }
  loss = block_sum(loss, sh);
  G = block_sum(G, sh);
  if (p.seq && dlogp) {
    const float g = gout * G * rb / fmaxf(n, 1.f);  // ∂r_b/∂logp_t = r_b / n on the row's valid tokens
    for (long t = threadIdx.x; t < T; t += blockDim.x) if (w[o + t] != 0.f) dlogp[o + t] += g;
  }
  if (threadIdx.x == 0) atomicAdd(total, (double)loss);
}

__global__ void store_f32_kernel(float* out, const double* v) { *out = (float)*v; }

double grpo_loss(float* dlogp, const float* logp, const float* old, const float* ref, const float* adv, const float* w,
                 const float* entropy, long rows, long T, const GrpoVariant& p, float gout, float* out) {
  Scratch acc(8);
  const bool entMask = entropy && p.entropy_q < 1.f;
  Scratch thr(entMask ? 4 : 0);
  CK(cudaMemsetAsync(acc.p, 0, 8, stream()));
  if (rows > 0 && T > 0) {
    if (entMask) {
      masked_quantile_kernel<<<1, 256, 0, stream()>>>(thr.as<float>(), entropy, w, rows * T, 1.0 - (double)p.entropy_q);
      check_launch("grpo_loss entropy quantile");
    }
    grpo_loss_rows_kernel<<<(unsigned)rows, 256, 0, stream()>>>(acc.as<double>(), dlogp, logp, old, ref, adv, w, entropy,
                                                                entMask ? thr.as<float>() : nullptr, T, p, gout);
    check_launch("grpo_loss");
  }
  if (out) {  // the total stays on the device: no sync (a captured graph cannot have one)
    store_f32_kernel<<<1, 1, 0, stream()>>>(out, acc.as<double>());
    check_launch("grpo_loss store");
    return 0;
  }
  return fetch_double(acc.as<double>());
}

}  // namespace aha_cuda
