// Tensor-core flash attention (WMMA 16×16×16 or mma.sync, f32 accumulation) for training and prefill of models whose
// weights are 16-bit: the same op as attention.cu (causal GQA, key padding mask, sliding window, soft-capping, lse
// out) with Q, K, V, P, dO and dS rounded to the model's 16-bit type T16 in shared memory, as 16-bit training does:
// bf16, or f16 (f16 models, and every 16-bit model on Turing, which has no bf16 tensor cores). The f32 kernels in
// attention.cu stay the exact path (f32 models, tests at 1e-4, decode, head dims other than 64/96/128, and tiles
// that do not fit the device's shared memory: attention_tc_pair).
// Why by hand: no maintained CUDA attention library can be loaded at run time without Python (flash-attn and
// cuDNN's frontend are C++ template/header stacks we would have to vendor and build against a fixed CUDA).
// Forward: a block = 64 query rows of one (batch, head), 4 warps × 16 rows; per 64-key tile S = Q Kᵀ, online softmax
// by lane pairs (lane = row × half of the tile), O (f32, in shared memory) += P V.
// Backward (FlashAttention-2 order): a block = 64 keys of one (batch, query head); per 64-query tile it recomputes
// S and dP = dO Vᵀ, forms P and dS, accumulates dV += Pᵀ dO and dK += dSᵀ Q in registers (warp = 16 keys) and adds
// dQ = dS K to global memory with f32 atomics; dK and dV go out with atomics at the end (query heads of a group share them).
// A second pair of kernels (mma_forward_kernel, mma_backward_kernel) does the same with PTX mma.sync, whose
// fragment layout is documented, so scores, softmax and accumulators stay in registers and less shared memory is
// needed; which pair runs is a switch (AHA_ATTENTION=mma) until a GPU run compares them, and otherwise the one whose
// tiles fit (attention_tc_pair). The WMMA pair is the default: it is the one measured so far.
#include "common.cuh"
#include <mma.h>
#include <unordered_set>

