// Flash-style causal grouped-query attention in f32 (CUDA cores): the T × S score matrix never exists; key/value
// tiles of 32 pass through shared memory and an online softmax keeps a running max and sum per query row.
// Forward: a block = 16 query rows of one (batch, head); each warp owns 4 rows; lane = key within the tile for
// scores, lane = head dims for the output. Saves lse [B, Hq, T] (-inf for rows that see no key; their output is 0).
// Backward (FlashAttention-2 order): a block = 32 keys of one (batch, query head); it walks the query tiles that
// can see those keys, recomputing P from lse; dK, dV stay in registers and are added to the kv head's outputs at
// the end (f32 atomics: the query heads of a group share them); dQ goes out through f32 atomics. Mask: causal with S - T cached positions in
// front, key padding mask [B, S], sliding window, tanh soft-capping. Head dims up to 256.
// Decode (T = 1, one new token per sequence) has its own kernel that spreads the keys over 8 warps.
#include "common.cuh"
#include "attention_decode.cuh"

namespace aha_cuda {

namespace {
constexpr int BQ = 16, BK = 32, WARPS = 4, RPW = BQ / WARPS, THREADS = WARPS * 32;

template <int NDL>
__global__ void __launch_bounds__(THREADS) attention_forward_kernel(float* o, float* lse, const float* q, const void* k, const void* v,
    const int32_t* keyMask, long T, long S, long Hq, long Hkv, long D, long kvStrideB, float scale, long window, float softcap,
    void* o16, int dt16, int dtKV) {
  constexpr int DP = 32 * NDL;
  extern __shared__ float smem[];
  float* qs = smem;                      // [BQ][DP]
  float* ks = qs + BQ * DP;              // [BK][DP + 1]
  float* vs = ks + BK * (DP + 1);        // [BK][DP]
  const long b = blockIdx.z, h = blockIdx.y, i0 = (long)blockIdx.x * BQ, hk = h / (Hq / Hkv), off = S - T;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  const int32_t* km = keyMask ? keyMask + b * S : nullptr;
  for (int idx = tid; idx < BQ * DP; idx += THREADS) {
    int r = idx / DP, d = idx % DP;
    long i = i0 + r;
    qs[idx] = (i < T && d < D) ? q[((b * T + i) * Hq + h) * D + d] * scale : 0.f;
  }
  float m[RPW], l[RPW], acc[RPW][NDL];
#pragma unroll
  for (int rr = 0; rr < RPW; rr++) { m[rr] = -INFINITY; l[rr] = 0.f; for (int e = 0; e < NDL; e++) acc[rr][e] = 0.f; }
  long jend = min(S, i0 + BQ + off), jbeg = window > 0 ? max(0L, i0 + off - window + 1) : 0;
  const long kv0 = b * kvStrideB;  // this batch row's first key/value element (k, v: f32, or bf16/f16 in a KV cache)
  for (long j0 = (jbeg / BK) * BK; j0 < jend; j0 += BK) {
    __syncthreads();
    for (int idx = tid; idx < BK * DP; idx += THREADS) {
      int jj = idx / DP, d = idx % DP;
      long j = j0 + jj;
      bool ok = j < S && d < D;
      ks[jj * (DP + 1) + d] = ok ? load_f(k, dtKV, kv0 + (j * Hkv + hk) * D + d) : 0.f;
      vs[jj * DP + d] = ok ? load_f(v, dtKV, kv0 + (j * Hkv + hk) * D + d) : 0.f;
    }
    __syncthreads();
    float s[RPW];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) s[rr] = 0.f;
    const float* kr = ks + lane * (DP + 1);
    for (int d = 0; d < DP; d++) {
      float kd = kr[d];
#pragma unroll
      for (int rr = 0; rr < RPW; rr++) s[rr] += qs[(w * RPW + rr) * DP + d] * kd;
    }
    const long j = j0 + lane;
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
      const long i = i0 + w * RPW + rr;
      bool ok = attention_visible(i, j, T, S, off, window, km);
      float sv = ok ? (softcap > 0 ? softcap * tanhf(s[rr] / softcap) : s[rr]) : -INFINITY;
      float mnew = fmaxf(m[rr], warp_max(sv));
      if (mnew == -INFINITY) continue;  // warp-uniform
      float p = ok ? __expf(sv - mnew) : 0.f;
      float corr = __expf(m[rr] - mnew);
      l[rr] = l[rr] * corr + warp_sum(p);
      m[rr] = mnew;
#pragma unroll
      for (int e = 0; e < NDL; e++) acc[rr][e] *= corr;
      for (int jj = 0; jj < BK; jj++) {
        float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
        for (int e = 0; e < NDL; e++) acc[rr][e] += pj * vs[jj * DP + lane + 32 * e];
      }
    }
  }
#pragma unroll
  for (int rr = 0; rr < RPW; rr++) {
    const long i = i0 + w * RPW + rr;
    if (i >= T) continue;
    float inv = l[rr] > 0.f ? 1.f / l[rr] : 0.f;
#pragma unroll
    for (int e = 0; e < NDL; e++) {
      int d = lane + 32 * e;
      if (d < D) {
        const long at = ((b * T + i) * Hq + h) * D + d;
        o[at] = acc[rr][e] * inv;
        if (o16) store16(o16, dt16, at, o[at]);
      }
    }
    if (lse && lane == 0) lse[(b * Hq + h) * T + i] = l[rr] > 0.f ? m[rr] + logf(l[rr]) : -INFINITY;
  }
}

