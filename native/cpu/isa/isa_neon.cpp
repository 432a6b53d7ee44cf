// arm64 Advanced SIMD (every arm64 CPU: Apple silicon, Graviton, Ampere): 8 × 8 micro-tiles of 128-bit vectors.
#if defined(__aarch64__)
#define AHA_ISA_FN isa_neon
#define AHA_ISA_NAME "neon"
#define VW 4
#define MR 8
#define NV 2
#define KC 256
#define AHA_BF16_DOT 0
#include "kernels.inc"
#else
#include "../isa.h"
namespace aha { const IsaKernels* isa_neon() { return nullptr; } }
#endif
