// bitsandbytes 4-bit weights on the CPU (q4.cpp): quantisation exactly as ../shared/FORMATS.md §9 describes it,
// dequantisation, and the matrix products that read the 4-bit codes directly (a bounded panel of rows dequantised at
// a time, never the whole weight). Shared layout with native/cuda/q4.cu.
#pragma once
#include <cstdint>

namespace aha {

constexpr long kQ4Block = 64;         // values per absmax
constexpr long kQ4NestedBlock = 256;  // absmax values per nested absmax (double quantisation)
enum Q4Type : int { NF4 = 0, FP4 = 1 };

// One 4-bit weight of n values (row-major flattened, blocks of 64 spanning rows): packed [⌈n/2⌉] bytes, the even
// element in the high nibble; code [16]: each 4-bit code's value. absmax per block: f32 [nb], or with double
// quantisation (nested non-null) u8 [nb] codes into ncode [256], times nested[b / 256] (f32), plus offset.
// dtype (F32, BF16, F16): the weight's own dtype; a dequantised value is rounded to it, as bitsandbytes returns it.
struct Q4 {
  const uint8_t* packed;
  const void* absmax;
  const float* nested;
  const float* code;
  const float* ncode;
  float offset;
  int dtype;
};

// absmax of block b: f32 (ncode[q] · nested) then + offset, two roundings as bitsandbytes' dequantize_blockwise
float q4_absmax(const Q4& w, long b);
// out[0:count] = the values [i0, i0 + count) of w (f32)
void q4_dequantize(float* out, const Q4& w, long i0, long count);
// W [R, K] as w. trans: C [M, R] = alpha · A [M, K] Wᵀ + beta · C (+ bias [R]); else C [M, K] = alpha · A [M, R] W + beta · C.
void q4_gemm(float* C, const float* A, const Q4& w, long M, long R, long K, bool trans, float alpha, float beta, const float* bias);
// packed [⌈n/2⌉], absmax [⌈n/64⌉] f32 of x [n] (f32, bf16 or f16 by dtX) as bitsandbytes' quantize_4bit
void q4_quantize(uint8_t* packed, float* absmax, const void* x, int dtX, long n, int type);
// q [n] u8 codes into code [256] (sorted), absmax [⌈n/block⌉], of x [n] f32 as quantize_blockwise (ties to the lower code)
void q8_quantize_blockwise(uint8_t* q, float* absmax, const float* x, long n, long block, const float* code);

}  // namespace aha
