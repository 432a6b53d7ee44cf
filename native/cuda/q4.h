// bitsandbytes 4-bit weights on CUDA (q4.cu): the products that read the 4-bit codes, and dequantisation. The
// weight's layout is native/cpu/q4.h's (FORMATS.md §9); quantisation happens on the host (the CPU addon) at load.
#pragma once
#include <cstdint>

namespace aha_cuda {

// packed [⌈n/2⌉] codes (even element in the high nibble), code [16]; absmax per block of 64: f32, or with double
// quantisation (nested non-null) u8 codes into ncode [256] times nested[b / 256] plus offset; dtype: the weight's own
// (dequantised values are rounded to it). Every pointer is a device pointer.
struct Q4 {
  const uint8_t* packed;
  const void* absmax;
  const float* nested;
  const float* code;
  const float* ncode;
  float offset;
  int dtype;
};

// W [R, K]. trans: C [M, R] = alpha · A [M, K] Wᵀ + beta · C (+ bias [R]); else C [M, K] = alpha · A [M, R] W + beta · C.
// A: f32, or already rounded to a 16-bit type (dtA). dtCompute: the 16-bit type the products run in on tensor cores in
// the default GEMM mode (bnb_4bit_compute_dtype), or F32.
void q4_gemm(float* C, const void* A, int dtA, const Q4& w, long M, long R, long K, bool trans, float alpha, float beta, const float* bias,
             int dtCompute);
// out [count] (f32, bf16 or f16) = the values [i0, i0 + count) of w
void q4_dequantize(void* out, int dtOut, const Q4& w, long i0, long count);

}  // namespace aha_cuda
