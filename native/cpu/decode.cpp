// The decode path's fused kernels on the CPU (declared in kernels.h): the reference the CUDA ones (native/cuda/
// decode.cu) are tested against, and what the CPU backend runs for the same model code. Rows split over the pool.
#include "kernels.h"
#include "threadpool.h"
#include <algorithm>
#include <cmath>
#include <vector>

namespace aha {

namespace {
// the LoRA term of row m, output column n
inline float lora_term(const LoraUp& lo, long m, long n) {
  return lo.B ? lo.scale * dot(lo.t + m * lo.ldt, lo.B + n * lo.r, lo.r) : 0.f;
}
// rows [0, M) in parallel chunks
template <class F> void rows_parallel(long M, F fn) {
  long chunks = std::max(1L, std::min(M, 64L)), per = (M + chunks - 1) / chunks;
  if (chunks == 1) { fn(0L, M); return; }
  parallel_for(chunks, [&](long c) { for (long m = c * per; m < std::min(M, (c + 1) * per); m++) fn(m, m + 1); });
}
}  // namespace

void add_rms_norm(float* y, uint16_t* y16, float* h, const float* add, long ldAdd, LoraUp lo, const float* src, long ldSrc,
                  const float* Ain, long Kin, const float* w, long M, long C, float eps, float offset, float* tOut, const float* Aout,
                  long Rout, long tParts) {
  rows_parallel(M, [&](long a, long b) {
    std::vector<float> t(lo.B ? lo.r : 0);  // this row's t of the incoming branch
    for (long m = a; m < b; m++) {
      for (long j = 0; j < (long)t.size(); j++) {
        if (!lo.t) { t[j] = dot(src + m * ldSrc, Ain + j * Kin, Kin); continue; }
        float s = 0.f;
        for (long p = 0; p < tParts; p++) s += lo.t[m * lo.ldt + p * lo.r + j];
        t[j] = s;
      }
      for (long c = 0; c < C; c++) h[m * C + c] += (add ? add[m * ldAdd + c] : 0.f) + (lo.B ? lo.scale * dot(t.data(), lo.B + c * lo.r, lo.r) : 0.f);
    }
  });
  rms_norm_forward(y, nullptr, h, w, M, C, eps, offset, y16);
  if (Aout)
    rows_parallel(M, [&](long a, long b) {
      for (long m = a; m < b; m++)
        for (long j = 0; j < Rout; j++) tOut[m * Rout + j] = dot(y + m * C, Aout + j * C, C);
    });
}

void glu_lora(float* out, uint16_t* out16, const float* g, const float* u, long ld, LoraUp lg, LoraUp lu, long M, long I, int act,
              float* tOut, const float* Aout, long Rout) {
  const long nb = (I + kGluPartCols - 1) / kGluPartCols;
  rows_parallel(M, [&](long a, long b) {
    for (long m = a; m < b; m++) {
      for (long n = 0; n < I; n++) {
        float v = act_f(g[m * ld + n] + lora_term(lg, m, n), act) * (u[m * ld + n] + lora_term(lu, m, n));
        out[m * I + n] = v;
        if (out16) out16[m * I + n] = f32_to_bf16(v);
      }
      if (Aout)  // the partial down-projections, block by block of columns
        for (long p = 0; p < nb; p++) {
          const long n0 = p * kGluPartCols, w = std::min(kGluPartCols, I - n0);
          for (long j = 0; j < Rout; j++) tOut[(m * nb + p) * Rout + j] = dot(out + m * I + n0, Aout + j * I + n0, w);
        }
    }
  });
}

void qkv_rope_cache(float* qOut, void* kc, void* vc, int dtKV, const int32_t* rows, const float* yq, long ldq, const float* yk,
                    const float* yv, long ldkv, LoraUp lq, LoraUp lk, LoraUp lv, const float* qNorm, const float* kNorm, float eps,
                    float offset, const float* cs, const float* sn, long rot, long M, long Hq, long Hkv, long D) {
  const long half = rot / 2;
  rows_parallel(M, [&](long a, long b) {
    std::vector<float> x(D), o(D);
    for (long m = a; m < b; m++) {
      const float *c = cs + m * half, *s = sn + m * half;
      // head hh of section y (rows at stride ld, its LoRA term lo): the term added, normed, rotated, into o
      auto head = [&](const float* y, long ld, const LoraUp& lo, long hh, const float* nw, bool rotate) {
        for (long d = 0; d < D; d++) x[d] = y[m * ld + hh * D + d] + lora_term(lo, m, hh * D + d);
        if (nw) rms_norm_forward(x.data(), nullptr, x.data(), nw, 1, D, eps, offset);  // (in place: one row, no threads)
        o = x;
        if (rotate)
          for (long i = 0; i < half; i++) {
            o[i] = x[i] * c[i] - x[i + half] * s[i];
            o[i + half] = x[i + half] * c[i] + x[i] * s[i];
          }
      };
      auto put = [&](void* cache, long hh) {
        long at = (long)rows[m] * Hkv * D + hh * D;
        for (long d = 0; d < D; d++)
          if (dtKV == F32) ((float*)cache)[at + d] = o[d];
          else ((uint16_t*)cache)[at + d] = f32_to_bf16(o[d]);
      };
      for (long hh = 0; hh < Hq; hh++) {
        head(yq, ldq, lq, hh, qNorm, true);
        std::copy(o.begin(), o.end(), qOut + (m * Hq + hh) * D);
      }
      for (long hh = 0; hh < Hkv; hh++) {
        head(yk, ldkv, lk, hh, kNorm, true);
        put(kc, hh);
        head(yv, ldkv, lv, hh, nullptr, false);
        put(vc, hh);
      }
    }
  });
}

void qkv_attention_decode(float* o, uint16_t* o16, void* kc, void* vc, int dtKV, const int32_t* rows, const float* yq, long ldq,
                          const float* yk, const float* yv, long ldkv, LoraUp lq, LoraUp lk, LoraUp lv, const float* qNorm,
                          const float* kNorm, float eps, float offset, const float* cs, const float* sn, long rot, long B, long Hq,
                          long Hkv, long D, const int32_t* keyMask, long S, long kvStrideB, float scale, long window, float softcap) {
  std::vector<float> q(B * Hq * D), lse(B * Hq);
  qkv_rope_cache(q.data(), kc, vc, dtKV, rows, yq, ldq, yk, yv, ldkv, lq, lk, lv, qNorm, kNorm, eps, offset, cs, sn, rot, B, Hq, Hkv, D);
  attention_forward(o, lse.data(), q.data(), (const float*)kc, (const float*)vc, keyMask, B, 1, S, Hq, Hkv, D, kvStrideB, scale, window, softcap,
                    o16, dtKV);
}

}  // namespace aha
