// Causal grouped-query attention on the CPU: one (batch, head, query) row at a time, scores for that row only
// (never a T x S matrix in memory), with key padding mask, sliding window and optional soft-capping.
// Backward recomputes probabilities from the saved log-sum-exp. Rows whose keys are all masked (padding
// queries) produce zeros.
#include "kernels.h"
#include "threadpool.h"
#include <algorithm>
#include <vector>

namespace aha {

namespace {
inline bool allowed(long qi, long j, long off, long window, const int32_t* km) {
  long pos = qi + off;
  if (j > pos) return false;
  if (window > 0 && pos - j >= window) return false;
  if (km && km[j] == 0) return false;
  return true;
}
}  // namespace

void attention_forward(float* o, float* lse, const float* q, const float* k, const float* v, const int32_t* keyMask,
                       long B, long T, long S, long Hq, long Hkv, long D, long kvStrideB, float scale, long window, float softcap,
                       uint16_t* o16, int dtKV) {
  std::vector<float> k32, v32;  // a bf16 cache's keys and values, widened (exactly) to f32 first
  if (dtKV != F32) {
    const long n = (B - 1) * kvStrideB + S * Hkv * D;
    k32.resize(n); v32.resize(n);
    convert_row(k32.data(), k, dtKV, 0, n);
    convert_row(v32.data(), v, dtKV, 0, n);
    k = k32.data(); v = v32.data();
  }
  const long group = Hq / Hkv, off = S - T;
  parallel_for(B * Hq, [&](long bh) {
    long b = bh / Hq, h = bh % Hq, hk = h / group;
    thread_local std::vector<float> sc;
    sc.resize(S);
    const int32_t* km = keyMask ? keyMask + b * S : nullptr;
    const float* kb = k + b * kvStrideB;
    const float* vb = v + b * kvStrideB;
    for (long i = 0; i < T; i++) {
      const float* qr = q + ((b * T + i) * Hq + h) * D;
      float* orow = o + ((b * T + i) * Hq + h) * D;
      float mx = -INFINITY;
      long lo = window > 0 ? std::max(0L, i + off - window + 1) : 0, hi = std::min(S, i + off + 1);
      for (long j = lo; j < hi; j++) {
        if (km && km[j] == 0) { sc[j] = -INFINITY; continue; }
        float s = dot(qr, kb + (j * Hkv + hk) * D, D) * scale;
        if (softcap > 0) s = softcap * std::tanh(s / softcap);
        sc[j] = s;
        mx = std::max(mx, s);
      }
      std::fill(orow, orow + D, 0.f);
      if (mx == -INFINITY) { if (lse) lse[(b * Hq + h) * T + i] = -INFINITY; continue; }
      double sum = 0;
      for (long j = lo; j < hi; j++) {
        if (sc[j] == -INFINITY) continue;
        float p = std::exp(sc[j] - mx);
        sum += p;
        const float* vr = vb + (j * Hkv + hk) * D;
        for (long d = 0; d < D; d++) orow[d] += p * vr[d];
      }
      float inv = (float)(1.0 / sum);
      for (long d = 0; d < D; d++) orow[d] *= inv;
      if (lse) lse[(b * Hq + h) * T + i] = mx + (float)std::log(sum);
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