namespace aha_cuda {

namespace {
using namespace nvcuda;
constexpr int TQ = 64, TK = 64, TW = 4, TT = TW * 32;  // query rows per tile, keys per tile, warps, threads
constexpr int SP = TK + 4;                             // f32 row pitch of score tiles
constexpr int PP = TK + 8;                             // 16-bit row pitch of P / dS tiles
template <class T16> using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, T16, wmma::row_major>;
template <class T16> using FragAt = wmma::fragment<wmma::matrix_a, 16, 16, 16, T16, wmma::col_major>;
template <class T16> using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, T16, wmma::row_major>;
template <class T16> using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, T16, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// rows × D floats (row r at src + r * stride, rows ≥ valid are zero) → T16 [rows][D + 8] in shared memory
template <int D, class T16>
__device__ __forceinline__ void load_tile(T16* dst, const float* src, long stride, long valid, int rows) {
  constexpr int V4 = D / 4;
  for (int idx = threadIdx.x; idx < rows * V4; idx += blockDim.x) {
    const int r = idx / V4, c = (idx % V4) * 4;
    const float4 x = r < valid ? *(const float4*)(src + r * stride + c) : make_float4(0.f, 0.f, 0.f, 0.f);
    uint32_t* d2 = (uint32_t*)(dst + r * (D + 8) + c);
    d2[0] = pack2<T16>(x.x, x.y);
    d2[1] = pack2<T16>(x.z, x.w);
  }
}

// the same from a T16 source (a KV cache of 16-bit keys/values): 4 values per 8-byte load, no rounding
template <int D, class T16>
__device__ __forceinline__ void load_tile16(T16* dst, const T16* src, long stride, long valid, int rows) {
  constexpr int V4 = D / 4;
  for (int idx = threadIdx.x; idx < rows * V4; idx += blockDim.x) {
    const int r = idx / V4, c = (idx % V4) * 4;
    *(uint2*)(dst + r * (D + 8) + c) = r < valid ? *(const uint2*)(src + r * stride + c) : make_uint2(0u, 0u);
  }
}

// a forward's K and V tiles: rows j0.. of this (batch, kv head), from f32 or (kv16) from a T16 KV cache; at is the
// tile's first element, stride the elements between keys, valid the keys left before S
template <int D, class T16>
__device__ __forceinline__ void load_kv_tiles(T16* Ks, T16* Vs, const void* k, const void* v, bool kv16, long at, long stride, long valid) {
  if (kv16) {
    load_tile16<D, T16>(Ks, (const T16*)k + at, stride, valid, TK);
    load_tile16<D, T16>(Vs, (const T16*)v + at, stride, valid, TK);
  } else {
    load_tile<D, T16>(Ks, (const float*)k + at, stride, valid, TK);
    load_tile<D, T16>(Vs, (const float*)v + at, stride, valid, TK);
  }
}

// a backward's query tile i0..: Q and dO rows of this (batch, head) to shared memory with their lse and di
template <int D, class T16>
__device__ __forceinline__ void load_query_tile(T16* Qs, T16* dOs, float* Ls, float* Dis, const float* q, const float* dout, const float* lse,
                                                const float* di, long b, long h, long i0, long T, long Hq) {
  load_tile<D, T16>(Qs, q + ((b * T + i0) * Hq + h) * D, Hq * D, T - i0, TQ);
  load_tile<D, T16>(dOs, dout + ((b * T + i0) * Hq + h) * D, Hq * D, T - i0, TQ);
  for (int x = threadIdx.x; x < TQ; x += blockDim.x) {
    const long i = i0 + x;
    Ls[x] = i < T ? lse[(b * Hq + h) * T + i] : -INFINITY;
    Dis[x] = i < T ? di[(b * Hq + h) * T + i] : 0.f;
  }
}

// the query rows [ibeg, iend) that see some key of the block's 64 from j0 (causal, sliding window)
__device__ __forceinline__ void backward_query_range(long j0, long off, long T, long window, long* ibeg, long* iend) {
  *ibeg = max(0L, j0 - off);
  *iend = window > 0 ? min(T, j0 + TK - 1 + window - off) : T;
}

template <int D> constexpr size_t fwd_bytes() { return 2 * (3 * 64 * (D + 8)) + 4 * (TW * 16 * SP) + 2 * (TW * 16 * PP) + 4 * (TW * 16 * (D + 4)); }
template <int D> constexpr size_t bwd_bytes() { return 2 * (4 * 64 * (D + 8)) + 2 * (2 * TQ * PP) + 4 * (TW * 2 * 16 * SP) + 4 * (2 * TQ); }

template <int D, class T16>
__global__ void __launch_bounds__(TT) tc_forward_kernel(float* o, float* lse, const float* q, const void* k, const void* v,
    const int32_t* keyMask, long T, long S, long Hq, long Hkv, long kvStrideB, float scale, long window, float softcap, void* o16, int dt16,
    bool kv16) {
  if constexpr (!tc_compiled<T16>()) {
    __trap();  // (no such instructions in this pass: the host never launches it here)
  } else {
    constexpr int DK = D + 8, DO = D + 4;
    extern __shared__ __align__(128) unsigned char smem[];
    T16* Qs = (T16*)smem;                 // [TQ][DK]
    T16* Ks = Qs + TQ * DK;                // [TK][DK]
    T16* Vs = Ks + TK * DK;                // [TK][DK]
    float* Ss = (float*)(Vs + TK * DK);     // [TW][16][SP] scores
    T16* Ps = (T16*)(Ss + TW * 16 * SP);  // [TW][16][PP] probabilities
    float* Os = (float*)(Ps + TW * 16 * PP);  // [TW][16][DO] output accumulators
    const long b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv), i0 = (long)blockIdx.x * TQ, off = S - T;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int32_t* km = keyMask ? keyMask + b * S : nullptr;
    float* Sw = Ss + w * 16 * SP;
    T16* Pw = Ps + w * 16 * PP;
    float* Ow = Os + w * 16 * DO;
    load_tile<D, T16>(Qs, q + ((b * T + i0) * Hq + h) * D, Hq * D, T - i0, TQ);
    for (int idx = lane; idx < 16 * DO; idx += 32) Ow[idx] = 0.f;
    // softmax: lane pair (2r, 2r + 1) owns row r of the warp's 16, each lane half of the tile's keys and of D
    const int r = lane >> 1, half = lane & 1, c0 = half * (TK / 2), d0 = half * (D / 2);
    const long i = i0 + w * 16 + r;
    float m = -INFINITY, l = 0.f;
    const long jend = min(S, i0 + TQ + off), jbeg = window > 0 ? max(0L, i0 + off - window + 1) : 0;
    const long kv0 = b * kvStrideB + hk * D;  // (k, v: f32, or T16 when kv16: a KV cache of 16-bit values)
    for (long j0 = (jbeg / TK) * TK; j0 < jend; j0 += TK) {
      __syncthreads();  // every warp is done with the previous K/V tile
      load_kv_tiles<D, T16>(Ks, Vs, k, v, kv16, kv0 + j0 * Hkv * D, Hkv * D, S - j0);
      __syncthreads();
  #pragma unroll
      for (int n = 0; n < TK / 16; n++) {  // S_w = Q_w Kᵀ
        FragC acc;
        wmma::fill_fragment(acc, 0.f);
  #pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
          FragA<T16> a;
          FragBt<T16> bk;
          wmma::load_matrix_sync(a, Qs + (w * 16) * DK + kk * 16, DK);
          wmma::load_matrix_sync(bk, Ks + (n * 16) * DK + kk * 16, DK);
          wmma::mma_sync(acc, a, bk, acc);
        }
        wmma::store_matrix_sync(Sw + n * 16, acc, SP, wmma::mem_row_major);
      }
      __syncwarp();
      float sv[TK / 2], mx = -INFINITY;
  #pragma unroll
      for (int c = 0; c < TK / 2; c++) {
        float s = Sw[r * SP + c0 + c] * scale;
        if (softcap > 0) s = softcap * tanhf(s / softcap);
        sv[c] = attention_visible(i, j0 + c0 + c, T, S, off, window, km) ? s : -INFINITY;
        mx = fmaxf(mx, sv[c]);
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      const float mnew = fmaxf(m, mx), corr = mnew == -INFINITY ? 1.f : __expf(m - mnew);
      float sum = 0.f;
  #pragma unroll
      for (int c = 0; c < TK / 2; c++) {
        const float p = sv[c] == -INFINITY ? 0.f : __expf(sv[c] - mnew);
        Pw[r * PP + c0 + c] = to16<T16>(p);
        sum += p;
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      l = l * corr + sum;
      m = mnew;
      for (int d = d0; d < d0 + D / 2; d++) Ow[r * DO + d] *= corr;
      __syncwarp();
  #pragma unroll
      for (int dn = 0; dn < D / 16; dn++) {  // O_w += P_w V
        FragC acc;
        wmma::load_matrix_sync(acc, Ow + dn * 16, DO, wmma::mem_row_major);
  #pragma unroll
        for (int kk = 0; kk < TK / 16; kk++) {
          FragA<T16> a;
          FragB<T16> bv;
          wmma::load_matrix_sync(a, Pw + kk * 16, PP);
          wmma::load_matrix_sync(bv, Vs + (kk * 16) * DK + dn * 16, DK);
          wmma::mma_sync(acc, a, bv, acc);
        }
        wmma::store_matrix_sync(Ow + dn * 16, acc, DO, wmma::mem_row_major);
      }
      __syncwarp();
    }
    if (i < T) {
      const float inv = l > 0.f ? 1.f / l : 0.f;
      for (int d = d0; d < d0 + D / 2; d++) {
        const long at = ((b * T + i) * Hq + h) * D + d;
        o[at] = Ow[r * DO + d] * inv;
        if (o16) store16(o16, dt16, at, o[at]);
      }
      if (lse && half == 0) lse[(b * Hq + h) * T + i] = l > 0.f ? m + logf(l) : -INFINITY;
    }
  }
}

// The forward again on mma.sync (FlashAttention-2's layout): a warp's 16 query rows stay in registers as A
// fragments, its scores S = Q Kᵀ (16 × 64 per key tile) and output accumulators O (16 × D) are register fragments, the
// online softmax runs on them (a row's values sit in the 4 lanes of a quad), and P goes from S's accumulator layout
// straight into the A fragments of O += P V. Only the K and V tiles pass through shared memory. Same roundings as
// tc_forward_kernel (Q, K, V, P to T16, f32 accumulation and softmax); chosen (with mma_backward_kernel) by
// set_attention_kernel(1) or AHA_ATTENTION=mma until a GPU run says which is faster, or where WMMA's tiles do not fit.
template <int D, class T16>
__global__ void __launch_bounds__(TT) mma_forward_kernel(float* o, float* lse, const float* q, const void* k, const void* v,
    const int32_t* keyMask, long T, long S, long Hq, long Hkv, long kvStrideB, float scale, long window, float softcap, void* o16, int dt16,
    bool kv16) {
  if constexpr (!tc_compiled<T16>()) {
    __trap();  // (no such instructions in this pass: the host never launches it here)
  } else {
    constexpr int DK = D + 8, NK = D / 16, ND = D / 8, NS = TK / 8;
    extern __shared__ __align__(128) unsigned char smem[];
    T16* Ks = (T16*)smem;   // [TK][DK]
    T16* Vs = Ks + TK * DK;  // [TK][DK]
    const long b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv), i0 = (long)blockIdx.x * TQ, off = S - T;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int32_t* km = keyMask ? keyMask + b * S : nullptr;
    const long r0 = i0 + w * 16 + g, r1 = r0 + 8;  // this lane's two query rows
    // Q fragments [NK][4] from global memory (rows past T are zero)
    uint32_t qa[NK][4];
    {
      const float* q0 = q + ((b * T + r0) * Hq + h) * D;
      const float* q1 = q + ((b * T + r1) * Hq + h) * D;
  #pragma unroll
      for (int kk = 0; kk < NK; kk++) {
        const int c = kk * 16 + 2 * t;
        qa[kk][0] = r0 < T ? pack2<T16>(q0[c], q0[c + 1]) : 0u;
        qa[kk][1] = r1 < T ? pack2<T16>(q1[c], q1[c + 1]) : 0u;
        qa[kk][2] = r0 < T ? pack2<T16>(q0[c + 8], q0[c + 9]) : 0u;
        qa[kk][3] = r1 < T ? pack2<T16>(q1[c + 8], q1[c + 9]) : 0u;
      }
    }
    float acc[ND][4];
  #pragma unroll
    for (int n = 0; n < ND; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // running max and this lane's part of the row sums
    const long jend = min(S, i0 + TQ + off), jbeg = window > 0 ? max(0L, i0 + off - window + 1) : 0;
    const long kv0 = b * kvStrideB + hk * D;
    for (long j0 = (jbeg / TK) * TK; j0 < jend; j0 += TK) {
      __syncthreads();  // every warp is done with the previous K/V tile
      load_kv_tiles<D, T16>(Ks, Vs, k, v, kv16, kv0 + j0 * Hkv * D, Hkv * D, S - j0);
      __syncthreads();
      float sc[NS][4];  // S = Q Kᵀ: sc[n] holds keys n·8 + 2t, +1 of rows r0 (0, 1) and r1 (2, 3)
  #pragma unroll
      for (int n = 0; n < NS; n++) {
        sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.f;
        const T16* kr = Ks + (n * 8 + g) * DK + 2 * t;
  #pragma unroll
        for (int kk = 0; kk < NK; kk++) {
          const uint32_t bk[2] = {*(const uint32_t*)(kr + kk * 16), *(const uint32_t*)(kr + kk * 16 + 8)};
          mma_16816<T16>(sc[n], qa[kk], bk);
        }
      }
      float mx0 = -INFINITY, mx1 = -INFINITY;
  #pragma unroll
      for (int n = 0; n < NS; n++)
  #pragma unroll
        for (int e = 0; e < 4; e++) {
          float x = sc[n][e] * scale;
          if (softcap > 0) x = softcap * tanhf(x / softcap);
          const long j = j0 + n * 8 + 2 * t + (e & 1);
          x = attention_visible(e < 2 ? r0 : r1, j, T, S, off, window, km) ? x : -INFINITY;
          sc[n][e] = x;
          if (e < 2) mx0 = fmaxf(mx0, x); else mx1 = fmaxf(mx1, x);
        }
      // a row's maximum over its quad (lanes 4g .. 4g + 3)
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
      const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
      const float c0 = n0 == -INFINITY ? 1.f : __expf(m0 - n0), c1 = n1 == -INFINITY ? 1.f : __expf(m1 - n1);
      float s0 = 0.f, s1 = 0.f;
  #pragma unroll
      for (int n = 0; n < NS; n++)
  #pragma unroll
        for (int e = 0; e < 4; e++) {
          const float mref = e < 2 ? n0 : n1;
          const float p = sc[n][e] == -INFINITY ? 0.f : __expf(sc[n][e] - mref);
          sc[n][e] = p;
          if (e < 2) s0 += p; else s1 += p;
        }
      l0 = l0 * c0 + s0;
      l1 = l1 * c1 + s1;
      m0 = n0;
      m1 = n1;
  #pragma unroll
      for (int n = 0; n < ND; n++) { acc[n][0] *= c0; acc[n][1] *= c0; acc[n][2] *= c1; acc[n][3] *= c1; }
      // O += P V: P's accumulator layout is the A layout of 16 keys per step
  #pragma unroll
      for (int kk = 0; kk < TK / 16; kk++) {
        const uint32_t pa[4] = {pack2<T16>(sc[2 * kk][0], sc[2 * kk][1]), pack2<T16>(sc[2 * kk][2], sc[2 * kk][3]),
                                pack2<T16>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]), pack2<T16>(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
        const T16* v0 = Vs + (kk * 16 + 2 * t) * DK + g;
  #pragma unroll
        for (int n = 0; n < ND; n++) {
          const T16* vr = v0 + n * 8;
          const uint32_t bv[2] = {pack2<T16>(vr[0], vr[DK]), pack2<T16>(vr[8 * DK], vr[9 * DK])};
          mma_16816<T16>(acc[n], pa, bv);
        }
      }
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
  #pragma unroll
    for (int n = 0; n < ND; n++)
  #pragma unroll
      for (int e = 0; e < 4; e++) {
        const long i = e < 2 ? r0 : r1;
        if (i >= T) continue;
        const long at = ((b * T + i) * Hq + h) * D + n * 8 + 2 * t + (e & 1);
        o[at] = acc[n][e] * (e < 2 ? inv0 : inv1);
        if (o16) store16(o16, dt16, at, o[at]);
      }
    if (lse && t == 0) {
      if (r0 < T) lse[(b * Hq + h) * T + r0] = l0 > 0.f ? m0 + logf(l0) : -INFINITY;
      if (r1 < T) lse[(b * Hq + h) * T + r1] = l1 > 0.f ? m1 + logf(l1) : -INFINITY;
    }
  }
}

template <int D, class T16>
__global__ void __launch_bounds__(TT) tc_backward_kernel(float* dq, float* dk, float* dv, const float* dout, const float* lse,
    const float* di, const float* q, const float* k, const float* v, const int32_t* keyMask, long T, long S, long Hq, long Hkv,
    float scale, long window, float softcap) {
  if constexpr (!tc_compiled<T16>()) {
    __trap();  // (no such instructions in this pass: the host never launches it here)
  } else {
    constexpr int DK = D + 8, DO = D + 4;
    static_assert(16 * DO <= 2 * 16 * SP, "dQ staging must fit in a warp's score tiles");
    extern __shared__ __align__(128) unsigned char smem[];
    T16* Ks = (T16*)smem;                  // [TK][DK]
    T16* Vs = Ks + TK * DK;                 // [TK][DK]
    T16* Qs = Vs + TK * DK;                 // [TQ][DK]
    T16* dOs = Qs + TQ * DK;                // [TQ][DK]
    T16* Ps = dOs + TQ * DK;                // [TQ][PP] rows = queries, columns = keys
    T16* dSs = Ps + TQ * PP;                // [TQ][PP]
    float* Ws = (float*)(dSs + TQ * PP);     // [TW][2][16][SP] S and dP of each warp; then its dQ staging [16][DO]
    float* Ls = Ws + TW * 2 * 16 * SP;       // [TQ]
    float* Dis = Ls + TQ;                    // [TQ]
    const long b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv), j0 = (long)blockIdx.x * TK, off = S - T;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int32_t* km = keyMask ? keyMask + b * S : nullptr;
    load_tile<D, T16>(Ks, k + ((b * S + j0) * Hkv + hk) * D, Hkv * D, S - j0, TK);
    load_tile<D, T16>(Vs, v + ((b * S + j0) * Hkv + hk) * D, Hkv * D, S - j0, TK);
    FragC dKf[D / 16], dVf[D / 16];  // keys w*16 .. w*16+15 of this block
  #pragma unroll
    for (int dn = 0; dn < D / 16; dn++) { wmma::fill_fragment(dKf[dn], 0.f); wmma::fill_fragment(dVf[dn], 0.f); }
    float* Sw = Ws + w * 2 * 16 * SP;
    float* dPw = Sw + 16 * SP;
    const int r = lane >> 1, half = lane & 1, c0 = half * (TK / 2);
    long ibeg, iend;
    backward_query_range(j0, off, T, window, &ibeg, &iend);
    for (long i0 = (ibeg / TQ) * TQ; i0 < iend; i0 += TQ) {
      __syncthreads();  // the previous query tile is fully used
      load_query_tile<D, T16>(Qs, dOs, Ls, Dis, q, dout, lse, di, b, h, i0, T, Hq);
      __syncthreads();
  #pragma unroll
      for (int n = 0; n < TK / 16; n++) {  // S = Q Kᵀ and dP = dO Vᵀ for the warp's 16 query rows
        FragC s, p;
        wmma::fill_fragment(s, 0.f);
        wmma::fill_fragment(p, 0.f);
  #pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
          FragA<T16> a;
          FragBt<T16> bt;
          wmma::load_matrix_sync(a, Qs + (w * 16) * DK + kk * 16, DK);
          wmma::load_matrix_sync(bt, Ks + (n * 16) * DK + kk * 16, DK);
          wmma::mma_sync(s, a, bt, s);
          wmma::load_matrix_sync(a, dOs + (w * 16) * DK + kk * 16, DK);
          wmma::load_matrix_sync(bt, Vs + (n * 16) * DK + kk * 16, DK);
          wmma::mma_sync(p, a, bt, p);
        }
        wmma::store_matrix_sync(Sw + n * 16, s, SP, wmma::mem_row_major);
        wmma::store_matrix_sync(dPw + n * 16, p, SP, wmma::mem_row_major);
      }
      __syncwarp();
      {
        const int qr = w * 16 + r;
        const long i = i0 + qr;
        const float L = Ls[qr], Di = Dis[qr];
  #pragma unroll 8
        for (int c = 0; c < TK / 2; c++) {
          float p = 0.f, ds = 0.f;
          if (L != -INFINITY && attention_visible(i, j0 + c0 + c, T, S, off, window, km)) {
            const float raw = Sw[r * SP + c0 + c] * scale;
            float sc = raw, dcap = 1.f;
            if (softcap > 0) { const float t = tanhf(raw / softcap); sc = softcap * t; dcap = 1.f - t * t; }
            p = __expf(sc - L);
            ds = p * (dPw[r * SP + c0 + c] - Di) * dcap * scale;
          }
          Ps[qr * PP + c0 + c] = to16<T16>(p);
          dSs[qr * PP + c0 + c] = to16<T16>(ds);
        }
      }
      __syncthreads();  // all 64 rows of P and dS are in place
  #pragma unroll
      for (int kk = 0; kk < TQ / 16; kk++) {  // dV += Pᵀ dO, dK += dSᵀ Q over this tile's queries
        FragAt<T16> pa, sa;
        wmma::load_matrix_sync(pa, Ps + (kk * 16) * PP + w * 16, PP);
        wmma::load_matrix_sync(sa, dSs + (kk * 16) * PP + w * 16, PP);
  #pragma unroll
        for (int dn = 0; dn < D / 16; dn++) {
          FragB<T16> ob, qb;
          wmma::load_matrix_sync(ob, dOs + (kk * 16) * DK + dn * 16, DK);
          wmma::mma_sync(dVf[dn], pa, ob, dVf[dn]);
          wmma::load_matrix_sync(qb, Qs + (kk * 16) * DK + dn * 16, DK);
          wmma::mma_sync(dKf[dn], sa, qb, dKf[dn]);
        }
      }
      float* dQw = Sw;  // this warp's S/dP are consumed: stage dQ rows w*16.. there
  #pragma unroll
      for (int dn = 0; dn < D / 16; dn++) {  // dQ = dS K
        FragC acc;
        wmma::fill_fragment(acc, 0.f);
  #pragma unroll
        for (int kk = 0; kk < TK / 16; kk++) {
          FragA<T16> a;
          FragB<T16> kb;
          wmma::load_matrix_sync(a, dSs + (w * 16) * PP + kk * 16, PP);
          wmma::load_matrix_sync(kb, Ks + (kk * 16) * DK + dn * 16, DK);
          wmma::mma_sync(acc, a, kb, acc);
        }
        wmma::store_matrix_sync(dQw + dn * 16, acc, DO, wmma::mem_row_major);
      }
      __syncwarp();
      for (int idx = lane; idx < 16 * D; idx += 32) {
        const int rr = idx / D, d = idx % D;
        const long i = i0 + w * 16 + rr;
        const float a = dQw[rr * DO + d];
        if (i < T && a != 0.f) atomicAdd(dq + ((b * T + i) * Hq + h) * D + d, a);
      }
    }
    __syncthreads();  // all tiles done: the shared memory is free for staging dK and dV
    float* st = (float*)smem + w * 16 * DO;
  #pragma unroll
    for (int which = 0; which < 2; which++) {
  #pragma unroll
      for (int dn = 0; dn < D / 16; dn++) wmma::store_matrix_sync(st + dn * 16, which ? dVf[dn] : dKf[dn], DO, wmma::mem_row_major);
      __syncwarp();
      float* dst = which ? dv : dk;
      for (int idx = lane; idx < 16 * D; idx += 32) {
        const int rr = idx / D, d = idx % D;
        const long j = j0 + w * 16 + rr;
        if (j < S) atomicAdd(dst + ((b * S + j) * Hkv + hk) * D + d, st[rr * DO + d]);
      }
      __syncwarp();
    }
  }
}

// The backward on mma.sync, in tc_backward_kernel's order (a block = 64 keys of one (batch, query head), looping over
// 64-query tiles). Per tile each warp takes 16 query rows: S = Q Kᵀ and dP = dO Vᵀ in register fragments, P and dS
// from them in registers, dQ = dS K straight from dS's fragments (added to global memory with atomics); P and dS
// also go to shared memory, from where each warp then adds its 16 keys' dV += Pᵀ dO and dK += dSᵀ Q (register
// accumulators, added to global memory at the end: query heads of a group share K and V). Opt-in with the forward.
template <int D, class T16>
__global__ void __launch_bounds__(TT) mma_backward_kernel(float* dq, float* dk, float* dv, const float* dout, const float* lse,
    const float* di, const float* q, const float* k, const float* v, const int32_t* keyMask, long T, long S, long Hq, long Hkv,
    float scale, long window, float softcap) {
  if constexpr (!tc_compiled<T16>()) {
    __trap();  // (no such instructions in this pass: the host never launches it here)
  } else {
    constexpr int DK = D + 8, NK = D / 16, ND = D / 8, NS = TK / 8;
    extern __shared__ __align__(128) unsigned char smem[];
    T16* Ks = (T16*)smem;        // [TK][DK]
    T16* Vs = Ks + TK * DK;       // [TK][DK]
    T16* Qs = Vs + TK * DK;       // [TQ][DK]
    T16* dOs = Qs + TQ * DK;      // [TQ][DK]
    T16* Ps = dOs + TQ * DK;      // [TQ][PP] rows = queries, columns = keys
    T16* dSs = Ps + TQ * PP;      // [TQ][PP]
    float* Ls = (float*)(dSs + TQ * PP);  // [TQ]
    float* Dis = Ls + TQ;                 // [TQ]
    const long b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv), j0 = (long)blockIdx.x * TK, off = S - T;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
    const int32_t* km = keyMask ? keyMask + b * S : nullptr;
    load_tile<D, T16>(Ks, k + ((b * S + j0) * Hkv + hk) * D, Hkv * D, S - j0, TK);
    load_tile<D, T16>(Vs, v + ((b * S + j0) * Hkv + hk) * D, Hkv * D, S - j0, TK);
    float dKa[ND][4], dVa[ND][4];  // keys w·16 + g (0, 1) and + 8 (2, 3) of this block, dims n·8 + 2t, +1
  #pragma unroll
    for (int n = 0; n < ND; n++)
  #pragma unroll
      for (int e = 0; e < 4; e++) dKa[n][e] = dVa[n][e] = 0.f;
    long ibeg, iend;
    backward_query_range(j0, off, T, window, &ibeg, &iend);
    for (long i0 = (ibeg / TQ) * TQ; i0 < iend; i0 += TQ) {
      __syncthreads();  // the previous query tile is fully used
      load_query_tile<D, T16>(Qs, dOs, Ls, Dis, q, dout, lse, di, b, h, i0, T, Hq);
      __syncthreads();
      // the warp's query rows qr0 = w·16 + g and qr1 = qr0 + 8 of the tile, against all 64 keys
      const int qr0 = w * 16 + g, qr1 = qr0 + 8;
      float sc[NS][4], dp[NS][4];
  #pragma unroll
      for (int n = 0; n < NS; n++) {
        sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.f;
        dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.f;
      }
  #pragma unroll
      for (int kk = 0; kk < NK; kk++) {
        const int c = kk * 16 + 2 * t;
        const uint32_t qa[4] = {*(const uint32_t*)(Qs + qr0 * DK + c), *(const uint32_t*)(Qs + qr1 * DK + c),
                                *(const uint32_t*)(Qs + qr0 * DK + c + 8), *(const uint32_t*)(Qs + qr1 * DK + c + 8)};
        const uint32_t oa[4] = {*(const uint32_t*)(dOs + qr0 * DK + c), *(const uint32_t*)(dOs + qr1 * DK + c),
                                *(const uint32_t*)(dOs + qr0 * DK + c + 8), *(const uint32_t*)(dOs + qr1 * DK + c + 8)};
  #pragma unroll
        for (int n = 0; n < NS; n++) {
          const T16* kr = Ks + (n * 8 + g) * DK + c;
          const T16* vr = Vs + (n * 8 + g) * DK + c;
          const uint32_t bk[2] = {*(const uint32_t*)kr, *(const uint32_t*)(kr + 8)};
          const uint32_t bv[2] = {*(const uint32_t*)vr, *(const uint32_t*)(vr + 8)};
          mma_16816<T16>(sc[n], qa, bk);
          mma_16816<T16>(dp[n], oa, bv);
        }
      }
      // P and dS (dS with the softcap's derivative and the scale folded in), in sc and dp
      {
        const float L0 = Ls[qr0], L1 = Ls[qr1], D0 = Dis[qr0], D1 = Dis[qr1];
  #pragma unroll
        for (int n = 0; n < NS; n++)
  #pragma unroll
          for (int e = 0; e < 4; e++) {
            const bool lo = e < 2;
            const long i = i0 + (lo ? qr0 : qr1), j = j0 + n * 8 + 2 * t + (e & 1);
            const float L = lo ? L0 : L1;
            float p = 0.f, ds = 0.f;
            if (L != -INFINITY && attention_visible(i, j, T, S, off, window, km)) {
              const float raw = sc[n][e] * scale;
              float s2 = raw, dcap = 1.f;
              if (softcap > 0) { const float th = tanhf(raw / softcap); s2 = softcap * th; dcap = 1.f - th * th; }
              p = __expf(s2 - L);
              ds = p * (dp[n][e] - (lo ? D0 : D1)) * dcap * scale;
            }
            sc[n][e] = p;
            dp[n][e] = ds;
          }
  #pragma unroll
        for (int n = 0; n < NS; n++) {
          const int c = n * 8 + 2 * t;
          *(uint32_t*)(Ps + qr0 * PP + c) = pack2<T16>(sc[n][0], sc[n][1]);
          *(uint32_t*)(Ps + qr1 * PP + c) = pack2<T16>(sc[n][2], sc[n][3]);
          *(uint32_t*)(dSs + qr0 * PP + c) = pack2<T16>(dp[n][0], dp[n][1]);
          *(uint32_t*)(dSs + qr1 * PP + c) = pack2<T16>(dp[n][2], dp[n][3]);
        }
      }
      // dQ (the warp's 16 rows) = dS K: dS's accumulator layout is the A layout of 16 keys per step
      {
        uint32_t da[TK / 16][4];
  #pragma unroll
        for (int kk = 0; kk < TK / 16; kk++) {
          da[kk][0] = pack2<T16>(dp[2 * kk][0], dp[2 * kk][1]);
          da[kk][1] = pack2<T16>(dp[2 * kk][2], dp[2 * kk][3]);
          da[kk][2] = pack2<T16>(dp[2 * kk + 1][0], dp[2 * kk + 1][1]);
          da[kk][3] = pack2<T16>(dp[2 * kk + 1][2], dp[2 * kk + 1][3]);
        }
        const long i0r = i0 + qr0, i1r = i0 + qr1;
  #pragma unroll
        for (int n = 0; n < ND; n++) {
          float acc[4] = {0.f, 0.f, 0.f, 0.f};
  #pragma unroll
          for (int kk = 0; kk < TK / 16; kk++) {
            const T16* kc = Ks + (kk * 16 + 2 * t) * DK + n * 8 + g;
            const uint32_t bk[2] = {pack2<T16>(kc[0], kc[DK]), pack2<T16>(kc[8 * DK], kc[9 * DK])};
            mma_16816<T16>(acc, da[kk], bk);
          }
          const int d = n * 8 + 2 * t;
          if (i0r < T) {
            float* dst = dq + ((b * T + i0r) * Hq + h) * D + d;
            if (acc[0] != 0.f) atomicAdd(dst, acc[0]);
            if (acc[1] != 0.f) atomicAdd(dst + 1, acc[1]);
          }
          if (i1r < T) {
            float* dst = dq + ((b * T + i1r) * Hq + h) * D + d;
            if (acc[2] != 0.f) atomicAdd(dst, acc[2]);
            if (acc[3] != 0.f) atomicAdd(dst + 1, acc[3]);
          }
        }
      }
      __syncthreads();  // all 64 rows of P and dS are in place
      // dV += Pᵀ dO and dK += dSᵀ Q for the warp's keys kr0 = w·16 + g, kr1 = kr0 + 8, over the tile's 64 queries
      const int kr0 = w * 16 + g, kr1 = kr0 + 8;
  #pragma unroll
      for (int kk = 0; kk < TQ / 16; kk++) {
        const int qc = kk * 16 + 2 * t;  // Aᵀ[key][query] = A[query][key]: two rows of P / dS per register
        const uint32_t pa[4] = {pack2<T16>(Ps[qc * PP + kr0], Ps[(qc + 1) * PP + kr0]), pack2<T16>(Ps[qc * PP + kr1], Ps[(qc + 1) * PP + kr1]),
                                pack2<T16>(Ps[(qc + 8) * PP + kr0], Ps[(qc + 9) * PP + kr0]), pack2<T16>(Ps[(qc + 8) * PP + kr1], Ps[(qc + 9) * PP + kr1])};
        const uint32_t sa[4] = {pack2<T16>(dSs[qc * PP + kr0], dSs[(qc + 1) * PP + kr0]), pack2<T16>(dSs[qc * PP + kr1], dSs[(qc + 1) * PP + kr1]),
                                pack2<T16>(dSs[(qc + 8) * PP + kr0], dSs[(qc + 9) * PP + kr0]), pack2<T16>(dSs[(qc + 8) * PP + kr1], dSs[(qc + 9) * PP + kr1])};
  #pragma unroll
        for (int n = 0; n < ND; n++) {
          const T16* oc = dOs + qc * DK + n * 8 + g;
          const T16* qcol = Qs + qc * DK + n * 8 + g;
          const uint32_t bo[2] = {pack2<T16>(oc[0], oc[DK]), pack2<T16>(oc[8 * DK], oc[9 * DK])};
          const uint32_t bq[2] = {pack2<T16>(qcol[0], qcol[DK]), pack2<T16>(qcol[8 * DK], qcol[9 * DK])};
          mma_16816<T16>(dVa[n], pa, bo);
          mma_16816<T16>(dKa[n], sa, bq);
        }
      }
    }
    const long ja = j0 + w * 16 + g, jb = ja + 8;
  #pragma unroll
    for (int n = 0; n < ND; n++) {
      const int d = n * 8 + 2 * t;
      if (ja < S) {
        atomicAdd(dk + ((b * S + ja) * Hkv + hk) * D + d, dKa[n][0]);
        atomicAdd(dk + ((b * S + ja) * Hkv + hk) * D + d + 1, dKa[n][1]);
        atomicAdd(dv + ((b * S + ja) * Hkv + hk) * D + d, dVa[n][0]);
        atomicAdd(dv + ((b * S + ja) * Hkv + hk) * D + d + 1, dVa[n][1]);
      }
      if (jb < S) {
        atomicAdd(dk + ((b * S + jb) * Hkv + hk) * D + d, dKa[n][2]);
        atomicAdd(dk + ((b * S + jb) * Hkv + hk) * D + d + 1, dKa[n][3]);
        atomicAdd(dv + ((b * S + jb) * Hkv + hk) * D + d, dVa[n][2]);
        atomicAdd(dv + ((b * S + jb) * Hkv + hk) * D + d + 1, dVa[n][3]);
      }
    }
  }
}

