// bitsandbytes 4-bit weights on CUDA: products that read the 4-bit codes, never a 16-bit copy of the whole weight.
//   - Few rows (M ≤ 8, decode steps): q4_gemv_kernel, one warp per output row; each lane reads 8 codes (4 bytes) at a
//     time, dequantises them in registers (the block's absmax decoded once for the 8, the code table in shared
//     memory) and multiplies them by every row of A: each weight byte is read once, 3.6–3.9× fewer bytes than bf16
//     (0.5 byte per value plus 1/16 byte of f32 scale, or 1/64 with double quantisation, against 2).
//   - More rows (prefill, training, and the backward to the input): a panel of W's rows (at most kPanelBytes) is
//     dequantised into a scratch tile in the compute dtype, and cuBLAS multiplies it (tensor cores in the default GEMM
//     mode; exact mode: f32), panel after panel. This is what bitsandbytes does for such products, a whole weight at
//     a time; here the tile is bounded, so the extra memory is 16 MiB whatever the weight.
// Dequantisation is bitsandbytes' (native/cpu/q4.cpp describes it): absmax = (ncode[q] · nested) + offset in two f32
// roundings, value = code[nibble] · absmax rounded to the weight's dtype. Nothing here needs sm_80: plain loads,
// shuffles and conversions, so it builds for sm_75 too (bf16 conversions come from cuda_bf16.h on every arch).
#include "common.cuh"
#include "q4.h"

namespace aha_cuda {

namespace {
constexpr long kBlock = 64, kNested = 256;
constexpr long kGemvRows = 8;              // M up to this: the GEMV kernel
constexpr size_t kPanelBytes = 16u << 20;  // a dequantised panel of W's rows

__device__ __forceinline__ float absmax_of(const Q4& w, long b) {
  if (!w.nested) return ((const float*)w.absmax)[b];
  return __fadd_rn(__fmul_rn(w.ncode[((const uint8_t*)w.absmax)[b]], w.nested[b / kNested]), w.offset);  // (no fused multiply-add)
}
__device__ __forceinline__ float value_of(const float* code, int nib, float am, int dt) {
  const float v = __fmul_rn(code[nib], am);
  return dt == F32 ? v : round16(v, dt);
}

__global__ void q4_dequant_kernel(void* out, int dtOut, Q4 w, long i0, long n) {
  for (long t = blockIdx.x * (long)blockDim.x + threadIdx.x; t < n; t += (long)gridDim.x * blockDim.x) {
    const long i = i0 + t;
    const uint8_t byte = w.packed[i >> 1];
    const float v = value_of(w.code, (i & 1) ? (byte & 15) : (byte >> 4), absmax_of(w, i / kBlock), w.dtype);
    if (dtOut == F32) ((float*)out)[t] = v;
    else store16(out, dtOut, t, v);
  }
}

// C [M, R] = alpha A Wᵀ + beta C (+ bias), M ≤ kGemvRows: one warp per row r of W
__global__ void q4_gemv_kernel(float* C, const void* A, int dtA, Q4 w, int M, long R, long K, float alpha, float beta, const float* bias) {
  __shared__ float code[16];
  if (threadIdx.x < 16) code[threadIdx.x] = w.code[threadIdx.x];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const long r = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= R) return;  // (a whole warp)
  float acc[kGemvRows];
#pragma unroll
  for (int m = 0; m < kGemvRows; m++) acc[m] = 0.f;
  const long base = r * K;
  if (K % 8 == 0) {
    // 8 codes per lane and step: a 4-byte load (the row starts on a 4-byte boundary), all in one block of 64
    for (long j = lane * 8L; j < K; j += 256) {
      const long i = base + j;
      const uint32_t word = *(const uint32_t*)(w.packed + (i >> 1));
      const float am = absmax_of(w, i / kBlock);
      float wv[8];
#pragma unroll
      for (int e = 0; e < 8; e++) {
        const uint32_t byte = (word >> (8 * (e >> 1))) & 0xffu;
        wv[e] = value_of(code, (e & 1) ? (int)(byte & 15u) : (int)(byte >> 4), am, w.dtype);
      }
#pragma unroll
      for (int m = 0; m < kGemvRows; m++) {
        if (m >= M) break;
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < 8; e++) s += load_f(A, dtA, m * K + j + e) * wv[e];
        acc[m] += s;
      }
    }
  } else {
    for (long j = lane; j < K; j += 32) {
      const long i = base + j;
      const uint8_t byte = w.packed[i >> 1];
      const float v = value_of(code, (i & 1) ? (byte & 15) : (byte >> 4), absmax_of(w, i / kBlock), w.dtype);
      for (int m = 0; m < M; m++) acc[m] += load_f(A, dtA, m * K + j) * v;
    }
  }
#pragma unroll
  for (int m = 0; m < kGemvRows; m++) {
    if (m >= M) break;
    const float s = warp_sum(acc[m]);
    if (lane == 0) {
      float* c = C + m * R + r;
      *c = alpha * s + (beta == 0.f ? 0.f : beta * *c) + (bias ? bias[r] : 0.f);
    }
  }
}
}  // namespace

