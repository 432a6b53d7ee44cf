// The fallback every CPU of the architecture runs: the baseline vectors of x86-64 (SSE2), and on arm64 scalar code
// (compiled without Advanced SIMD, native/CMakeLists.txt; GCC lowers the 4-wide vectors to scalars).
#define AHA_ISA_FN isa_base
#define AHA_ISA_NAME "base"
#define VW 4
#define MR 4
#define NV 2
#define KC 256
#define AHA_BF16_DOT 0
#include "kernels.inc"