bool aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }
// which kernels: 0 WMMA (tc_*_kernel), 1 mma.sync (mma_*_kernel); AHA_ATTENTION=mma or set_attention_kernel choose
int g_attention_kernel = env_is("AHA_ATTENTION", "mma") ? 1 : 0;
template <int D> constexpr size_t mma_fwd_bytes() { return 2 * (2 * TK * (D + 8)); }
template <int D> constexpr size_t mma_bwd_bytes() { return 2 * (4 * 64 * (D + 8)) + 2 * (2 * TQ * PP) + 4 * (2 * TQ); }
// dynamic shared memory of each kernel for a head dim [pair][forward, backward]
template <int D> constexpr size_t tc_bytes(int pair, bool backward) {
  return pair == TC_WMMA ? (backward ? bwd_bytes<D>() : fwd_bytes<D>()) : (backward ? mma_bwd_bytes<D>() : mma_fwd_bytes<D>());
}
size_t tc_bytes_of(long D, int pair, bool backward) {
  return D == 64 ? tc_bytes<64>(pair, backward) : D == 96 ? tc_bytes<96>(pair, backward) : tc_bytes<128>(pair, backward);
}
}  // namespace

void set_attention_kernel(int which) { g_attention_kernel = which; }
int attention_kernel() { return g_attention_kernel; }

