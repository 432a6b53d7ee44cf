// AVX-512 (F, BW, VL, DQ; Intel Skylake-SP and later): 8 × 32 micro-tiles in f32. Flags: native/CMakeLists.txt.
#if defined(__x86_64__)
#define AHA_ISA_FN isa_avx512
#define AHA_ISA_NAME "avx512"
#define VW 16
#define MR 8
#define NV 2
#define KC 256
#define AHA_BF16_DOT 0
#include "kernels.inc"
#else
#include "../isa.h"
namespace aha { const IsaKernels* isa_avx512() { return nullptr; } }
#endif
