// GEMMs of few rows by 16-bit weights, C = alpha · A Wᵀ (+ beta · C) (+ bias), for decode steps (A: M ≤ 64 rows of
// activations, W's type or f32; W: [N, K] bf16 or f16, a projection's weight), on tensor cores (mma.sync m16n8k16,
// f32 sums; f16 on Turing, as two m16n8k8).
// Every weight element meets at most 64 rows, so such a GEMM is a stream of the weights; a small N (the o and down
// projections: 896 outputs at the Qwen2.5-0.5B shape) gives a tiled GEMM few tiles for 132 SMs. Here K is split
// too, deterministically: each split writes its partial sums and the block that finishes a column tile last adds
// them in split order, so every shape fills the GPU and every run gives the same bits.
// Why by hand: cuBLASLt has no per-call split-K control, and its kernels cannot be chained with ours by
// programmatic dependent launch; CUTLASS would be a header stack to vendor. Off by default until a GPU run compares
// it with cuBLASLt (AHA_SKINNY_GEMM=1 or set_skinny_gemm; bench/gpu-grpo.ts times both).
// Fragment layout: inside each 32-wide k step the k order is permuted alike for A and W (a dot product does not care
// about order), so a lane's one 16-byte load of a W row (8 consecutive k) holds its B fragments for two k16 steps,
// and its A fragments are two 16-byte reads (rows g and g + 8) from shared memory.
#include "common.cuh"