bool attention_tc_supported(long D) { return D == 64 || D == 96 || D == 128; }

// The pair that runs a head dim's forward or backward on a device whose blocks may have smemOptin bytes of shared
// memory: the chosen pair (WMMA unless AHA_ATTENTION=mma) where its tiles fit, else the other, else none (the f32
// kernels). Tile bytes (bf16 and f16 alike), KiB:   forward WMMA / mma.sync   backward WMMA / mma.sync
//                                        D = 64               70 / 18                  88.5 / 54.5
//                                        D = 96               90 / 26                 104.5 / 70.5
//                                        D = 128             110 / 34                 120.5 / 86.5
// Blocks may have 64 KiB on sm_75, 99 on sm_86/89/120, 163 on sm_80/87 and 227 on sm_90/100: Turing runs mma.sync
// forwards and the D = 64 backward (f32 for the others), RTX 30/40 and L4 mma.sync where WMMA does not fit.
int attention_tc_pair(long D, bool backward, size_t smemOptin, int preferred) {
  if (!attention_tc_supported(D)) return TC_NONE;
  const int first = preferred == 1 ? TC_MMA : TC_WMMA, second = first == TC_WMMA ? TC_MMA : TC_WMMA;
  if (tc_bytes_of(D, first, backward) <= smemOptin) return first;
  if (tc_bytes_of(D, second, backward) <= smemOptin) return second;
  return TC_NONE;
}