void q4_dequantize(void* out, int dtOut, const Q4& w, long i0, long count) {
  if (count <= 0) return;
  q4_dequant_kernel<<<blocks_for(count, 256, 8192), 256, 0, stream()>>>(out, dtOut, w, i0, count);
  check_launch("q4_dequantize");
}

void q4_gemm(float* C, const void* A, int dtA, const Q4& w, long M, long R, long K, bool trans, float alpha, float beta, const float* bias,
             int dtCompute) {
  if (M <= 0 || R <= 0) return;
  if (trans && M <= kGemvRows && K > 0) {
    const int warps = 8;
    q4_gemv_kernel<<<(unsigned)((R + warps - 1) / warps), warps * 32, 0, stream()>>>(C, A, dtA, w, (int)M, R, K, alpha, beta, bias);
    check_launch("q4_gemm (gemv)");
    return;
  }
  // the panels' type: the compute dtype on tensor cores in the default mode, else f32 (exact and TF32 modes)
  const int dt = gemm_mode() == 0 && (dtCompute == BF16 || dtCompute == F16) ? dtCompute : F32;
  const long aN = M * (trans ? K : R);
  Scratch a(dtA != dt ? (size_t)aN * bytes_of(dt) : 0);  // A in the panels' type, converted once for all of them
  if (a.p) convert(a.p, dt, A, dtA, aN);
  const void* Ad = a.p ? a.p : A;
  const long lda = trans ? K : R;
  if (K <= 0) {  // an empty product: C = beta C (+ bias)
    gemm(C, Ad, dt, nullptr, dt, 1, M, trans ? R : K, 0, false, true, lda, 1, trans ? R : K, 0, 0, 0, alpha, beta);
  } else {
    long P = std::max(1L, std::min(R, (long)(kPanelBytes / ((size_t)K * bytes_of(dt)))));
    if (P >= 64) P -= P % 64;  // (panels start on 64-row boundaries: aligned sub-matrices for cuBLASLt)
    Scratch panel((size_t)P * K * bytes_of(dt));  // [P, K]
    for (long r0 = 0; r0 < R; r0 += P) {
      const long p = std::min(P, R - r0);
      q4_dequantize(panel.p, dt, w, r0 * K, p * K);
      if (trans)  // C[:, r0 : r0 + p] = alpha A panelᵀ + beta C
        gemm(C + r0, Ad, dt, panel.p, dt, 1, M, p, K, false, true, lda, K, R, 0, 0, 0, alpha, beta);
      else  // C += alpha A[:, r0 : r0 + p] panel (beta on the first panel only)
        gemm(C, (const char*)Ad + r0 * bytes_of(dt), dt, panel.p, dt, 1, M, K, p, false, false, lda, K, K, 0, 0, 0, alpha, r0 == 0 ? beta : 1.f);
    }
  }
  if (bias && trans) binary(C, C, bias, M * R, R, 0);
}

}  // namespace aha_cuda
