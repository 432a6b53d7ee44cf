// The CUDA emulator's device side: what the kernels in native/cuda use (thread indices, shared memory, barriers, warp
// shuffles, atomics, bf16/f16 types, vector types, WMMA fragments, fast-math intrinsics) and the runtime API that
// runtime.cu / gemm.cu call, for the host compiler. native/cuda's sources are compiled unchanged against it (after
// translate.mjs rewrites kernel launches and dynamic shared memory) into aha_cuda_emu.node, which runs every CUDA
// kernel on the CPU: each thread of a block is a fiber, so barriers and shuffles have CUDA's meaning.
// Why by hand: no maintained CUDA-on-CPU runtime is available here (HIP-CPU and gpuocelot are neither in Debian nor
// on npm), and CI has no GPU: this is how the CUDA code is run on every commit. It checks logic (indexing, masks,
// reductions, argument order, graph capture rules, cuBLAS's column-major contract), not timing or memory ordering:
// blocks run one after another and a block's threads interleave only at barriers and shuffles.
#pragma once
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <cmath>
#include <math.h>
#include <tuple>
#include <functional>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// blocks run one at a time, so a block's shared variables are the function's statics
#define __shared__ static
#define __CUDACC_EMU__ 1

struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

namespace emu {
// the running thread (fiber) and its block
struct Thread;
extern Thread* cur;
extern uint3 g_blockIdx;
extern dim3 g_blockDim, g_gridDim;
const uint3& thread_idx();
void syncthreads();
void syncwarp(unsigned mask);
// a warp exchange: every lane of `mask` deposits 8 bytes, then reads those of lane src (its own where src < 0)
uint64_t exchange(unsigned mask, uint64_t mine, int src);
int lane();
unsigned ballot(unsigned mask, bool pred);
void* dynamic_smem();

inline uint32_t f2u(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float u2f(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
// f32 → bf16 bits, round to nearest even (NaN stays NaN), as __float2bfloat16
inline uint16_t f2bf(float f) {
  uint32_t u = f2u(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}
inline float bf2f(uint16_t h) { return u2f((uint32_t)h << 16); }
// f32 ↔ IEEE f16 bits, round to nearest even, as __float2half / __half2float
uint16_t f2h(float f);
float h2f(uint16_t h);
}  // namespace emu

#define threadIdx (::emu::thread_idx())
#define blockIdx (::emu::g_blockIdx)
#define blockDim (::emu::g_blockDim)
#define gridDim (::emu::g_gridDim)
#define warpSize 32

struct __nv_bfloat16 {
  uint16_t __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(emu::f2bf(f)) {}
  operator float() const { return emu::bf2f(__x); }
};
struct __half {
  uint16_t __x;
  __half() = default;
  __half(float f) : __x(emu::f2h(f)) {}
  operator float() const { return emu::h2f(__x); }
};
typedef __half half;
struct alignas(4) __nv_bfloat162 { __nv_bfloat16 x, y; };
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return (float)h; }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return (float)h; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__nv_bfloat16(a), __nv_bfloat16(b)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {(float)v.x, (float)v.y}; }

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::syncwarp(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T> inline T emu_shfl(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = emu::exchange(mask, bits, src);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
// source lanes as CUDA computes them within segments of `width` lanes (-1: keep one's own value)
template <class T> inline T __shfl_sync(unsigned mask, T v, int srcLane, int width = 32) {
  int l = emu::lane();
  return emu_shfl(mask, v, (l & ~(width - 1)) + (srcLane & (width - 1)));
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32) {
  int l = emu::lane(), s = l ^ laneMask;
  return emu_shfl(mask, v, (s & ~(width - 1)) == (l & ~(width - 1)) ? s : -1);
}
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  int l = emu::lane(), s = l - (int)delta;
  return emu_shfl(mask, v, s >= (l & ~(width - 1)) ? s : -1);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  int l = emu::lane(), s = l + (int)delta;
  return emu_shfl(mask, v, s < (l & ~(width - 1)) + width ? s : -1);
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return emu::ballot(mask, pred != 0); }
inline int __any_sync(unsigned mask, int pred) { return emu::ballot(mask, pred != 0) != 0; }
inline int __all_sync(unsigned mask, int pred) { return emu::ballot(mask, pred != 0) == emu::ballot(mask, true); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }

// blocks run one at a time and threads interleave only at barriers: a read-modify-write is atomic
template <class T> inline T atomicAdd(T* p, T v) { T o = *p; *p = o + v; return o; }
template <class T> inline T atomicMax(T* p, T v) { T o = *p; if (v > o) *p = v; return o; }
template <class T> inline T atomicMin(T* p, T v) { T o = *p; if (v < o) *p = v; return o; }
template <class T> inline T atomicExch(T* p, T v) { T o = *p; *p = v; return o; }
template <class T> inline T atomicCAS(T* p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : x > 1.f ? 1.f : x; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline float __frcp_rn(float x) { return 1.f / x; }
// one rounding each, never fused into a multiply-add (volatile keeps the host compiler from contracting them)
inline float __fmul_rn(float a, float b) { volatile float p = a * b; return p; }
inline float __fadd_rn(float a, float b) { volatile float s = a + b; return s; }
inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline float __uint_as_float(unsigned x) { return emu::u2f(x); }
inline int __float_as_int(float f) { int x; std::memcpy(&x, &f, 4); return x; }
inline unsigned __float_as_uint(float f) { return emu::f2u(f); }
template <class T> inline T __ldg(const T* p) { return *p; }
// CUDA's min/max overloads for mixed integer and float arguments
template <class A, class B> inline typename std::common_type<A, B>::type min(A a, B b) { return b < a ? b : a; }
template <class A, class B> inline typename std::common_type<A, B>::type max(A a, B b) { return a < b ? b : a; }

// ---- WMMA: every lane holds the whole 16×16 tile (fragments are opaque, kernels only load, multiply and store them).
// Loads and stores are warp-collective: the warp meets before and after each, so no lane reads a tile while another
// is still writing it or writes one before every lane has read it (what converged lanes do on the GPU).
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int R = std::is_same<Use, matrix_b>::value ? K : M;
  static constexpr int C = std::is_same<Use, matrix_a>::value ? K : N;
  static constexpr int num_elements = R * C;
  float v[R * C];  // [row][col] of the tile this fragment holds (a: M×K, b: K×N, accumulator: M×N)
};
template <class Use, int M, int N, int K, class T, class L>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, float x) { for (float& e : f.v) e = x; }
template <class Use, int M, int N, int K, class T, class L, class P>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const P* p, unsigned ldm) {
  using F = fragment<Use, M, N, K, T, L>;
  constexpr bool rm = std::is_same<L, row_major>::value;
  emu::syncwarp(0xffffffffu);
  for (int r = 0; r < F::R; r++)
    for (int c = 0; c < F::C; c++) f.v[r * F::C + c] = (float)(rm ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r]);
  emu::syncwarp(0xffffffffu);
}
template <int M, int N, int K>
inline void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm, layout_t l) {
  emu::syncwarp(0xffffffffu);
  for (int r = 0; r < M; r++)
    for (int c = 0; c < N; c++) f.v[r * N + c] = l == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
  emu::syncwarp(0xffffffffu);
}
template <int M, int N, int K>
inline void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t l) {
  emu::syncwarp(0xffffffffu);
  for (int r = 0; r < M; r++)
    for (int c = 0; c < N; c++) (l == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r]) = f.v[r * N + c];
  emu::syncwarp(0xffffffffu);
}
template <int M, int N, int K, class T, class LA, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
                     const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  float out[M * N];
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float s = c.v[i * N + j];
      for (int k = 0; k < K; k++) s += a.v[i * K + k] * b.v[k * N + j];
      out[i * N + j] = s;
    }
  std::memcpy(d.v, out, sizeof out);
}
}  // namespace wmma
}  // namespace nvcuda

