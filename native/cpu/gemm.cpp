// The GEMM driver: argument handling, the GEMM mode, and how a product is split into tasks for the thread pool. The
// arithmetic is the per-instruction-set kernels' (isa.h, isa/kernels.inc):
//   - skinny products (M ≤ 16 rows by a transposed B: x Wᵀ in decode steps, the lm head of a step) by the
//     matrix-vector kernel, the weights streamed once, threads splitting W's rows;
//   - everything else by the blocked kernel, in tasks of (rows × columns) of C that each pack their own block of B
//     (converting 16-bit weights there, once per task), sized so the pool has work and B is packed few times.
// A task computes its elements over all of K in a fixed order, so results do not depend on the thread count.
// GEMM modes (set_gemm_mode, as CUDA's): bf16 (0, the default) multiplies f32 activations by bf16 weights in bf16,
// rounding the activations first (bf16 pairs by vdpbf16ps where the CPU has AVX512-BF16, else widened to f32: the same
// products, only the order of the sums differs); exact (1) keeps every product in f32.
// Not a BLAS: no complex types, no column-major API; just what the engine needs.
#include "kernels.h"
#include "threadpool.h"
#include <algorithm>
#include <vector>

namespace aha {

namespace {
int g_mode = GEMM_BF16;

// below this many multiply-adds a product runs on the calling thread alone (a dispatch to the pool costs more)
constexpr double kParallelMacs = 1 << 17;

void scale_c(float* C, long M, long N, long ldc, float beta) {
  for (long i = 0; i < M; i++) {
    float* c = C + i * ldc;
    if (beta == 0.f) std::fill(c, c + N, 0.f);
    else if (beta != 1.f) for (long j = 0; j < N; j++) c[j] *= beta;
  }
}

// the elements an operand of `rows` × `cols` (as stored) spans over `batch` batches
long span(long batch, long stride, long rows, long cols, long ld) { return (batch > 1 ? (batch - 1) * stride : 0) + (rows - 1) * ld + cols; }
}  // namespace

void set_gemm_mode(int mode) { g_mode = mode; }
int gemm_mode() { return g_mode; }

void gemm(float* C, const void* A, int dtA, const void* B, int dtB, long batch, long M, long N, long K, bool transA, bool transB,
          long lda, long ldb, long ldc, long strideA, long strideB, long strideC, float alpha, float beta) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (K <= 0) {
    for (long b = 0; b < batch; b++) scale_c(C + b * strideC, M, N, ldc, beta);
    return;
  }
  const IsaKernels& ik = isa();
  const bool skinny = M <= 16 && transB && !transA;
  // A in the type the kernel takes: f32, or bf16 with bf16 B (the bf16 mode's rounding of f32 A made here)
  thread_local std::vector<float> wide;
  thread_local std::vector<uint16_t> narrow;
  const long nA = span(batch, strideA, transA ? K : M, transA ? M : K, lda);
  if (dtA == F32 && dtB == BF16 && g_mode == GEMM_BF16 && !transA) {
    narrow.resize(nA);
    convert(narrow.data(), BF16, A, F32, nA);
    A = narrow.data();
    dtA = BF16;
  }
  // (exact mode: a bf16 A is widened, so it multiplies as the same values in f32 would, bit for bit)
  if (dtA != F32 && (g_mode != GEMM_BF16 || dtB != BF16 || dtA != BF16 || transA || (!skinny && !ik.bf16_dot))) {
    wide.resize(nA);
    convert_row(wide.data(), A, dtA, 0, nA);
    A = wide.data();
    dtA = F32;
  }
  const size_t esA = dtA == F32 ? 4 : 2, esB = dtB == F32 ? 4 : 2;
  const int threads = pool_threads();
  const double macs = (double)batch * M * N * K;
  if (skinny) {
    // W's rows in chunks: several per thread (a loaded core gives its share away), each worth a pool dispatch
    long chunks = macs < kParallelMacs || threads == 1 ? 1 : std::min<long>(threads * 8, std::max(1L, (long)(macs / kParallelMacs)));
    chunks = std::max(1L, std::min(chunks, N / 8));
    const long per = (N + chunks - 1) / chunks;
    chunks = (N + per - 1) / per;
    parallel_for(batch * chunks, [&](long t) {
      const long b = t / chunks, n0 = (t % chunks) * per, n1 = std::min(N, n0 + per);
      ik.gemv(C + b * strideC, ldc, (const char*)A + b * strideA * esA, dtA, lda, M, (const char*)B + b * strideB * esB, dtB, ldb, K, n0,
              n1, alpha, beta);
    });
    return;
  }
  // columns: blocks of at most 512 (a packed block of B stays in the core's L2); rows: split further while the pool
  // needs tasks, down to 8 micro-tiles of rows
  const long nr = ik.nr, mr = ik.mr;
  long nsplit = (N + 511) / 512;
  const long nt = (N + nsplit - 1) / nsplit;
  const long ntr = (nt + nr - 1) / nr * nr;
  nsplit = (N + ntr - 1) / ntr;
  long msplit = 1;
  if (threads > 1 && macs >= kParallelMacs) {
    const long want = threads * 4;
    msplit = std::max(1L, std::min((want + batch * nsplit - 1) / (batch * nsplit), (M + 8 * mr - 1) / (8 * mr)));
  }
  const long mt = ((M + msplit - 1) / msplit + mr - 1) / mr * mr;
  msplit = (M + mt - 1) / mt;
  const long scratch = ik.scratch_bytes(ntr);
  parallel_for(batch * msplit * nsplit, [&](long t) {
    thread_local std::vector<char> buf;
    if ((long)buf.size() < scratch) buf.resize(scratch);
    const long b = t / (msplit * nsplit), r = t % (msplit * nsplit);
    const long i0 = (r / nsplit) * mt, j0 = (r % nsplit) * ntr;
    const Operand a{(const char*)A + b * strideA * esA, dtA, lda, transA}, w{(const char*)B + b * strideB * esB, dtB, ldb, transB};
    ik.gemm_task(C + b * strideC, ldc, a, w, i0, std::min(mt, M - i0), j0, std::min(ntr, N - j0), K, alpha, beta, buf.data());
  });
}