// Decode (T = 1): a block = one (head, batch) query row (attention_decode.cuh)
template <int NDL>
__global__ void __launch_bounds__(DEC_WARPS * 32) attention_decode_kernel(float* o, float* lse, const float* q, const void* k, const void* v,
    const int32_t* keyMask, long S, long Hq, long Hkv, long D, long kvStrideB, float scale, long window, float softcap, void* o16, int dt16,
    int dtKV) {
  constexpr int DP = 32 * NDL;
  __shared__ float qs[DP];
  const long h = blockIdx.x, b = blockIdx.y, hk = h / (Hq / Hkv), row = b * Hq + h;
  for (int d = threadIdx.x; d < DP; d += blockDim.x) qs[d] = d < D ? q[row * D + d] * scale : 0.f;
  __syncthreads();
  decode_attend<NDL>(o, lse, o16, dt16, row, qs, k, v, b * kvStrideB + hk * D, Hkv * D, keyMask ? keyMask + b * S : nullptr, S, D,
                     (kvStrideB & 3) == 0, window, softcap, dtKV, -1, nullptr, nullptr);
}

// Di = sum_d dout * o, one warp per (b, t, h) row; stored as [B, Hq, T]
__global__ void attention_di_kernel(float* di, const float* dout, const float* o, long B, long T, long Hq, long D) {
  long row = (blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (row >= B * T * Hq) return;
  float s = 0.f;
  for (long d = lane; d < D; d += 32) s += dout[row * D + d] * o[row * D + d];
  s = warp_sum(s);
  long h = row % Hq, bt = row / Hq, t = bt % T, b = bt / T;
  if (lane == 0) di[(b * Hq + h) * T + t] = s;
}

template <int NDL>
__global__ void __launch_bounds__(THREADS) attention_backward_kernel(float* dq, float* dk, float* dv, const float* dout, const float* lse,
    const float* di, const float* q, const float* k, const float* v, const int32_t* keyMask, long T, long S, long Hq, long Hkv, long D,
    float scale, long window, float softcap) {
  constexpr int DP = 32 * NDL, NE = BK * DP / THREADS;
  extern __shared__ float smem[];
  float* ks = smem;                      // [BK][DP + 1]
  float* vs = ks + BK * (DP + 1);        // [BK][DP + 1]
  float* qs = vs + BK * (DP + 1);        // [BQ][DP]
  float* dos = qs + BQ * DP;             // [BQ][DP]
  float* ps = dos + BQ * DP;             // [BQ][BK + 1]
  float* dss = ps + BQ * (BK + 1);       // [BQ][BK + 1]
  float* ls = dss + BQ * (BK + 1);       // [BQ]
  float* dis = ls + BQ;                  // [BQ]
  const long b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv), j0 = (long)blockIdx.x * BK, off = S - T;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  const int32_t* km = keyMask ? keyMask + b * S : nullptr;
  for (int idx = tid; idx < BK * DP; idx += THREADS) {
    int jj = idx / DP, d = idx % DP;
    long j = j0 + jj;
    bool ok = j < S && d < D;
    ks[jj * (DP + 1) + d] = ok ? k[((b * S + j) * Hkv + hk) * D + d] : 0.f;
    vs[jj * (DP + 1) + d] = ok ? v[((b * S + j) * Hkv + hk) * D + d] : 0.f;
  }
  float dK[NE], dV[NE];
#pragma unroll
  for (int e = 0; e < NE; e++) dK[e] = dV[e] = 0.f;
  // query rows that can see a key of this tile: i + off >= j0, and with a window i + off - (j0 + BK - 1) < window
  long ibeg = max(0L, j0 - off), iend = T;
  if (window > 0) iend = min(T, j0 + BK - 1 + window - off);
  {
    for (long i0 = (ibeg / BQ) * BQ; i0 < iend; i0 += BQ) {
      __syncthreads();
      for (int idx = tid; idx < BQ * DP; idx += THREADS) {
        int r = idx / DP, d = idx % DP;
        long i = i0 + r;
        bool ok = i < T && d < D;
        qs[idx] = ok ? q[((b * T + i) * Hq + h) * D + d] : 0.f;
        dos[idx] = ok ? dout[((b * T + i) * Hq + h) * D + d] : 0.f;
      }
      if (tid < BQ) {
        long i = i0 + tid;
        ls[tid] = i < T ? lse[(b * Hq + h) * T + i] : -INFINITY;
        dis[tid] = i < T ? di[(b * Hq + h) * T + i] : 0.f;
      }
      __syncthreads();
      {
        float s[RPW], dp[RPW];
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) s[rr] = dp[rr] = 0.f;
        const float *kr = ks + lane * (DP + 1), *vr = vs + lane * (DP + 1);
        for (int d = 0; d < DP; d++) {
          float kd = kr[d], vd = vr[d];
#pragma unroll
          for (int rr = 0; rr < RPW; rr++) {
            s[rr] += qs[(w * RPW + rr) * DP + d] * kd;
            dp[rr] += dos[(w * RPW + rr) * DP + d] * vd;
          }
        }
        const long j = j0 + lane;
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
          const int r = w * RPW + rr;
          const long i = i0 + r;
          float L = ls[r], p = 0.f, ds = 0.f;
          if (L != -INFINITY && attention_visible(i, j, T, S, off, window, km)) {
            float raw = s[rr] * scale, sc = raw, dcap = 1.f;
            if (softcap > 0) { float t = tanhf(raw / softcap); sc = softcap * t; dcap = 1.f - t * t; }
            p = __expf(sc - L);
            ds = p * (dp[rr] - dis[r]) * dcap * scale;
          }
          ps[r * (BK + 1) + lane] = p;
          dss[r * (BK + 1) + lane] = ds;
        }
      }
      __syncthreads();
#pragma unroll
      for (int e = 0; e < NE; e++) {
        int idx = tid + THREADS * e, jj = idx / DP, d = idx % DP;
        float a = 0.f, c = 0.f;
#pragma unroll 4
        for (int r = 0; r < BQ; r++) {
          a += ps[r * (BK + 1) + jj] * dos[r * DP + d];
          c += dss[r * (BK + 1) + jj] * qs[r * DP + d];
        }
        dV[e] += a;
        dK[e] += c;
      }
#pragma unroll
      for (int rr = 0; rr < RPW; rr++) {
        const int r = w * RPW + rr;
        const long i = i0 + r;
        if (i >= T || ls[r] == -INFINITY) continue;
#pragma unroll
        for (int e = 0; e < NDL; e++) {
          int d = lane + 32 * e;
          float a = 0.f;
          for (int jj = 0; jj < BK; jj++) a += dss[r * (BK + 1) + jj] * ks[jj * (DP + 1) + d];
          if (d < D && a != 0.f) atomicAdd(dq + ((b * T + i) * Hq + h) * D + d, a);
        }
      }
    }
  }
