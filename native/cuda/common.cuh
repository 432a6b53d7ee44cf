// Shared pieces of the CUDA kernels: dtype loads (f32/bf16/f16 storage, f32 compute), the stream every kernel
// runs on, scratch allocation from the caching allocator, launch helpers and error reporting.
// Not a framework: each .cu file holds one op family as op_forward/op_backward pairs, like native/cpu.
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <stdexcept>
#include <algorithm>
#include "kernels.h"

namespace aha_cuda {

// element i of a buffer of dtype dt as float
__device__ __forceinline__ float load_f(const void* p, int dt, long i) {
  if (dt == BF16) return __bfloat162float(((const __nv_bfloat16*)p)[i]);
  if (dt == F16) return __half2float(((const __half*)p)[i]);
  if (dt == I32) return (float)((const int32_t*)p)[i];
  return ((const float*)p)[i];
}

// element i of a 16-bit buffer (bf16 or f16) set to v, rounded to nearest even (the 16-bit copies of outputs that
// GEMMs take as inputs)
__device__ __forceinline__ void store16(void* p, int dt, long i, float v) {
  if (dt == BF16) ((__nv_bfloat16*)p)[i] = __float2bfloat16(v);
  else ((__half*)p)[i] = __float2half(v);
}

// v as a 16-bit buffer of type dt would hold it
__device__ __forceinline__ float round16(float v, int dt) {
  return dt == BF16 ? __bfloat162float(__float2bfloat16(v)) : __half2float(__float2half(v));
}

// the one stream all kernels, copies and GEMMs run on (created by init)
cudaStream_t stream();
// CUDA error → C++ exception (turned into a JS error by the binding)
void check(cudaError_t e, const char* what);
#define CK(x) ::aha_cuda::check((x), #x)
inline void check_launch(const char* name) { check(cudaGetLastError(), name); }
// whether the environment variable `name` is set to exactly `value` (the AHA_* switches)
inline bool env_is(const char* name, const char* value) {
  const char* e = getenv(name);
  return e && std::string(e) == value;
}

// scratch from the caching allocator (stream-ordered reuse, counted in the memory report)
void* scratch_alloc(size_t bytes);
void scratch_free(void* p);
struct Scratch {
  void* p = nullptr;
  explicit Scratch(size_t bytes) { p = bytes ? scratch_alloc(bytes) : nullptr; }
  ~Scratch() { if (p) scratch_free(p); }
  Scratch(const Scratch&) = delete;
  template <class T> T* as() const { return (T*)p; }
};

// a double on the device, read back (a sync)
inline double fetch_double(double* d) {
  double h = 0;
  CK(cudaMemcpyAsync(&h, d, 8, cudaMemcpyDeviceToHost, stream()));
  CK(cudaStreamSynchronize(stream()));
  return h;
}

// Programmatic dependent launch (sm_90+): a kernel started by launch_pdl may be scheduled while the kernel before
// it in the stream is still running, once every block of that one has called pdl_trigger(); pdl_wait() then holds it
// until that kernel has finished and its writes are visible. So a kernel launched this way must call pdl_wait()
// before it reads or writes any buffer (here: first thing), and calls pdl_trigger() to let its own successor be
// scheduled early. Launched the ordinary way (or on an older GPU), both are no-ops. This takes the launch gap out of
// chains of small kernels (a decode step: ~200 in a row); off unless pdl_enabled().
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(__CUDACC_EMU__)
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(__CUDACC_EMU__)
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
// kernel<<<grid, block, smem, stream()>>>(args...), with programmatic stream serialization when pdl_enabled(), and
// the launch checked (name in the error); only for kernels that begin with pdl_wait()
template <class... P, class... Args>
void launch_pdl(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, Args... args) {
#ifdef __CUDACC_EMU__
  ::emu::launch(name, ::emu::cfg(grid, block, smem, stream()), ::emu::kernel_address(kernel), [=](auto... a) { kernel(a...); }, args...);
  check_launch(name);
#else
  if (!pdl_enabled()) {
    kernel<<<grid, block, smem, stream()>>>(args...);
    check_launch(name);
    return;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream();
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  check(cudaLaunchKernelEx(&cfg, kernel, static_cast<P>(args)...), name);
#endif
}

inline unsigned blocks_for(long n, int threads, long cap = 65535L * 32) {
  long b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return (unsigned)(b > cap ? cap : b);
}

// attention visibility: query row i (of T new rows, S - T = off cached positions before them) sees key j when it is
// causal, inside the sliding window (0 = none) and not padding (km = the row's [S] key mask, 1 = real token)
__device__ __forceinline__ bool attention_visible(long i, long j, long T, long S, long off, long window, const int32_t* km) {
  if (i >= T || j >= S || j > i + off) return false;
  if (window > 0 && i + off - j >= window) return false;
  return !km || km[j] != 0;
}

// D (16×8, f32) += A (16×16, bf16) · B (16×8, bf16) on tensor cores: PTX mma.sync m16n8k16, one warp. Fragments as
// the PTX ISA lays them out, with g = lane / 4, t = lane % 4 and each 32-bit register two bf16 (lower index in the
// low half): a[0] = A[g][2t, 2t+1], a[1] = A[g+8][2t, 2t+1], a[2] = A[g][2t+8, 2t+9], a[3] = A[g+8][2t+8, 2t+9];
// b[0] = B[2t, 2t+1][g], b[1] = B[2t+8, 2t+9][g]; d[0], d[1] = D[g][2t, 2t+1], d[2], d[3] = D[g+8][2t, 2t+1].
// (The CUDA emulator computes the same from every lane's fragments.)
__device__ __forceinline__ void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef __CUDACC_EMU__
  ::emu::mma_bf16_16816(d, a, b);
#else
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}
// two floats as bf16 in one register (lo in the low half), rounded to nearest even
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &v, 4);
  return r;
}
// two bf16 as one register
__device__ __forceinline__ uint32_t pack_bf16(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  __nv_bfloat162 v;
  v.x = lo;
  v.y = hi;
  uint32_t r;
  memcpy(&r, &v, 4);
  return r;
}

// gated activations: 0 = silu, 1 = gelu (tanh approximation), and their derivatives
__device__ __forceinline__ float act_f(float g, int act) {
  if (act == 0) return g / (1.f + expf(-g));
  float t = tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g));
  return 0.5f * g * (1.f + t);
}
__device__ __forceinline__ float act_df(float g, int act) {
  if (act == 0) { float s = 1.f / (1.f + expf(-g)); return s * (1.f + g * (1.f - s)); }
  const float K = 0.7978845608028654f;
  float t = tanhf(K * (g + 0.044715f * g * g * g));
  return 0.5f * (1.f + t) + 0.5f * g * (1.f - t * t) * K * (1.f + 3.f * 0.044715f * g * g);
}

// warp reductions
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// block reduction (blockDim.x a multiple of 32, <= 1024); every thread gets the result
__device__ __forceinline__ float block_sum(float v, float* sh /* [32] */) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  float r = lane < nw ? sh[lane] : 0.f;
  return warp_sum(r);
}

}  // namespace aha_cuda