// ---- runtime API (the subset native/cuda calls)
enum cudaError_t {
  cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101, cudaErrorNoDevice = 100, cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901, cudaErrorIllegalState = 401, cudaErrorLaunchFailure = 719,
};
typedef cudaError_t cudaError;
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDataType { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
#define cudaStreamNonBlocking 0x01
#define cudaEventDisableTiming 0x02
#define cudaHostAllocDefault 0x00
struct EmuStream; struct EmuEvent; struct EmuGraph; struct EmuGraphExec;
typedef EmuStream* cudaStream_t;
typedef EmuEvent* cudaEvent_t;
typedef EmuGraph* cudaGraph_t;
typedef EmuGraphExec* cudaGraphExec_t;
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor, multiProcessorCount;
  size_t sharedMemPerBlockOptin;
};

cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaMalloc(void** p, size_t n);
template <class T> inline cudaError_t cudaMalloc(T** p, size_t n) { return cudaMalloc((void**)p, n); }
cudaError_t cudaFree(void* p);
cudaError_t cudaHostAlloc(void** p, size_t n, unsigned flags);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemGetInfo(size_t* free, size_t* total);
cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, cudaStream_t st = nullptr);
cudaError_t cudaMemcpy2DAsync(void* d, size_t dpitch, const void* s, size_t spitch, size_t width, size_t height, cudaMemcpyKind k,
                              cudaStream_t st = nullptr);
