// The CPU kernels that are built once per instruction set (native/cpu/isa/*.cpp, each compiled with its own target
// flags) and picked at run time (isa_select.cpp), so one build runs on any x86-64 and uses AVX-512 (and its bf16 dot
// products) where the CPU has them; on arm64 the NEON build and a scalar one. Only leaf work lives here: one GEMM
// task, one range of a matrix-vector product, one attention row. Threads, blocking and argument checks stay in the
// ordinary sources (gemm.cpp, attention.cpp), so nothing compiled for a wider instruction set is shared with code that
// runs before the choice (no inline function or template of the standard library is instantiated in those files).
// Not a BLAS: row-major only, the dtypes of kernels.h, f32 accumulation everywhere.
#pragma once
#include <cstdint>
#include "q4.h"

namespace aha {

enum DType : int { F32 = 0, BF16 = 1, F16 = 2, I32 = 3 };

// One operand of a product: p points at element [0, 0]; dt is a DType of kernels.h (F32, BF16, F16); rows are ld
// elements apart. trans: the operand is stored transposed ([K, M] for A, [N, K] for B).
struct Operand { const void* p; int dt; long ld; bool trans; };

struct IsaKernels {
  const char* name;
  // The panel layout of the blocked product (gemm_task): rows of B packed per block of kc and nr columns. kc is even.
  long mr, nr, kc;
  // Bytes of scratch gemm_task needs for a task of nt columns (its packed B).
  long (*scratch_bytes)(long nt);
  // The blocked product over one task: C[i0:i0+mt, j0:j0+nt] = alpha · op(A) op(B) + beta · C over all of K (beta 0:
  // C is not read). A f32 (either orientation) or bf16 (not transposed; then B must be 16-bit and the product takes
  // bf16 pairs, AVX512-BF16); B f32, bf16 or f16 either orientation, converted while packing. K is blocked by kc in a
  // fixed order, so an element's sum does not depend on how the caller splits the output into tasks.
  void (*gemm_task)(float* C, long ldc, Operand A, Operand B, long i0, long mt, long j0, long nt, long K, float alpha,
                    float beta, void* scratch);
  // Whether gemm_task multiplies bf16 A by 16-bit B itself (AVX512-BF16); otherwise the caller widens A to f32 first.
  bool bf16_dot;
  // Matrix-vector and skinny products, the weights streamed once: C[m, n] = alpha · Σ_k A[m, k] W[n, k] + beta · C[m, n]
  // for m < M (any M; best for M ≤ 16), n in [n0, n1). A f32 or bf16 (bf16 needs W bf16), rows lda apart; W f32, bf16
  // or f16 rows ldw apart. Each output is summed in a fixed order that depends on K only.
  void (*gemv)(float* C, long ldc, const void* A, int dtA, long lda, long M, const void* W, int dtW, long ldw, long K, long n0,
               long n1, float alpha, float beta);
  // Σ a[i] · b[i] (f32) in a fixed order
  float (*dot)(const float* a, const float* b, long n);
  // One query row of causal attention over keys [lo, hi) of one (batch, head): k and v rows of D elements (f32 or
  // bf16, dtKV) at stride kvStride; mask (may be null) per key, 0 = skip; scores s = q·k · scale (soft-capped if
  // softcap > 0). Writes o [D] and returns the log-sum-exp (-inf when no key is allowed: o is zeros). sc: [hi] scratch.
  float (*attn_row)(float* o, const float* q, const void* k, const void* v, int dtKV, long kvStride, long D, long lo, long hi,
                    const int32_t* mask, float scale, float softcap, float* sc);
  // bitsandbytes 4-bit weights W [R, K] (q4.h), K a multiple of the block (64): C[m, n] = alpha · Σ_k A[m, k] W[n, k] +
  // beta · C[m, n] for m < M, n in [n0, n1), each row of codes decoded once in registers for every row of A; and
  // out [(r1 − r0), K] = rows [r0, r1) of W dequantised (f32, each value as q4_dequantize gives it).
  void (*q4_gemv)(float* C, long ldc, const float* A, long lda, long M, const Q4& w, long K, long n0, long n1, float alpha, float beta);
  void (*q4_rows)(float* out, const Q4& w, long K, long r0, long r1);
};

// The table of each build (null where that build is not compiled in, or the CPU lacks its instructions).
const IsaKernels* isa_avx512bf16();
const IsaKernels* isa_avx512();
const IsaKernels* isa_avx2();
const IsaKernels* isa_neon();
const IsaKernels* isa_base();

// The table in use: the widest the CPU runs, or AHA_CPU_ISA (avx512bf16, avx512, avx2, neon, base) if set and
// supported. Chosen once.
const IsaKernels& isa();
// Every table this CPU can run, widest first (tests compare them).
int isa_all(const IsaKernels** out, int max);
// Use this table from now on (tests and benchmarks; by name; false if unknown or unsupported).
bool isa_use(const char* name);

}  // namespace aha