// one line: what each head dim's attention runs on this device (the start-up line of the binding)
std::string attention_tc_summary() {
  const auto name = [](int p) { return p == TC_WMMA ? "WMMA" : p == TC_MMA ? "mma.sync" : "f32"; };
  std::string s;
  for (long D : {64L, 96L, 128L}) {
    const int f = attention_tc_pair(D, false, device_caps().smem_optin, g_attention_kernel);
    const int b = attention_tc_pair(D, true, device_caps().smem_optin, g_attention_kernel);
    s += (s.empty() ? "" : ", ") + std::to_string(D) + ": " + name(f) + (f == b ? "" : std::string(" / ") + name(b));
  }
  return s;
}

#define AHA_TC_D(D, CALL)                      \
  if ((D) == 64) { constexpr int D_ = 64; CALL; }  \
  else if ((D) == 96) { constexpr int D_ = 96; CALL; } \
  else { constexpr int D_ = 128; CALL; }
#define AHA_TC_T(dt, CALL)                                        \
  if ((dt) == BF16) { using T_ = __nv_bfloat16; CALL; }          \
  else { using T_ = __half; CALL; }

// launch a tensor-core attention kernel (block TT) with `bytes` of dynamic shared memory, raising the kernel's limit
// the first time
template <class Kernel, class... A>
static void launch_tc(Kernel* kernel, size_t bytes, dim3 grid, const char* what, A... args) {
  static std::unordered_set<const void*> raised;
  if (raised.insert((const void*)kernel).second) CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  kernel<<<grid, TT, bytes, stream()>>>(args...);
  check_launch(what);
}

