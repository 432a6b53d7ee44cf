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

// What both decode attentions first work out: f32 key/value bases (null for 16-bit), whether 4-value loads fit (every
// key row aligned for them), the first key in the window, and whether this step's new key (kn, slot jnew) is seen,
// by the rules of its slot (in a decode step it always is: it is the query's own position)
struct DecodeKeys {
  const float *kb, *vb;
  bool vec, seeNew;
  long jbeg;
};
__device__ __forceinline__ DecodeKeys decode_keys(const void* k, const void* v, long kv0, const int32_t* km, long S, long D, bool strideOk,
                                                  long window, int dtKV, long jnew, const float* kn) {
  DecodeKeys r;
  r.kb = dtKV == F32 ? (const float*)k + kv0 : nullptr;
  r.vb = dtKV == F32 ? (const float*)v + kv0 : nullptr;
  r.vec = (D & 3) == 0 && strideOk && (((uintptr_t)k | (uintptr_t)v) & (dtKV == F32 ? 15 : 7)) == 0;
  r.jbeg = window > 0 ? max(0L, S - window) : 0;
  r.seeNew = kn && jnew >= r.jbeg && jnew < S && (!km || km[jnew] != 0);
  return r;
}

// Output row `row` (o[row·D + d], o16 the same in dt16, lse[row]) of the query qs (shared memory, DP = 32·NDL floats,
// pre-scaled, zero beyond D) over keys/values k, v (f32, bf16 or f16 as dtKV): key j of this row at element kv0 + j·rs,
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
  const auto [kb, vb, vec, seeNew, jbeg] = decode_keys(k, v, kv0, km, S, D, strideOk, window, dtKV, jnew, kn);
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
    if (ok && !kb) {  // 16-bit keys: 4 per 8-byte load where the head dim allows
      const long kr = kv0 + j * rs;
      float a = 0.f;
      if (vec) {
        for (int d = 0; d < D; d += 4) {
          const float4 x = load4_16(k, dtKV, kr + d);
          a += qs[d] * x.x + qs[d + 1] * x.y + qs[d + 2] * x.z + qs[d + 3] * x.w;
        }
      } else {
        for (int d = 0; d < D; d++) a += qs[d] * load_f(k, dtKV, kr + d);
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
        if (d < D) acc[e] += pj * (vb ? vb[vr - kv0 + d] : load_f(v, dtKV, vr + d));
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

// The same for the G = Hq / Hkv query heads of one kv group at once (G ≤ DEC_GMAX): each cached key and value is read
// once for all of them (blocks per query head read their group's cache G times over, from L2), with the scores,
// softmax state and V sums kept per head, in the same order of operations as decode_attend. qs: G rows of DP floats;
// wacc: shared memory of DEC_WARPS · G · DP floats for the merge; the output rows are row0 … row0 + G - 1.
constexpr int DEC_GMAX = 8;
template <int NDL>
__device__ __forceinline__ void decode_attend_group(float* o, void* o16, int dt16, long row0, int G, const float* qs, const void* k,
                                                    const void* v, long kv0, long rs, const int32_t* km, long S, long D, bool strideOk,
                                                    long window, float softcap, int dtKV, long jnew, const float* kn, const float* vn,
                                                    float* wacc) {
  constexpr int DP = 32 * NDL;
  __shared__ float wm[DEC_WARPS][DEC_GMAX], wl[DEC_WARPS][DEC_GMAX], sNew[DEC_GMAX];
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const auto [kb, vb, vec, seeNew, jbeg] = decode_keys(k, v, kv0, km, S, D, strideOk, window, dtKV, jnew, kn);
  if (seeNew && w == 0)  // the new key's score, per head
    for (int g = 0; g < G; g++) {
      float a = 0.f;
      for (long d = lane; d < D; d += 32) a += qs[g * DP + d] * kn[d];
      a = warp_sum(a);
      if (lane == 0) sNew[g] = softcap > 0 ? softcap * tanhf(a / softcap) : a;
    }
  float m[DEC_GMAX], l[DEC_GMAX], acc[DEC_GMAX][NDL];
#pragma unroll
  for (int g = 0; g < DEC_GMAX; g++) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < NDL; e++) acc[g][e] = 0.f;
  }
  for (long j0 = jbeg + (long)w * 32; j0 < S; j0 += DEC_WARPS * 32) {
    const long j = j0 + lane;
    const bool ok = j < S && (!km || km[j] != 0) && j != jnew;
    float s[DEC_GMAX];
#pragma unroll
    for (int g = 0; g < DEC_GMAX; g++) s[g] = 0.f;
    if (ok && !kb) {  // 16-bit keys: 4 per 8-byte load where the head dim allows
      const long kr = kv0 + j * rs;
      if (vec) {
        for (int d = 0; d < D; d += 4) {
          const float4 x = load4_16(k, dtKV, kr + d);
#pragma unroll
          for (int g = 0; g < DEC_GMAX; g++)
            if (g < G) s[g] += qs[g * DP + d] * x.x + qs[g * DP + d + 1] * x.y + qs[g * DP + d + 2] * x.z + qs[g * DP + d + 3] * x.w;
        }
      } else {
        for (int d = 0; d < D; d++) {
          const float x = load_f(k, dtKV, kr + d);
#pragma unroll
          for (int g = 0; g < DEC_GMAX; g++)
            if (g < G) s[g] += qs[g * DP + d] * x;
        }
      }
    } else if (ok) {
      const float* kr = kb + j * rs;
      if (vec) {
        for (int d = 0; d < D; d += 4) {
          const float4 kv = *(const float4*)(kr + d);
#pragma unroll
          for (int g = 0; g < DEC_GMAX; g++)
            if (g < G) s[g] += qs[g * DP + d] * kv.x + qs[g * DP + d + 1] * kv.y + qs[g * DP + d + 2] * kv.z + qs[g * DP + d + 3] * kv.w;
        }
      } else {
        for (int d = 0; d < D; d++) {
#pragma unroll
          for (int g = 0; g < DEC_GMAX; g++)
            if (g < G) s[g] += qs[g * DP + d] * kr[d];
        }
      }
    }
    float p[DEC_GMAX];
#pragma unroll
    for (int g = 0; g < DEC_GMAX; g++) {
      p[g] = 0.f;
      if (g >= G) continue;
      const float sg = !ok ? -INFINITY : softcap > 0 ? softcap * tanhf(s[g] / softcap) : s[g];
      const float mnew = fmaxf(m[g], warp_max(sg));
      if (mnew == -INFINITY) continue;  // warp-uniform: no visible key in this group yet
      p[g] = ok ? __expf(sg - mnew) : 0.f;
      const float corr = __expf(m[g] - mnew);
      l[g] = l[g] * corr + warp_sum(p[g]);
      m[g] = mnew;
#pragma unroll
      for (int e = 0; e < NDL; e++) acc[g][e] *= corr;
    }
    const int nk = (int)min(32L, S - j0);
    for (int jj = 0; jj < nk; jj++) {
      float pj[DEC_GMAX];
      bool any = false;
#pragma unroll
      for (int g = 0; g < DEC_GMAX; g++) {
        pj[g] = g < G ? __shfl_sync(0xffffffffu, p[g], jj) : 0.f;
        any |= pj[g] != 0.f;
      }
      if (!any) continue;  // warp-uniform: a masked key costs no V read
      const long vr = kv0 + (j0 + jj) * rs;
#pragma unroll
      for (int e = 0; e < NDL; e++) {
        const int d = lane + 32 * e;
        if (d < D) {
          const float x = vb ? vb[vr - kv0 + d] : load_f(v, dtKV, vr + d);
#pragma unroll
          for (int g = 0; g < DEC_GMAX; g++)
            if (g < G) acc[g][e] += pj[g] * x;
        }
      }
    }
  }
#pragma unroll
  for (int g = 0; g < DEC_GMAX; g++) {
    if (g >= G) continue;
    if (lane == 0) { wm[w][g] = m[g]; wl[w][g] = l[g]; }
#pragma unroll
    for (int e = 0; e < NDL; e++) wacc[((long)w * G + g) * DP + lane + 32 * e] = acc[g][e];
  }
  __syncthreads();
  for (long i = threadIdx.x; i < G * D; i += blockDim.x) {
    const int g = (int)(i / D);
    const long d = i % D, row = row0 + g;
    const float sn = seeNew ? sNew[g] : -INFINITY;
    float M = sn;
    for (int x = 0; x < DEC_WARPS; x++) M = fmaxf(M, wm[x][g]);
    float L = M != -INFINITY && seeNew ? __expf(sn - M) : 0.f;
    if (M != -INFINITY)
      for (int x = 0; x < DEC_WARPS; x++) if (wm[x][g] != -INFINITY) L += wl[x][g] * __expf(wm[x][g] - M);
    float a = L > 0.f && seeNew ? __expf(sn - M) * vn[d] : 0.f;
    if (L > 0.f)
      for (int x = 0; x < DEC_WARPS; x++) if (wm[x][g] != -INFINITY) a += wacc[((long)x * G + g) * DP + d] * __expf(wm[x][g] - M);
    o[row * D + d] = L > 0.f ? a / L : 0.f;
    if (o16) store16(o16, dt16, row * D + d, o[row * D + d]);
  }
}

}  // namespace aha_cuda
