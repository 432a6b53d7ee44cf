// Fused lm-head + log-softmax + gather of the chosen token, in chunks of rows: the [N, V] logits are never stored
// whole (a [chunk, V] scratch per call), as ../shared/ARCHITECTURE.md writes out. Backward recomputes each chunk.
#include "kernels.h"
#include "threadpool.h"
#include <algorithm>
#include <vector>

namespace aha {

namespace {
constexpr long CHUNK = 32;
// z[rows, V] = softcap(h W^T) * invTemp; returns nothing, tanh saved in z if softcap (recomputed in backward)
void chunk_logits(float* z, const float* h, const void* W, int dtW, long rows, long C, long V, float invTemp, float softcap) {
  gemm(z, h, W, dtW, 1, rows, V, C, false, true, C, C, V, 0, 0, 0, softcap > 0 ? 1.0f : invTemp, 0.0f);
  if (softcap > 0) {
    long n = rows * V;
    for (long i = 0; i < n; i++) z[i] = softcap * std::tanh(z[i] / softcap) * invTemp;
  }
}
}  // namespace

void lm_logp_forward(float* logp, float* lse, float* entropy, const float* h, const void* W, int dtW,
                     const int32_t* targets, long N, long C, long V, float invTemp, float softcap) {
  std::vector<float> z(CHUNK * V);
  for (long n0 = 0; n0 < N; n0 += CHUNK) {
    long rows = std::min(CHUNK, N - n0);
    chunk_logits(z.data(), h + n0 * C, W, dtW, rows, C, V, invTemp, softcap);
    parallel_for(rows, [&](long r) {
      const float* zr = z.data() + r * V;
      float mx = -INFINITY;
      for (long v = 0; v < V; v++) mx = std::max(mx, zr[v]);
      double s = 0, sz = 0;
      for (long v = 0; v < V; v++) { double e = std::exp((double)zr[v] - mx); s += e; sz += e * zr[v]; }
      float L = mx + (float)std::log(s);
      lse[n0 + r] = L;
      long y = targets[n0 + r];
      logp[n0 + r] = (y >= 0 && y < V) ? zr[y] - L : NAN;
      if (entropy) entropy[n0 + r] = (float)(L - sz / s);
    });
  }
}

void lm_logp_backward(float* dh, float* dW, const float* dlogp, const float* lse, const float* h, const void* W, int dtW,
                      const int32_t* targets, long N, long C, long V, float invTemp, float softcap) {
  std::vector<float> z(CHUNK * V), raw;
  if (softcap > 0) raw.resize(CHUNK * V);
  for (long n0 = 0; n0 < N; n0 += CHUNK) {
    long rows = std::min(CHUNK, N - n0);
    if (softcap > 0) gemm(raw.data(), h + n0 * C, W, dtW, 1, rows, V, C, false, true, C, C, V, 0, 0, 0, 1.0f, 0.0f);
    chunk_logits(z.data(), h + n0 * C, W, dtW, rows, C, V, invTemp, softcap);
    // z <- dL/d(raw logits) = g (1[v=y] - p) * invTemp * softcap'
    parallel_for(rows, [&](long r) {
      float* zr = z.data() + r * V;
      float g = dlogp[n0 + r], L = lse[n0 + r];
      long y = targets[n0 + r];
      for (long v = 0; v < V; v++) {
        float d = g * ((v == y ? 1.f : 0.f) - std::exp(zr[v] - L)) * invTemp;
        if (softcap > 0) { float t = std::tanh(raw[r * V + v] / softcap); d *= 1.f - t * t; }
        zr[v] = d;
      }
    });
    // dh[rows, C] += dz[rows, V] W[V, C]
    gemm(dh + n0 * C, z.data(), W, dtW, 1, rows, C, V, false, false, V, C, C, 0, 0, 0, 1.0f, 1.0f);
    // dW[V, C] += dz^T[V, rows] h[rows, C]
    if (dW) gemm(dW, z.data(), h + n0 * C, F32, 1, V, C, rows, true, false, V, C, C, 0, 0, 0, 1.0f, 1.0f);
  }
}

}  // namespace aha