#pragma unroll
  for (int e = 0; e < NE; e++) {
    int idx = tid + THREADS * e, jj = idx / DP, d = idx % DP;
    long j = j0 + jj;
    if (j < S && d < D) {
      long at = ((b * S + j) * Hkv + hk) * D + d;
      atomicAdd(dk + at, dK[e]);
      atomicAdd(dv + at, dV[e]);
    }
  }
}

template <int NDL> size_t fwd_smem() { return sizeof(float) * (BQ * 32 * NDL + BK * (32 * NDL + 1) + BK * 32 * NDL); }
template <int NDL> size_t bwd_smem() { return sizeof(float) * (2 * BK * (32 * NDL + 1) + 2 * BQ * 32 * NDL + 2 * BQ * (BK + 1) + 2 * BQ); }

template <int NDL>
void launch_forward(float* o, float* lse, const float* q, const void* k, const void* v, const int32_t* km, long B, long T, long S,
                    long Hq, long Hkv, long D, long kvStrideB, float scale, long window, float softcap, void* o16, int dt16, int dtKV) {
  if (T == 1) {
    attention_decode_kernel<NDL><<<dim3((unsigned)Hq, (unsigned)B), DEC_WARPS * 32, 0, stream()>>>(o, lse, q, k, v, km, S, Hq, Hkv, D,
                                                                                              kvStrideB, scale, window, softcap, o16, dt16, dtKV);
    check_launch("attention_decode");
    return;
  }
  static bool attr = false;
  size_t sm = fwd_smem<NDL>();
  if (!attr) { CK(cudaFuncSetAttribute(attention_forward_kernel<NDL>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm)); attr = true; }
  dim3 grid((unsigned)((T + BQ - 1) / BQ), (unsigned)Hq, (unsigned)B);
  attention_forward_kernel<NDL><<<grid, THREADS, sm, stream()>>>(o, lse, q, k, v, km, T, S, Hq, Hkv, D, kvStrideB, scale, window, softcap, o16, dt16, dtKV);
  check_launch("attention_forward");
}
template <int NDL>
void launch_backward(float* dq, float* dk, float* dv, const float* dout, const float* lse, const float* di, const float* q, const float* k,
                     const float* v, const int32_t* km, long B, long T, long S, long Hq, long Hkv, long D, float scale, long window, float softcap) {
  static bool attr = false;
  size_t sm = bwd_smem<NDL>();
  if (!attr) { CK(cudaFuncSetAttribute(attention_backward_kernel<NDL>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm)); attr = true; }
  dim3 grid((unsigned)((S + BK - 1) / BK), (unsigned)Hq, (unsigned)B);
  attention_backward_kernel<NDL><<<grid, THREADS, sm, stream()>>>(dq, dk, dv, dout, lse, di, q, k, v, km, T, S, Hq, Hkv, D, scale, window, softcap);
  check_launch("attention_backward");
}
}  // namespace