namespace aha_cuda {

namespace {
constexpr int SG_WARPS = 8, SG_COLS = SG_WARPS * 16;  // a block: 8 warps × 16 output columns, all rows
constexpr int SG_KC = 256, SG_PITCH = SG_KC + 8;       // A staged in shared memory 256 k at a time (+8: bank spread)
constexpr long SG_COUNTERS = 1 << 16;                  // arrival counters: one per (batch, column tile)

bool g_skinny = env_is("AHA_SKINNY_GEMM", "1");
unsigned* g_counters = nullptr;  // each goes back to 0 when its tile has been summed (graph replays reuse them)
long g_skinny_calls = 0;

// grid (column tiles, K splits, batch); MT: m16 tiles of rows (M ≤ 16 · MT)
template <int MT, class T16>
__global__ void __launch_bounds__(SG_WARPS * 32)
skinny_gemm_kernel(float* C, const void* A, int dtA, const T16* __restrict__ W, const float* bias, float* partial, unsigned* counters, int M, int N,
                   int K, long lda, long ldb, long ldc, long sA, long sB, long sC, long sBias, float alpha, float beta, int S, int kPer) {
  if constexpr (!tc_compiled<T16>()) {
    __trap();  // (no such instructions in this pass: the host never launches it here)
  } else {
    pdl_wait();  // (launch_pdl: nothing is read or written before the kernel before this one has finished)
    pdl_trigger();
    __align__(16) __shared__ T16 As[MT * 16][SG_PITCH];
    __shared__ bool last;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int tile = blockIdx.x, split = blockIdx.y, b = blockIdx.z;
    const int n0 = tile * SG_COLS + w * 16;  // this warp's 16 columns: two n8 tiles
    const int ks = split * kPer, ke = min(K, ks + kPer);
    const T16* Wb = W + b * sB;
    float acc[MT][2][4];
  #pragma unroll
    for (int mt = 0; mt < MT; mt++)
  #pragma unroll
      for (int j = 0; j < 2; j++)
  #pragma unroll
        for (int e = 0; e < 4; e++) acc[mt][j][e] = 0.f;
    // a round: this lane's W values for k0 .. k0 + 128, rows n0 + 8j + g, k from k0 + 32s + 8t: 8 values = B fragments
    // of two k16 steps, four 32-steps (128 bytes of weights per lane), zero past N or ke. The next round is loaded
    // while this one is multiplied, and the first while A is staged.
    const auto load_round = [&](uint4 (&wv)[4][2], int k0) {
  #pragma unroll
      for (int s4 = 0; s4 < 4; s4++)
  #pragma unroll
        for (int j = 0; j < 2; j++) {
          const int n = n0 + 8 * j + g, kk = k0 + 32 * s4 + 8 * t;
          wv[s4][j] = n < N && kk < ke ? __ldg((const uint4*)(Wb + (long)n * ldb + kk)) : make_uint4(0u, 0u, 0u, 0u);
        }
    };
    uint4 cur[4][2], nxt[4][2];
    load_round(cur, ks);
    for (int kc = ks; kc < ke; kc += SG_KC) {
      const int kn = min(SG_KC, ke - kc);  // a multiple of 8
      // A[rows, kc .. kc + kn) as T16 (f32 rounded to nearest even), zero past M rows and past kn
      for (int i = threadIdx.x; i < MT * 16 * (SG_KC / 8); i += blockDim.x) {
        const int r = i / (SG_KC / 8), c = (i % (SG_KC / 8)) * 8;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (r < M && c < kn) {
          const long off = b * sA + r * lda + kc + c;
          if (dtA != F32) {
            v = *(const uint4*)((const T16*)A + off);
          } else {
            const float4 x0 = *(const float4*)((const float*)A + off), x1 = *(const float4*)((const float*)A + off + 4);
            v = make_uint4(pack2<T16>(x0.x, x0.y), pack2<T16>(x0.z, x0.w), pack2<T16>(x1.x, x1.y), pack2<T16>(x1.z, x1.w));
          }
        }
        *(uint4*)&As[r][c] = v;
      }
      __syncthreads();
      for (int k = 0; k < kn; k += 128) {
        const bool more = kc + k + 128 < ke;  // (the same for the whole block)
        if (more) load_round(nxt, kc + k + 128);
  #pragma unroll
        for (int s4 = 0; s4 < 4; s4++) {
          const int kk = k + 32 * s4;  // (columns past kn of As are zero, as are the W values past ke)
  #pragma unroll
          for (int mt = 0; mt < MT; mt++) {
            const uint4 a0 = *(const uint4*)&As[mt * 16 + g][kk + 8 * t], a1 = *(const uint4*)&As[mt * 16 + g + 8][kk + 8 * t];
            // step 0: physical k 8t..8t+3 stand for logical 2t, 2t+1 (fragment 0) and 2t+8, 2t+9 (fragment 1); step 1: 8t+4..8t+7
            const uint32_t f0[4] = {a0.x, a1.x, a0.y, a1.y}, f1[4] = {a0.z, a1.z, a0.w, a1.w};
  #pragma unroll
            for (int j = 0; j < 2; j++) {
              const uint32_t b0[2] = {cur[s4][j].x, cur[s4][j].y}, b1[2] = {cur[s4][j].z, cur[s4][j].w};
              mma_16816<T16>(acc[mt][j], f0, b0);
              mma_16816<T16>(acc[mt][j], f1, b1);
            }
          }
        }
        if (more)
  #pragma unroll
          for (int s4 = 0; s4 < 4; s4++)
  #pragma unroll
            for (int j = 0; j < 2; j++) cur[s4][j] = nxt[s4][j];
      }
      __syncthreads();
    }
    // the value of C[m][n] from its sum over k
    const auto out = [&](int m, int n, float sum) {
      float* c = C + b * sC + (long)m * ldc + n;
      float v = alpha * sum;
      if (beta != 0.f) v += beta * *c;  // (beta 0: C is not read, it may hold anything)
      if (bias) v += bias[b * sBias + n];
      *c = v;
    };
    // f(m, n, sum) for each of this lane's accumulators inside C (fragment d[e] of tile (mt, j): row g + 8·(e / 2),
    // column 2t + e % 2)
    const auto each = [&](auto&& f) {
  #pragma unroll
      for (int mt = 0; mt < MT; mt++)
  #pragma unroll
        for (int j = 0; j < 2; j++)
  #pragma unroll
          for (int e = 0; e < 4; e++) {
            const int m = mt * 16 + g + (e >> 1) * 8, n = n0 + 8 * j + 2 * t + (e & 1);
            if (m < M && n < N) f(m, n, acc[mt][j][e]);
          }
    };
    if (S == 1) {
      each(out);
      return;
    }
    // K split: partial sums [batch][S][M][N]; the tile's last block to arrive adds them up in split order
    float* P = partial + ((long)b * S + split) * M * N;
    each([&](int m, int n, float sum) { P[(long)m * N + n] = sum; });
    __threadfence();
    __syncthreads();
    unsigned* counter = counters + (long)b * gridDim.x + tile;
    if (threadIdx.x == 0) last = atomicAdd(counter, 1u) == (unsigned)S - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    const volatile float* Pb = partial + (long)b * S * M * N;  // (volatile: other blocks' sums, not this SM's L1)
    for (int i = threadIdx.x; i < M * SG_COLS; i += blockDim.x) {
      const int m = i / SG_COLS, n = tile * SG_COLS + i % SG_COLS;
      if (n >= N) continue;
      float sum = 0.f;
      for (int s = 0; s < S; s++) sum += Pb[((long)s * M + m) * N + n];
      out(m, n, sum);
    }
    if (threadIdx.x == 0) *counter = 0u;
  }
}
}  // namespace

// the arrival counters, made outside any graph capture (a capture must not allocate them; zeroed once)
static bool skinny_counters() {
  if (!g_counters && !capturing()) {
    CK(cudaMalloc(&g_counters, SG_COUNTERS * sizeof(unsigned)));
    CK(cudaMemsetAsync(g_counters, 0, SG_COUNTERS * sizeof(unsigned), stream()));
  }
  return g_counters != nullptr;
}

// the kernel for mt m16 tiles of rows, W of type T16
template <class T16>
static void skinny_launch(int mt, dim3 grid, float* C, const void* A, int dtA, const void* W, const float* bias, float* part, int M, int N, int K,
                          long lda, long ldb, long ldc, long sA, long sB, long sC, long sBias, float alpha, float beta, int S, int kPer) {
  const auto go = [&](auto kernel) {
    launch_pdl("skinny_gemm", kernel, grid, dim3(SG_WARPS * 32), 0, C, A, dtA, (const T16*)W, bias, part, g_counters, M, N, K, lda, ldb, ldc, sA, sB,
               sC, sBias, alpha, beta, S, kPer);
  };
  if (mt == 1) go(skinny_gemm_kernel<1, T16>);
  else if (mt == 2) go(skinny_gemm_kernel<2, T16>);
  else if (mt == 3) go(skinny_gemm_kernel<3, T16>);
  else go(skinny_gemm_kernel<4, T16>);
}

void set_skinny_gemm(bool on) {
  g_skinny = on;
  if (on) skinny_counters();
}
long skinny_gemm_calls() { return g_skinny_calls; }

bool skinny_gemm(float* C, const void* A, int dtA, const void* B, int dtB, long batch, long M, long N, long K, bool transA, bool transB,
                 long lda, long ldb, long ldc, long sA, long sB, long sC, float alpha, float beta, const float* bias, long sBias) {
  // (with AHA_SKINNY_GEMM=1 the process's first GEMM, made before any capture, makes the counters)
  if (!g_skinny || !skinny_counters()) return false;
  if (gemm_mode() != 0 || transA || !transB || (dtB != BF16 && dtB != F16) || !tc_runs(dtB) || (dtA != dtB && dtA != F32)) return false;
  if (M < 1 || M > 64 || N < 1 || K < 8 || K % 8 || K > (1L << 30) || N > (1L << 30) || batch < 1 || batch > 65535) return false;
  const long ea = dtA != F32 ? 8 : 4;  // elements per 16 bytes
  if (lda % ea || sA % ea || ldb % 8 || sB % 8 || ((uintptr_t)A & 15) || ((uintptr_t)B & 15)) return false;
  const long tiles = (N + SG_COLS - 1) / SG_COLS;
  if (tiles * batch > SG_COUNTERS) return false;
  // enough blocks for two per SM: K split into S ≤ 16 pieces of a multiple of 32, each at least 128 long (the tile's
  // last block adds S partial tiles of M × 128 floats: a long S would make that one block the slow part)
  const long want = 2L * num_sms();
  long S = std::max(1L, std::min({(want + tiles * batch - 1) / (tiles * batch), K / 128, 16L}));
  const long kPer = ((K + S - 1) / S + 31) / 32 * 32;
  S = (K + kPer - 1) / kPer;
  Scratch part(S > 1 ? (size_t)(batch * S * M * N) * sizeof(float) : 0);
  // f32 activations that many blocks stage (the lm head: 1,187 column tiles at V = 151,936) are rounded to W's type once
  // first, so the blocks read half the bytes from L2 (the same rounding the kernel makes)
  Scratch a16(0);
  if (dtA == F32 && tiles * batch * S >= 32 && lda % 8 == 0 && sA % 8 == 0) {
    const long n = (sA ? batch - 1 : 0) * sA + (M - 1) * lda + K;
    Scratch t((size_t)n * 2);
    convert(t.p, dtB, A, F32, n);
    std::swap(a16.p, t.p);
    A = a16.p;
    dtA = dtB;
  }
  const dim3 grid((unsigned)tiles, (unsigned)S, (unsigned)batch);
  const int mt = (int)((M + 15) / 16);
  if (dtB == BF16) skinny_launch<__nv_bfloat16>(mt, grid, C, A, dtA, B, bias, part.as<float>(), (int)M, (int)N, (int)K, lda, ldb, ldc, sA, sB, sC, sBias, alpha,
                                                beta, (int)S, (int)kPer);
  else skinny_launch<__half>(mt, grid, C, A, dtA, B, bias, part.as<float>(), (int)M, (int)N, (int)K, lda, ldb, ldc, sA, sB, sC, sBias, alpha, beta,
                             (int)S, (int)kPer);
  g_skinny_calls++;
  return true;
}

}  // namespace aha_cuda
