// AVX-512 with the bf16 dot products (AMD Zen 4+, Intel Cooper Lake, Sapphire Rapids+): 8 × 32 micro-tiles, and
// bf16 × bf16 products by vdpbf16ps. Flags: native/CMakeLists.txt.
#if defined(__x86_64__)
#define AHA_ISA_FN isa_avx512bf16
#define AHA_ISA_NAME "avx512bf16"
#define VW 16
#define MR 8
#define NV 2
#define KC 256
#define AHA_BF16_DOT 1
#include "kernels.inc"
#else
#include "../isa.h"
namespace aha { const IsaKernels* isa_avx512bf16() { return nullptr; } }
#endif
