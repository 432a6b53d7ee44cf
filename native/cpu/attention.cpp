// Causal grouped-query attention on the CPU: one (batch, head, query) row at a time, scores for that row only
// (never a T x S matrix in memory), with key padding mask, sliding window and optional soft-capping.
// Backward recomputes probabilities from the saved log-sum-exp. Rows whose keys are all masked (padding
// queries) produce zeros.
#include "kernels.h"
#include "threadpool.h"
#include <algorithm>
#include <vector>

namespace aha {

void attention_forward(float* o, float* lse, const float* q, const float* k, const float* v, const int32_t* keyMask,
                       long B, long T, long S, long Hq, long Hkv, long D, long kvStrideB, float scale, long window, float softcap,
                       uint16_t* o16, int dtKV) {
  const IsaKernels& ik = isa();
  const long group = Hq / Hkv, off = S - T, es = dtKV == F32 ? 4 : 2;  // (a bf16 cache's rows are widened as read)
  parallel_for(B * Hq, [&](long bh) {
    long b = bh / Hq, h = bh % Hq, hk = h / group;
    thread_local std::vector<float> sc;
    sc.resize(S);
    const int32_t* km = keyMask ? keyMask + b * S : nullptr;
    const char* kb = (const char*)k + (b * kvStrideB + hk * D) * es;
    const char* vb = (const char*)v + (b * kvStrideB + hk * D) * es;
    for (long i = 0; i < T; i++) {
      const long lo = window > 0 ? std::max(0L, i + off - window + 1) : 0, hi = std::min(S, i + off + 1);
      const float L = ik.attn_row(o + ((b * T + i) * Hq + h) * D, q + ((b * T + i) * Hq + h) * D, kb, vb, dtKV, Hkv * D, D, lo, hi, km, scale,
                                  softcap, sc.data());
      if (lse) lse[(b * Hq + h) * T + i] = L;
    }
  });
  if (o16) for (long i = 0; i < B * T * Hq * D; i++) o16[i] = f32_to_bf16(o[i]);
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* o, const float* lse,
                        const float* q, const float* k, const float* v, const int32_t* keyMask,
                        long B, long T, long S, long Hq, long Hkv, long D, float scale, long window, float softcap) {
  const long group = Hq / Hkv, off = S - T;
  // one task per (batch, kv head): it owns dk/dv of that head, and dq of the query heads of its group
  parallel_for(B * Hkv, [&](long bk) {
    long b = bk / Hkv, hk = bk % Hkv;
    const int32_t* km = keyMask ? keyMask + b * S : nullptr;
    for (long h = hk * group; h < (hk + 1) * group; h++) {
      for (long i = 0; i < T; i++) {
        float L = lse[(b * Hq + h) * T + i];
        if (L == -INFINITY) continue;
        const float* qr = q + ((b * T + i) * Hq + h) * D;
        const float* dor = dout + ((b * T + i) * Hq + h) * D;
        const float* orow = o + ((b * T + i) * Hq + h) * D;
        float* dqr = dq + ((b * T + i) * Hq + h) * D;
        float Di = dot(dor, orow, D);
        long lo = window > 0 ? std::max(0L, i + off - window + 1) : 0, hi = std::min(S, i + off + 1);
        for (long j = lo; j < hi; j++) {
          if (km && km[j] == 0) continue;
          const float* kr = k + ((b * S + j) * Hkv + hk) * D;
          const float* vr = v + ((b * S + j) * Hkv + hk) * D;
          float raw = dot(qr, kr, D) * scale, s = raw, dcap = 1.f;
          if (softcap > 0) { float t = std::tanh(raw / softcap); s = softcap * t; dcap = 1.f - t * t; }
          float p = std::exp(s - L);
          float dp = dot(dor, vr, D);
          float ds = p * (dp - Di) * dcap * scale;
          float* dkr = dk + ((b * S + j) * Hkv + hk) * D;
          float* dvr = dv + ((b * S + j) * Hkv + hk) * D;
          for (long d = 0; d < D; d++) {
            dqr[d] += ds * kr[d];
            dkr[d] += ds * qr[d];
            dvr[d] += p * dor[d];
          }
        }
      }
    }
  });
}

}  // namespace aha
