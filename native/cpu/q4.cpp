// bitsandbytes 4-bit weights on the CPU: quantisation as ../shared/FORMATS.md §9 describes it (and as bitsandbytes
// does it), dequantisation, and GEMMs that read the 4-bit codes. What bitsandbytes does, exactly:
//   - blocks of 64 over the row-major flattened weight (the last one may be shorter), absmax = max |x| in f32;
//   - s = clamp(x · (1 / absmax), −1, 1) with absmax clamped to at least 1e-38 for the reciprocal (an all-zero
//     block gets the code of 0; bitsandbytes' CUDA kernel would divide by 0 there and store code 0, of value ±0 too);
//   - NF4: the nearest code by the f32 midpoints of the sorted table, a value on a midpoint to the lower code (the
//     torch backend's bucketize(right=False) and the CUDA kernel's `>` tree agree);
//   - FP4: as bitsandbytes' CUDA kernel (dQuantizeFP4) decides it: the sign bit from s < 0, the magnitude by its
//     thresholds (written there as rounded decimals), a value on one to the smaller magnitude;
//   - two codes per byte, the even element in the high nibble; an odd count padded with the code of 0;
//   - double quantisation: absmax − mean(absmax) quantised in blocks of 256 against the signed dynamic map
//     (quantize_blockwise: nearest by midpoints, ties to the lower code); dequantised as (code · nested) + offset,
//     two f32 roundings, as bitsandbytes' dequantize_blockwise then `absmax += offset`.
// The products: a panel of rows of W is dequantised (f32, rounded to the weight's dtype) into a buffer of at most
// kPanelFloats and multiplied by the CPU GEMM; a whole f32 or 16-bit copy of W never exists. Few rows (decode): one
// row of W at a time, dotted with every row of A, so each 4-bit code is read once.
#include "q4.h"
#include "kernels.h"
#include "threadpool.h"
#include <algorithm>
#include <cmath>
#include <vector>