cudaError_t cudaMemset(void* d, int v, size_t n);
cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t st = nullptr);
cudaError_t cudaMemset2DAsync(void* d, size_t pitch, int v, size_t width, size_t height, cudaStream_t st = nullptr);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
namespace emu {
cudaError_t set_func_attribute(const void* f, int attr, int value);
// PTX mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, warp-collective: d += A · B with every lane's
// fragments in the PTX ISA's layout (common.cuh's mma_bf16_16816 describes it)
void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]);
// fill with NaN bytes in stream order (runtime.cu poisons the blocks it frees: a kernel reading an output it never
// wrote, from a reused block, then reads NaN instead of a previous tensor's values)
void poison(void* p, size_t n);
}
template <class F> inline cudaError_t cudaFuncSetAttribute(F* f, cudaFuncAttribute a, int v) { return emu::set_func_attribute((const void*)f, a, v); }

// the dlopen/dlsym that gemm.cu calls (translate.mjs renames them): they hand out the emulated cuBLAS / cuBLASLt
extern "C" void* emu_dlopen(const char* file, int mode);
extern "C" void* emu_dlsym(void* handle, const char* name);

// ---- kernel launches (translate.mjs turns k<<<grid, block, smem, stream>>>(args) into emu::launch(...) with a
// generic lambda that calls k, so template kernels deduce their arguments as they do under nvcc)
namespace emu {
// a kernel's address (its attributes' key), from the function or a pointer to it
template <class F> inline const void* kernel_address(F* f) { return (const void*)f; }
struct LaunchCfg { dim3 grid, block; size_t smem; cudaStream_t stream; };
inline LaunchCfg cfg(dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = nullptr) { return {grid, block, smem, stream}; }
// run body as every thread of the grid (or record it while the stream is captured); fn: the kernel's address
// (null for a template kernel whose arguments are deduced at the launch), for its shared-memory attribute
void submit(const char* name, const void* fn, const LaunchCfg& c, std::function<void()> body);
template <class F, class... A>
inline void launch(const char* name, const LaunchCfg& c, const void* fn, F call, A&&... a) {
  // the arguments are copied at the launch, as CUDA copies them (call converts them to the parameters' types)
  std::tuple<std::decay_t<A>...> args(std::forward<A>(a)...);
  submit(name, fn, c, [call, args]() { std::apply(call, args); });
}
}  // namespace emu
