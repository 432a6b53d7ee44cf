// Decode attention's core (one query row, T = 1), shared by attention.cu's decode kernel and decode.cu's fused
// q/k/v + attention kernel: a block of DEC_WARPS warps; each warp takes 32 keys at a time (lane = key for the score,
// so the K loads of a warp are independent), keeps its own online softmax, and the warps' partial results are merged
// through shared memory at the end. The query sits at position S - 1 and sees every earlier key.
// A caller that has just made this step's key and value itself (in shared memory) passes them with their position
// jnew: the loop skips that cache slot (another block may be writing it) and the merge adds them as one more key.
#pragma once
#include "common.cuh"

namespace aha_cuda {

constexpr int DEC_WARPS = 8;

#define AHA_DISPATCH_D(D, CALL)                                  \
  if ((D) <= 32) { constexpr int N_ = 1; CALL; }                 \
  else if ((D) <= 64) { constexpr int N_ = 2; CALL; }            \
  else if ((D) <= 96) { constexpr int N_ = 3; CALL; }            \
  else if ((D) <= 128) { constexpr int N_ = 4; CALL; }           \
  else if ((D) <= 256) { constexpr int N_ = 8; CALL; }           \
  else throw std::runtime_error("aha cuda attention: head dim " + std::to_string(D) + " > 256 is not supported");

// Output row `row` (o[row·D + d], o16 the same in dt16, lse[row]) of the query qs (shared memory, DP = 32·NDL floats,
// pre-scaled, zero beyond D) over keys/values k, v (f32 or bf16 as dtKV): key j of this row at element kv0 + j·rs,
// visible where km[j] != 0 (km null: all) and j ≥ S - window (window > 0). strideOk: every key row of the cache is
// 4-value aligned relative to the base (the 4-value loads are then taken where the base pointers allow).
// kn, vn (shared memory, D floats, already rounded as the cache would hold them) with jnew: this step's key and value,
// for the query to see in place of cache slot jnew (under that slot's mask and window); kn null: none.
template <int NDL>
__device__ __forceinline__ void decode_attend(float* o, float* lse, void* o16, int dt16, long row, const float* qs, const void* k,
                                              const void* v, long kv0, long rs, const int32_t* km, long S, long D, bool strideOk,
                                              long window, float softcap, int dtKV, long jnew, const float* kn, const float* vn) {
  constexpr int DP = 32 * NDL;
  __shared__ float wm[DEC_WARPS], wl[DEC_WARPS], sNew;
  __shared__ float wacc[DEC_WARPS][DP];
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const float* kb = dtKV == F32 ? (const float*)k + kv0 : nullptr;
  const float* vb = dtKV == F32 ? (const float*)v + kv0 : nullptr;
  // 4 values per load (8 bytes of bf16, 16 of f32) where every key row starts aligned for it
  const bool vec = (D & 3) == 0 && strideOk && (((uintptr_t)k | (uintptr_t)v) & (dtKV == F32 ? 15 : 7)) == 0;
  const long jbeg = window > 0 ? max(0L, S - window) : 0;
  // the new key is seen by the rules of its slot (in a decode step it always is: it is the query's own position)
  const bool seeNew = kn && jnew >= jbeg && jnew < S && (!km || km[jnew] != 0);
  if (seeNew && w == 0) {  // the new key's score
    float a = 0.f;
    for (long d = lane; d < D; d += 32) a += qs[d] * kn[d];
    a = warp_sum(a);
    if (lane == 0) sNew = softcap > 0 ? softcap * tanhf(a / softcap) : a;
  }
  float m = -INFINITY, l = 0.f, acc[NDL];
#pragma unroll
  for (int e = 0; e < NDL; e++) acc[e] = 0.f;
  for (long j0 = jbeg + (long)w * 32; j0 < S; j0 += DEC_WARPS * 32) {
    const long j = j0 + lane;
    const bool ok = j < S && (!km || km[j] != 0) && j != jnew;
    float s = -INFINITY;
    if (ok && !kb) {  // bf16 keys: 4 per 8-byte load where the head dim allows
      const __nv_bfloat16* kr = (const __nv_bfloat16*)k + kv0 + j * rs;
      float a = 0.f;
      if (vec) {
        for (int d = 0; d < D; d += 4) {
          const uint2 kw = *(const uint2*)(kr + d);
          const float2 x01 = __bfloat1622float2(*(const __nv_bfloat162*)&kw.x), x23 = __bfloat1622float2(*(const __nv_bfloat162*)&kw.y);
          a += qs[d] * x01.x + qs[d + 1] * x01.y + qs[d + 2] * x23.x + qs[d + 3] * x23.y;
        }
      } else {
        for (int d = 0; d < D; d++) a += qs[d] * __bfloat162float(kr[d]);
      }
      s = softcap > 0 ? softcap * tanhf(a / softcap) : a;
    } else if (ok) {
      const float* kr = kb + j * rs;
      float a = 0.f;
      if (vec) {
        for (int d = 0; d < D; d += 4) {
          float4 kv = *(const float4*)(kr + d);
          a += qs[d] * kv.x + qs[d + 1] * kv.y + qs[d + 2] * kv.z + qs[d + 3] * kv.w;
        }
      } else {
        for (int d = 0; d < D; d++) a += qs[d] * kr[d];
      }
      s = softcap > 0 ? softcap * tanhf(a / softcap) : a;
    }
    const float mnew = fmaxf(m, warp_max(s));
    if (mnew == -INFINITY) continue;  // warp-uniform: no visible key in this group yet
    const float p = ok ? __expf(s - mnew) : 0.f, corr = __expf(m - mnew);
    l = l * corr + warp_sum(p);
    m = mnew;
#pragma unroll
    for (int e = 0; e < NDL; e++) acc[e] *= corr;
    const int nk = (int)min(32L, S - j0);
#pragma unroll 4
    for (int jj = 0; jj < nk; jj++) {
      const float pj = __shfl_sync(0xffffffffu, p, jj);
      if (pj == 0.f) continue;  // warp-uniform: a masked key (a DecodeStep's unwritten cache slots) costs no V read
      const long vr = kv0 + (j0 + jj) * rs;
#pragma unroll
      for (int e = 0; e < NDL; e++) {
        const int d = lane + 32 * e;
        if (d < D) acc[e] += pj * (vb ? vb[vr - kv0 + d] : __bfloat162float(((const __nv_bfloat16*)v)[vr + d]));
      }
    }
  }
  if (lane == 0) { wm[w] = m; wl[w] = l; }
#pragma unroll
  for (int e = 0; e < NDL; e++) wacc[w][lane + 32 * e] = acc[e];
  __syncthreads();
  const float sn = seeNew ? sNew : -INFINITY;
  float M = sn;
  for (int x = 0; x < DEC_WARPS; x++) M = fmaxf(M, wm[x]);
  float L = M != -INFINITY && seeNew ? __expf(sn - M) : 0.f;
  if (M != -INFINITY)
    for (int x = 0; x < DEC_WARPS; x++) if (wm[x] != -INFINITY) L += wl[x] * __expf(wm[x] - M);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float a = L > 0.f && seeNew ? __expf(sn - M) * vn[d] : 0.f;
    if (L > 0.f)
      for (int x = 0; x < DEC_WARPS; x++) if (wm[x] != -INFINITY) a += wacc[x][d] * __expf(wm[x] - M);
    o[row * D + d] = L > 0.f ? a / L : 0.f;
    if (o16) store16(o16, dt16, row * D + d, o[row * D + d]);
  }
  if (lse && threadIdx.x == 0) lse[row] = L > 0.f ? M + logf(L) : -INFINITY;
}

}  // namespace aha_cuda