namespace aha {

namespace {
constexpr long kPanelFloats = 1L << 20;  // a dequantised panel: 4 MiB
constexpr long kGemvRows = 4;            // M up to this: one W row at a time (each code read once)

const float kNF4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
                        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
                        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                        0.7229568362236023f, 1.0f};

// how many of the n sorted bounds lie strictly below s: bucketize(right=False), a value on a bound to the lower side
inline int bucket(float s, const float* bounds, int n) {
  int lo = 0, hi = n;
  while (lo < hi) {
    int mid = (lo + hi) >> 1;
    if (bounds[mid] < s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

struct NF4Bounds {
  float b[15];
  NF4Bounds() { for (int i = 0; i < 15; i++) b[i] = (kNF4[i] + kNF4[i + 1]) / 2; }
};
const NF4Bounds kNF4Bounds;

// bitsandbytes' dQuantizeFP4 (csrc/kernels.cu), its thresholds as written there
inline int fp4_code(float x) {
  const int sign = x < 0 ? 8 : 0;
  const float a = std::fabs(x);
  if (a > 0.29166667f) {
    if (a > 0.583333f) return (a > 0.8333333f ? 3 : 2) + sign;
    return (a > 0.4166667f ? 5 : 4) + sign;
  }
  if (a > 0.0859375f) return (a > 0.20833333f ? 7 : 6) + sign;
  return (a > 0.00260417f ? 1 : 0) + sign;
}

inline int code_of(float s, int type) { return type == FP4 ? fp4_code(s) : bucket(s, kNF4Bounds.b, 15); }

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
  if (a < 0x38800000u) {
    if (a < 0x33000000u) return (uint16_t)sign;
    uint32_t m = (a & 0x7fffffu) | 0x800000u, e = a >> 23, sh = 126 - e;
    uint32_t r = m >> sh, rem = m & ((1u << sh) - 1), half = 1u << (sh - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = a - 0x38000000u, out = r >> 13, rem = r & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (out & 1))) out++;
  return (uint16_t)(sign | out);
}

// v as a buffer of dtype dt holds it
inline float round_to(float v, int dt) {
  if (dt == BF16) return bf16_to_f32(f32_to_bf16(v));
  if (dt == F16) return f16_to_f32(f32_to_f16(v));
  return v;
}
}  // namespace

float q4_absmax(const Q4& w, long b) {
  if (!w.nested) return ((const float*)w.absmax)[b];
  volatile float scaled = w.ncode[((const uint8_t*)w.absmax)[b]] * w.nested[b / kQ4NestedBlock];  // (volatile: no fused multiply-add)
  return scaled + w.offset;
}

void q4_dequantize(float* out, const Q4& w, long i0, long count) {
  long i = i0, end = i0 + count;
  while (i < end) {
    const long b = i / kQ4Block, stop = std::min(end, (b + 1) * kQ4Block);
    const float am = q4_absmax(w, b);
    for (; i < stop; i++) {
      const uint8_t byte = w.packed[i >> 1];
      const int nib = (i & 1) ? (byte & 15) : (byte >> 4);
      out[i - i0] = round_to(w.code[nib] * am, w.dtype);
    }
  }
}

void q4_quantize(uint8_t* packed, float* absmax, const void* x, int dtX, long n, int type) {
  const long nb = (n + kQ4Block - 1) / kQ4Block;
  const long per = 256;  // blocks per work item
  parallel_for((nb + per - 1) / per, [&](long t) {
    float v[kQ4Block];
    for (long b = t * per; b < std::min(nb, (t + 1) * per); b++) {
      const long i0 = b * kQ4Block, cnt = std::min(kQ4Block, n - i0);
      convert_row(v, x, dtX, i0, cnt);
      float am = 0.f;
      for (long j = 0; j < cnt; j++) am = std::max(am, std::fabs(v[j]));
      absmax[b] = am;
      const float inv = 1.0f / std::max(am, 1e-38f);
      // blocks of 64 start on a byte (64 is even): pairs (j, j + 1) share one byte
      for (long j = 0; j < cnt; j += 2) {
        const float s0 = std::clamp(v[j] * inv, -1.0f, 1.0f);
        const float s1 = j + 1 < cnt ? std::clamp(v[j + 1] * inv, -1.0f, 1.0f) : 0.0f;
        packed[(i0 + j) >> 1] = (uint8_t)((code_of(s0, type) << 4) | code_of(s1, type));
      }
    }
  });
}

void q8_quantize_blockwise(uint8_t* q, float* absmax, const float* x, long n, long block, const float* code) {
  float bounds[255];
  for (int i = 0; i < 255; i++) bounds[i] = (code[i] + code[i + 1]) / 2;
  const long nb = (n + block - 1) / block;
  for (long b = 0; b < nb; b++) {
    const long i0 = b * block, cnt = std::min(block, n - i0);
    float am = 0.f;
    for (long j = 0; j < cnt; j++) am = std::max(am, std::fabs(x[i0 + j]));
    absmax[b] = am;
    const float inv = 1.0f / std::max(am, 1e-38f);
    for (long j = 0; j < cnt; j++) q[i0 + j] = (uint8_t)bucket(std::clamp(x[i0 + j] * inv, -1.0f, 1.0f), bounds, 255);
  }
}

void q4_gemm(float* C, const float* A, const Q4& w, long M, long R, long K, bool trans, float alpha, float beta, const float* bias) {
  if (M <= 0 || R <= 0) return;
  if (K <= 0) {  // an empty product: C = beta C (+ bias)
    const long cols = trans ? R : K;
    for (long i = 0; i < M * cols; i++) C[i] = (beta == 0.f ? 0.f : beta * C[i]) + (bias && trans ? bias[i % R] : 0.f);
    return;
  }
  if (trans && M <= kGemvRows) {
    // each row of W decoded once and dotted with every row of A
    const long per = 16;
    parallel_for((R + per - 1) / per, [&](long t) {
      thread_local std::vector<float> row;
      row.resize(K);
      for (long r = t * per; r < std::min(R, (t + 1) * per); r++) {
        q4_dequantize(row.data(), w, r * K, K);
        for (long m = 0; m < M; m++) {
          float* c = C + m * R + r;
          const float d = alpha * dot(A + m * K, row.data(), K);
          *c = (beta == 0.f ? d : d + beta * *c) + (bias ? bias[r] : 0.f);
        }
      }
    });
    return;
  }
  // panels of rows of W, dequantised in parallel, then multiplied by the (multi-threaded) GEMM
  const long P = std::max(1L, std::min(R, kPanelFloats / K));
  std::vector<float> panel((size_t)P * K);  // [P, K]
  for (long r0 = 0; r0 < R; r0 += P) {
    const long p = std::min(P, R - r0);
    parallel_for(p, [&](long r) { q4_dequantize(panel.data() + r * K, w, (r0 + r) * K, K); });
    if (trans)  // C[:, r0 : r0 + p] = alpha A panelᵀ + beta C
      gemm(C + r0, A, panel.data(), F32, 1, M, p, K, false, true, K, K, R, 0, 0, 0, alpha, beta);
    else  // C += alpha A[:, r0 : r0 + p] panel (beta on the first panel only)
      gemm(C, A + r0, panel.data(), F32, 1, M, K, p, false, false, R, K, K, 0, 0, 0, alpha, r0 == 0 ? beta : 1.f);
  }
  if (bias && trans) binary(C, C, bias, M * R, R, 0);
}

}  // namespace aha