void attention_forward(float* o, float* lse, const float* q, const void* k, const void* v, const int32_t* keyMask,
                       long B, long T, long S, long Hq, long Hkv, long D, long kvStrideB, float scale, long window, float softcap, int lowp,
                       void* o16, int dt16, int dtKV) {
  if (B * T * Hq == 0) return;
  if (dtKV != F32 && dtKV != BF16 && dtKV != F16) throw std::runtime_error("aha cuda attention: keys and values must be f32, bf16 or f16");
  if (lowp && T > 1 && gemm_mode() == 0 &&
      attention_tc_forward(o, lse, q, k, v, keyMask, B, T, S, Hq, Hkv, D, kvStrideB, scale, window, softcap, o16, dt16, dtKV, lowp)) return;
  AHA_DISPATCH_D(D, (launch_forward<N_>(o, lse, q, k, v, keyMask, B, T, S, Hq, Hkv, D, kvStrideB, scale, window, softcap, o16, dt16, dtKV)));
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* o, const float* lse,
                        const float* q, const float* k, const float* v, const int32_t* keyMask,
                        long B, long T, long S, long Hq, long Hkv, long D, float scale, long window, float softcap, int lowp) {
  if (B * T * Hq == 0) return;
  Scratch di((size_t)B * Hq * T * 4);
  long rows = B * T * Hq;
  attention_di_kernel<<<blocks_for(rows * 32, 256, 1L << 30), 256, 0, stream()>>>(di.as<float>(), dout, o, B, T, Hq, D);
  check_launch("attention_di");
  if (lowp && gemm_mode() == 0 &&
      attention_tc_backward(dq, dk, dv, dout, lse, di.as<float>(), q, k, v, keyMask, B, T, S, Hq, Hkv, D, scale, window, softcap, lowp)) return;
  AHA_DISPATCH_D(D, (launch_backward<N_>(dq, dk, dv, dout, lse, di.as<float>(), q, k, v, keyMask, B, T, S, Hq, Hkv, D, scale, window, softcap)));
}

}  // namespace aha_cuda
