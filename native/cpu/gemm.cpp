// Cache-blocked, multi-threaded float32 GEMM with a 6 x (2 vectors) register micro-kernel (GCC vector extensions:
// 6x32 with AVX-512, 6x16 with AVX2, as -march=native allows). Operands are packed into panels per (MC x KC) and (KC x NC)
// block, converting bf16/f16 weights to float32 while packing, so transposes and dtypes cost one pass each.
// Each output tile is computed by one thread in a fixed order: results do not depend on the thread count.
// Not a BLAS: no complex types, no column-major API; just what the engine needs.
#include "kernels.h"
#include "threadpool.h"
#include <algorithm>
#include <vector>

namespace aha {

namespace {
#if defined(__AVX512F__)
constexpr long VW = 16;  // floats per vector register
#else
constexpr long VW = 8;
#endif
constexpr long MR = 6, NR = 2 * VW, MC = 96, NC = 256, KC = 256;
typedef float v8 __attribute__((vector_size(VW * 4)));

inline v8 loadv(const float* p) { v8 v; std::memcpy(&v, p, sizeof(v8)); return v; }
inline void storev(float* p, v8 v) { std::memcpy(p, &v, sizeof(v8)); }

// acc[MR x NR] += Ap[kc x MR] * Bp[kc x NR]
inline void micro_kernel(long kc, const float* __restrict Ap, const float* __restrict Bp, float* __restrict acc) {
  v8 c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {}, c40 = {}, c41 = {}, c50 = {}, c51 = {};
  for (long k = 0; k < kc; k++) {
    v8 b0 = loadv(Bp + k * NR), b1 = loadv(Bp + k * NR + VW);
    const float* a = Ap + k * MR;
    v8 a0 = (v8){} + a[0], a1 = (v8){} + a[1], a2 = (v8){} + a[2], a3 = (v8){} + a[3], a4 = (v8){} + a[4], a5 = (v8){} + a[5];
    c00 += a0 * b0; c01 += a0 * b1; c10 += a1 * b0; c11 += a1 * b1; c20 += a2 * b0; c21 += a2 * b1;
    c30 += a3 * b0; c31 += a3 * b1; c40 += a4 * b0; c41 += a4 * b1; c50 += a5 * b0; c51 += a5 * b1;
  }
  storev(acc + 0 * VW, c00); storev(acc + 1 * VW, c01); storev(acc + 2 * VW, c10); storev(acc + 3 * VW, c11);
  storev(acc + 4 * VW, c20); storev(acc + 5 * VW, c21); storev(acc + 6 * VW, c30); storev(acc + 7 * VW, c31);
  storev(acc + 8 * VW, c40); storev(acc + 9 * VW, c41); storev(acc + 10 * VW, c50); storev(acc + 11 * VW, c51);
}

// pack A[i0:i0+mc, k0:k0+kc] into panels of MR rows: Ap[p][k][r]
void pack_A(float* Ap, const float* A, long lda, bool transA, long i0, long mc, long k0, long kc) {
  for (long p = 0; p < mc; p += MR) {
    float* dst = Ap + p * kc;
    long rows = std::min(MR, mc - p);
    for (long k = 0; k < kc; k++) {
      for (long r = 0; r < MR; r++) {
        float v = 0.f;
        if (r < rows) {
          long i = i0 + p + r, kk = k0 + k;
          v = transA ? A[kk * lda + i] : A[i * lda + kk];
        }
        dst[k * MR + r] = v;
      }
    }
  }
}

// pack B[k0:k0+kc, j0:j0+nc] into panels of NR columns: Bp[q][k][c]
void pack_B(float* Bp, const void* B, int dt, long ldb, bool transB, long k0, long kc, long j0, long nc) {
  float row[NR];
  for (long q = 0; q < nc; q += NR) {
    float* dst = Bp + q * kc;
    long cols = std::min(NR, nc - q);
    if (!transB) {
      for (long k = 0; k < kc; k++) {
        long base = (k0 + k) * ldb + j0 + q;
        if (dt == F32) std::memcpy(row, (const float*)B + base, cols * 4);
        else convert_row(row, B, dt, base, cols);
        for (long c = cols; c < NR; c++) row[c] = 0.f;
        std::memcpy(dst + k * NR, row, NR * 4);
      }
    } else {
      // B stored [N, K]: column j of op(B) is row j of storage
      for (long c = 0; c < NR; c++) {
        if (c < cols) {
          long base = (j0 + q + c) * ldb + k0;
          if (dt == F32) {
            const float* s = (const float*)B + base;
            for (long k = 0; k < kc; k++) dst[k * NR + c] = s[k];
          } else {
            float tmp[KC];
            convert_row(tmp, B, dt, base, kc);
            for (long k = 0; k < kc; k++) dst[k * NR + c] = tmp[k];
          }
        } else {
          for (long k = 0; k < kc; k++) dst[k * NR + c] = 0.f;
        }
      }
    }
  }
}
}  // namespace

void convert_row(float* dst, const void* src, int dt, long i0, long n) {
  if (dt == BF16) {
    const uint16_t* s = (const uint16_t*)src + i0;
    for (long i = 0; i < n; i++) { uint32_t u = (uint32_t)s[i] << 16; std::memcpy(dst + i, &u, 4); }
  } else if (dt == F16) {
    const uint16_t* s = (const uint16_t*)src + i0;
    for (long i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
  } else if (dt == I32) {
    const int32_t* s = (const int32_t*)src + i0;
    for (long i = 0; i < n; i++) dst[i] = (float)s[i];
  } else {
    std::memcpy(dst, (const float*)src + i0, n * 4);
  }
}

void gemm(float* C, const float* A, const void* B, int dtB, long batch, long M, long N, long K,
          bool transA, bool transB, long lda, long ldb, long ldc, long strideA, long strideB, long strideC,
          float alpha, float beta) {
  const long tilesM = (M + MC - 1) / MC, tilesN = (N + NC - 1) / NC;
  const long tiles = batch * tilesM * tilesN;
  const size_t bElem = dtB == F32 ? 4 : 2;
  parallel_for(tiles, [&](long t) {
    thread_local std::vector<float> Ap, Bp;
    Ap.resize(MC * KC);
    Bp.resize(KC * NC);
    long b = t / (tilesM * tilesN), r = t % (tilesM * tilesN);
    long i0 = (r / tilesN) * MC, j0 = (r % tilesN) * NC;
    long mc = std::min(MC, M - i0), nc = std::min(NC, N - j0);
    const float* Ab = A + b * strideA;
    const void* Bb = (const char*)B + (size_t)(b * strideB) * bElem;
    float* Cb = C + b * strideC;
    // C tile = beta * C tile
    for (long i = 0; i < mc; i++) {
      float* c = Cb + (i0 + i) * ldc + j0;
      if (beta == 0.f) std::memset(c, 0, nc * 4);
      else if (beta != 1.f) for (long j = 0; j < nc; j++) c[j] *= beta;
    }
    float acc[MR * NR];
    for (long k0 = 0; k0 < K; k0 += KC) {
      long kc = std::min(KC, K - k0);
      pack_A(Ap.data(), Ab, lda, transA, i0, mc, k0, kc);
      pack_B(Bp.data(), Bb, dtB, ldb, transB, k0, kc, j0, nc);
      for (long q = 0; q < nc; q += NR) {
        long cols = std::min(NR, nc - q);
        for (long p = 0; p < mc; p += MR) {
          long rows = std::min(MR, mc - p);
          micro_kernel(kc, Ap.data() + p * kc, Bp.data() + q * kc, acc);
          for (long i = 0; i < rows; i++) {
            float* c = Cb + (i0 + p + i) * ldc + j0 + q;
            const float* a = acc + i * NR;
            for (long j = 0; j < cols; j++) c[j] += alpha * a[j];
          }
        }
      }
    }
  });
}

void convert(void* dst, int dtDst, const void* src, int dtSrc, long n) {
  if (dtDst == F32) { convert_row((float*)dst, src, dtSrc, 0, n); return; }
  uint16_t* d = (uint16_t*)dst;
  float tmp[256];
  for (long i0 = 0; i0 < n; i0 += 256) {
    const long m = std::min(256L, n - i0);
    convert_row(tmp, src, dtSrc, i0, m);
    for (long i = 0; i < m; i++) d[i0 + i] = f32_to_bf16(tmp[i]);
  }
}

}  // namespace aha
