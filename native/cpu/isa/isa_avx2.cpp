// AVX2 with FMA and F16C (Intel Haswell, AMD Zen 1 and later): 6 × 16 micro-tiles. Flags: native/CMakeLists.txt.
#if defined(__x86_64__)
#define AHA_ISA_FN isa_avx2
#define AHA_ISA_NAME "avx2"
#define VW 8
#define MR 6
#define NV 2
#define KC 256
#define AHA_BF16_DOT 0
#include "kernels.inc"
#else
#include "../isa.h"
namespace aha { const IsaKernels* isa_avx2() { return nullptr; } }
#endif