void gemm(float* C, const float* A, const void* B, int dtB, long batch, long M, long N, long K, bool transA, bool transB, long lda,
          long ldb, long ldc, long strideA, long strideB, long strideC, float alpha, float beta) {
  gemm(C, A, F32, B, dtB, batch, M, N, K, transA, transB, lda, ldb, ldc, strideA, strideB, strideC, alpha, beta);
}

void convert_row(float* dst, const void* src, int dt, long i0, long n) {
  if (dt == BF16) {
    const uint16_t* s = (const uint16_t*)src + i0;
    for (long i = 0; i < n; i++) { uint32_t u = (uint32_t)s[i] << 16; std::memcpy(dst + i, &u, 4); }
  } else if (dt == F16) {
    const uint16_t* s = (const uint16_t*)src + i0;
    for (long i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
  } else if (dt == I32) {
    const int32_t* s = (const int32_t*)src + i0;
    for (long i = 0; i < n; i++) dst[i] = (float)s[i];
  } else {
    std::memcpy(dst, (const float*)src + i0, n * 4);
  }
}

void convert(void* dst, int dtDst, const void* src, int dtSrc, long n) {
  if (dtDst == F32) { convert_row((float*)dst, src, dtSrc, 0, n); return; }
  uint16_t* d = (uint16_t*)dst;
  if (dtSrc == F32) {
    const float* s = (const float*)src;
    for (long i = 0; i < n; i++) d[i] = f32_to_bf16(s[i]);
    return;
  }
  float tmp[256];
  for (long i0 = 0; i0 < n; i0 += 256) {
    const long m = std::min(256L, n - i0);
    convert_row(tmp, src, dtSrc, i0, m);
    for (long i = 0; i < m; i++) d[i0 + i] = f32_to_bf16(tmp[i]);
  }
}

}  // namespace aha
