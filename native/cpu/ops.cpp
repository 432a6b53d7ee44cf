// Small CPU kernels: norms, rotary, gated activations, embedding, elementwise, copies, AdamW.
// Rows are split across the thread pool where the work is large enough to pay for it.
#include "kernels.h"
#include "../common/dropout_hash.h"
#include "threadpool.h"
#include <algorithm>
#include <cmath>

namespace aha {

namespace {
// run fn(i0, i1) over [0, n) in chunks of at least `grain`
template <class F> void chunked(long n, long grain, F fn) {
  long chunks = std::max(1L, std::min((n + grain - 1) / grain, 64L));
  if (chunks == 1) { fn(0L, n); return; }
  long per = (n + chunks - 1) / chunks;
  parallel_for(chunks, [&](long c) { long a = c * per, b = std::min(n, a + per); if (a < b) fn(a, b); });
}
}  // namespace

void rms_norm_forward(float* y, float* rstd, const float* x, const float* w, long N, long C, float eps, float offset, uint16_t* y16) {
  chunked(N, std::max(1L, 16384 / std::max(1L, C)), [&](long a, long b) {
    for (long n = a; n < b; n++) {
      const float* xr = x + n * C;
      double ss = 0;
      for (long c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
      float r = 1.0f / std::sqrt((float)(ss / C) + eps);
      if (rstd) rstd[n] = r;
      float* yr = y + n * C;
      for (long c = 0; c < C; c++) yr[c] = xr[c] * r * (w ? (w[c] + offset) : 1.0f);
      if (y16) for (long c = 0; c < C; c++) y16[n * C + c] = f32_to_bf16(yr[c]);
    }
  });
}

void rms_norm_backward(float* dx, float* dw, const float* dy, const float* x, const float* rstd, const float* w,
                       long N, long C, float offset) {
  if (dx) {
    chunked(N, std::max(1L, 16384 / std::max(1L, C)), [&](long a, long b) {
      for (long n = a; n < b; n++) {
        const float *xr = x + n * C, *dyr = dy + n * C;
        float r = rstd[n];
        double dot = 0;
        for (long c = 0; c < C; c++) dot += (double)dyr[c] * (w ? (w[c] + offset) : 1.0f) * xr[c] * r;
        float m = (float)(dot / C);
        float* dxr = dx + n * C;
        for (long c = 0; c < C; c++) dxr[c] += r * (dyr[c] * (w ? (w[c] + offset) : 1.0f) - xr[c] * r * m);
      }
    });
  }
  if (dw) {
    chunked(C, 64, [&](long a, long b) {
      for (long n = 0; n < N; n++) {
        const float *xr = x + n * C, *dyr = dy + n * C;
        float r = rstd[n];
        for (long c = a; c < b; c++) dw[c] += dyr[c] * xr[c] * r;
      }
    });
  }
}

void rope_forward(float* y, const float* x, const float* cs, const float* sn, long N, long H, long D, long rot, bool inverse,
                  float* y2, const float* x2, long H2) {
  long half = rot / 2;
  auto rows = [&](float* y, const float* x, long H, long n, const float* c, const float* s) {
    for (long h = 0; h < H; h++) {
      const float* xr = x + (n * H + h) * D;
      float* yr = y + (n * H + h) * D;
      for (long i = 0; i < half; i++) {
        float x1 = xr[i], x2 = xr[i + half], si = inverse ? -s[i] : s[i];
        yr[i] = x1 * c[i] - x2 * si;
        yr[i + half] = x2 * c[i] + x1 * si;
      }
      if (y != x) for (long i = rot; i < D; i++) yr[i] = xr[i];
    }
  };
  chunked(N, 64, [&](long a, long b) {
    for (long n = a; n < b; n++) {
      const float *c = cs + n * half, *s = sn + n * half;
      rows(y, x, H, n, c, s);
      if (y2) rows(y2, x2, H2, n, c, s);
    }
  });
}

namespace {
inline float act_df(float g, int act) {
  if (act == 0) { float s = 1.0f / (1.0f + std::exp(-g)); return s * (1.0f + g * (1.0f - s)); }
  float inner = GELU_K * (g + 0.044715f * g * g * g), t = std::tanh(inner);
  return 0.5f * (1.0f + t) + 0.5f * g * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * 0.044715f * g * g);
}
}  // namespace

void glu_forward(float* out, const float* g, const float* u, long n, int act, uint16_t* out16) {
  chunked(n, 1 << 14, [&](long a, long b) {
    for (long i = a; i < b; i++) out[i] = act_f(g[i], act) * u[i];
    if (out16) for (long i = a; i < b; i++) out16[i] = f32_to_bf16(out[i]);
  });
}

void glu_backward(float* dg, float* du, const float* dout, const float* g, const float* u, long n, int act) {
  chunked(n, 1 << 14, [&](long a, long b) {
    for (long i = a; i < b; i++) {
      if (dg) dg[i] += dout[i] * u[i] * act_df(g[i], act);
      if (du) du[i] += dout[i] * act_f(g[i], act);
    }
  });
}

void scatter_rows(void* dst, const float* src, const int32_t* rows, long N, long C, void* dst2, const float* src2, int dtDst) {
  auto put = [&](void* d, const float* s, long at) {
    if (dtDst == F32) std::memcpy((float*)d + at, s, C * 4);
    else for (long c = 0; c < C; c++) ((uint16_t*)d)[at + c] = f32_to_bf16(s[c]);
  };
  for (long n = 0; n < N; n++) {
    put(dst, src + n * C, (long)rows[n] * C);
    if (dst2) put(dst2, src2 + n * C, (long)rows[n] * C);
  }
}

void copy_rows(void* dst, const void* src, const int32_t* pairs, long N, long C, int esize, void* dst2, const void* src2) {
  const size_t row = (size_t)C * esize;
  for (long i = 0; i < N; i++) {
    std::memcpy((char*)dst + pairs[2 * i] * row, (const char*)src + pairs[2 * i + 1] * row, row);
    if (dst2) std::memcpy((char*)dst2 + pairs[2 * i] * row, (const char*)src2 + pairs[2 * i + 1] * row, row);
  }
}

void dropout_mask(float* out, const int32_t* seed, uint32_t salt, long n, float keep, float scale) {
  const uint32_t sd = (uint32_t)seed[0];
  chunked(n, 1 << 14, [&](long a, long b) { for (long i = a; i < b; i++) out[i] = aha_common::dropout_uniform(sd, salt, i) < keep ? scale : 0.f; });
}

void embedding_forward(float* out, const int32_t* ids, const void* table, int dt, long N, long C, long V) {
  chunked(N, 16, [&](long a, long b) {
    for (long n = a; n < b; n++) {
      long id = ids[n];
      if (id < 0 || id >= V) { std::fill(out + n * C, out + (n + 1) * C, NAN); continue; }
      convert_row(out + n * C, table, dt, id * C, C);
    }
  });
}

void embedding_backward(float* dtable, const float* dout, const int32_t* ids, long N, long C) {
  // split over columns so that repeated ids never race
  chunked(C, 64, [&](long a, long b) {
    for (long n = 0; n < N; n++) {
      float* d = dtable + (long)ids[n] * C;
      const float* s = dout + n * C;
      for (long c = a; c < b; c++) d[c] += s[c];
    }
  });
}

void binary(float* out, const float* a, const float* b, long n, long nb, int op) {
  chunked(n, 1 << 15, [&](long s, long e) {
    for (long i = s; i < e; i++) {
      float bv = b[nb == n ? i : i % nb];
      out[i] = op == 0 ? a[i] + bv : op == 1 ? a[i] - bv : a[i] * bv;
    }
  });
}

void scale(float* out, const float* a, float s, long n) {
  chunked(n, 1 << 15, [&](long x, long y) { for (long i = x; i < y; i++) out[i] = a[i] * s; });
}

void softcap(float* out, const float* x, float cap, long n) {
  chunked(n, 1 << 15, [&](long a, long b) { for (long i = a; i < b; i++) out[i] = cap * std::tanh(x[i] / cap); });
}

void sum_rows(float* out, const float* x, long R, long C, bool accumulate) {
  chunked(C, 256, [&](long a, long b) {
    for (long c = a; c < b; c++) {
      double s = 0;
      for (long r = 0; r < R; r++) s += x[r * C + c];
      out[c] = accumulate ? out[c] + (float)s : (float)s;
    }
  });
}

void copy2d(float* dst, const float* src, long rows, long width, long dStride, long sStride, bool accumulate) {
  chunked(rows, std::max(1L, 8192 / std::max(1L, width)), [&](long a, long b) {
    for (long r = a; r < b; r++) {
      float* d = dst + r * dStride;
      const float* s = src + r * sStride;
      if (accumulate) for (long c = 0; c < width; c++) d[c] += s[c];
      else std::memcpy(d, s, width * 4);
    }
  });
}

void adamw(float* p, float* m, float* v, const float* g, long n, float lr, float b1, float b2, float eps, float wd, long step) {
  float bc1 = 1.0f - std::pow(b1, (float)step), bc2 = 1.0f - std::pow(b2, (float)step);
  chunked(n, 1 << 14, [&](long a, long b) {
    for (long i = a; i < b; i++) {
      p[i] -= lr * wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      p[i] -= lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
    }
  });
}

double sum_squares(const float* x, long n) {
  double s = 0;
  for (long i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

}  // namespace aha