// the pair for this call (TC_NONE: the caller runs the f32 kernels): tensor cores in t16 (bf16 or f16) where the
// device has them and the tiles fit
static int tc_pair_for(long D, bool backward, int t16) {
  if ((t16 != BF16 && t16 != F16) || !tc_runs(t16)) return TC_NONE;
  return attention_tc_pair(D, backward, device_caps().smem_optin, g_attention_kernel);
}

// true when the tensor-core path ran (head dim 64/96/128, 16-byte aligned rows, 16-bit keys/values of type t16 or
// f32); false: the caller runs the f32 kernels
bool attention_tc_forward(float* o, float* lse, const float* q, const void* k, const void* v, const int32_t* keyMask,
                          long B, long T, long S, long Hq, long Hkv, long D, long kvStrideB, float scale, long window, float softcap,
                          void* o16, int dt16, int dtKV, int t16) {
  if (!aligned16(q) || !aligned16(k) || !aligned16(v) || kvStrideB % 4 || (dtKV != F32 && dtKV != t16)) return false;
  const int pair = tc_pair_for(D, false, t16);
  if (pair == TC_NONE) return false;
  const dim3 grid((unsigned)((T + TQ - 1) / TQ), (unsigned)Hq, (unsigned)B);
  const bool mma = pair == TC_MMA, kv16 = dtKV != F32;
  AHA_TC_T(t16, AHA_TC_D(D, (launch_tc(mma ? mma_forward_kernel<D_, T_> : tc_forward_kernel<D_, T_>, tc_bytes<D_>(pair, false), grid,
                                       mma ? "attention_forward (mma.sync)" : "attention_forward (tensor cores)",
                                       o, lse, q, k, v, keyMask, T, S, Hq, Hkv, kvStrideB, scale, window, softcap, o16, dt16, kv16))));
  return true;
}
bool attention_tc_backward(float* dq, float* dk, float* dv, const float* dout, const float* lse, const float* di, const float* q,
                           const float* k, const float* v, const int32_t* keyMask, long B, long T, long S, long Hq, long Hkv, long D,
                           float scale, long window, float softcap, int t16) {
  if (!aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(dout)) return false;
  const int pair = tc_pair_for(D, true, t16);
  if (pair == TC_NONE) return false;
  const dim3 grid((unsigned)((S + TK - 1) / TK), (unsigned)Hq, (unsigned)B);
  const bool mma = pair == TC_MMA;
  AHA_TC_T(t16, AHA_TC_D(D, (launch_tc(mma ? mma_backward_kernel<D_, T_> : tc_backward_kernel<D_, T_>, tc_bytes<D_>(pair, true), grid,
                                       mma ? "attention_backward (mma.sync)" : "attention_backward (tensor cores)",
                                       dq, dk, dv, dout, lse, di, q, k, v, keyMask, T, S, Hq, Hkv, scale, window, softcap))));
  return true;
}

}  // namespace aha_cuda
