// The decode path's fused kernels (kernels.h; the CPU reference is native/cpu/decode.cpp). In a decode step every
// kernel is small and the step's time is mostly their number, so these fold a LoRA branch's up-projection (the
// second of its two GEMMs) into the kernel that reads the projection's output: the residual add and the next RMS
// norm, the gated activation, and q/k/v's norm, rotary and KV-cache write. The norm kernel can also make the
// down-projections t = x Aᵀ on either side of it (warp per row of A, read whole from L2), and the activation kernel
// the next projection's (partial sums per block of columns, added up by the next norm), so those GEMMs go too; in a
// decode step q/k/v's kernel and attention are one (models/fused-layers.ts: 8 kernels per layer instead of 20). A
// row's t is staged in shared memory, pre-scaled.
#include "common.cuh"
#include "attention_decode.cuh"

namespace aha_cuda {

namespace {

// Σ_j ts[j] · b[j] over the r values of one LoRA B row (4 at a time where the row is 16-byte aligned)
__device__ __forceinline__ float lora_dot(const float* ts, const float* b, long r) {
  float s = 0.f;
  if ((r & 3) == 0 && ((uintptr_t)b & 15) == 0) {
    for (long j = 0; j < r; j += 4) {
      float4 v = *(const float4*)(b + j);
      s += ts[j] * v.x + ts[j + 1] * v.y + ts[j + 2] * v.z + ts[j + 3] * v.w;
    }
  } else
    for (long j = 0; j < r; j++) s += ts[j] * b[j];
  return s;
}

// warp w of nw computes out[j] = x · A[j]ᵀ (A rows of n floats) for j = w, w + nw, … < R (rows read whole by a warp)
__device__ __forceinline__ void warp_dots(float* out, long ldOut, float sc, const float* x, const float* A, long n, long R) {
  const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  for (long j = threadIdx.x >> 5; j < R; j += nw) {
    const float* a = A + j * n;
    float s = 0.f;
    for (long k = lane; k < n; k += 32) s += x[k] * a[k];
    s = warp_sum(s);
    if (lane == 0) out[j * ldOut] = s * sc;
  }
}

// block per row: the incoming branch's t (given, or computed from its source row), the residual update, the norm of
// the updated row, then the outgoing t (smem: the incoming t, lo.r floats, then the normed row, C floats)
__global__ void add_rms_norm_kernel(float* y, void* y16, int dt16, float* h, const float* add, long ldAdd, LoraUp lo, const float* src,
                                    long ldSrc, const float* Ain, long Kin, const float* w, long C, float eps, float offset, float* tOut,
                                    const float* Aout, long Rout, long tParts) {
  pdl_wait();
  pdl_trigger();
  extern __shared__ float smem[];
  float *ts = smem, *ys = smem + lo.r;
  __shared__ float sh[32];
  const long m = blockIdx.x;
  if (lo.B) {
    if (lo.t)
      for (long j = threadIdx.x; j < lo.r; j += blockDim.x) {
        float s = 0.f;  // (tParts partial sums side by side: glu_lora's)
        for (long p = 0; p < tParts; p++) s += lo.t[m * lo.ldt + p * lo.r + j];
        ts[j] = s * lo.scale;
      }
    else warp_dots(ts, 1, lo.scale, src + m * ldSrc, Ain, Kin, lo.r);
  }
  __syncthreads();
  float* hr = h + m * C;
  float ss = 0.f;
  for (long c = threadIdx.x; c < C; c += blockDim.x) {
    float v = hr[c];
    if (add) v += add[m * ldAdd + c];
    if (lo.B) v += lora_dot(ts, lo.B + c * lo.r, lo.r);
    hr[c] = v;  // (read back below by the thread that wrote it)
    ss += v * v;
  }
  ss = block_sum(ss, sh);
  const float rs = rsqrtf(ss / C + eps);
  for (long c = threadIdx.x; c < C; c += blockDim.x) {
    float v = hr[c] * rs * (w ? w[c] + offset : 1.f);
    y[m * C + c] = v;
    if (y16) store16(y16, dt16, m * C + c, v);
    if (Aout) ys[c] = v;
  }
  if (Aout) {
    __syncthreads();
    warp_dots(tOut + m * Rout, 1, 1.f, ys, Aout, C, Rout);
  }
}

// block per (GLU_COLS columns, GLU_ROWS rows): each thread one column over the block's rows, so a B row is read once
// per GLU_ROWS rows (smem: those rows' t for g, then for u, pre-scaled). With Aout, the block's share of the down
// projection's t = out · Aoutᵀ: its outputs and Aout's columns staged (rows padded to GLU_COLS + 1 floats, so the
// threads of a warp, on different Aout rows, read different banks), then one thread per (row, j) dot over the block's
// columns into tOut [M, gridDim.x, Rout] (add_rms_norm sums the partials: no atomics, the same bits every run)
constexpr int GLU_COLS = 128, GLU_ROWS = 16, GLU_PAD = GLU_COLS + 1;
__global__ void glu_lora_kernel(float* out, void* out16, int dt16, const float* g, const float* u, long ld, LoraUp lg, LoraUp lu,
                                long M, long I, int act, float* tOut, const float* Aout, long Rout) {
  pdl_wait();
  pdl_trigger();
  extern __shared__ float ts[];
  float *tg = ts, *tu = ts + GLU_ROWS * lg.r;  // [GLU_ROWS, r] each
  float *vs = tu + GLU_ROWS * lu.r, *as = vs + GLU_ROWS * GLU_PAD;  // with Aout: [GLU_ROWS, GLU_PAD], [Rout, GLU_PAD]
  const long m0 = (long)blockIdx.y * GLU_ROWS, rows = min((long)GLU_ROWS, M - m0), n0 = (long)blockIdx.x * GLU_COLS;
  if (lg.B)
    for (long i = threadIdx.x; i < rows * lg.r; i += blockDim.x) tg[i] = lg.t[(m0 + i / lg.r) * lg.ldt + i % lg.r] * lg.scale;
  if (lu.B)
    for (long i = threadIdx.x; i < rows * lu.r; i += blockDim.x) tu[i] = lu.t[(m0 + i / lu.r) * lu.ldt + i % lu.r] * lu.scale;
  if (Aout)
    for (long i = threadIdx.x; i < Rout * GLU_COLS; i += blockDim.x) {
      const long j = i / GLU_COLS, c = i % GLU_COLS;
      as[j * GLU_PAD + c] = n0 + c < I ? Aout[j * I + n0 + c] : 0.f;
    }
  __syncthreads();
  const long n = n0 + threadIdx.x;
  for (long i = 0; i < rows; i++) {
    float v = 0.f;
    if (n < I) {
      const long m = m0 + i;
      float gv = g[m * ld + n], uv = u[m * ld + n];
      if (lg.B) gv += lora_dot(tg + i * lg.r, lg.B + n * lg.r, lg.r);
      if (lu.B) uv += lora_dot(tu + i * lu.r, lu.B + n * lu.r, lu.r);
      v = act_f(gv, act) * uv;
      out[m * I + n] = v;
      if (out16) store16(out16, dt16, m * I + n, v);
    }
    if (Aout) vs[i * GLU_PAD + threadIdx.x] = v;
  }
  if (!Aout) return;
  __syncthreads();
  for (long p = threadIdx.x; p < rows * Rout; p += blockDim.x) {
    const long i = p / Rout, j = p % Rout;
    const float *x = vs + i * GLU_PAD, *a = as + j * GLU_PAD;
    float s = 0.f;
    for (int c = 0; c < GLU_COLS; c++) s += x[c] * a[c];
    tOut[((m0 + i) * gridDim.x + blockIdx.x) * Rout + j] = s;
  }
}

// out[d] = x[d] rotated on its first rot dims (tables cs/sn of row m) for d = d0, d0 + step, … < D (the block's or a
// warp's share), after x is complete
__device__ __forceinline__ void rotate_head(float* out, const float* x, const float* cs, const float* sn, long m, long rot, long D, long d0,
                                            long step) {
  const long half = rot / 2;
  for (long d = d0; d < D; d += step) {
    float v = x[d];
    if (d < rot) {
      const long i = d < half ? d : d - half;
      const float c = cs[m * half + i], s = sn[m * half + i];
      v = d < half ? x[d] * c - x[d + half] * s : x[d] * c + x[d - half] * s;
    }
    out[d] = v;
  }
}

// One head of row m, by the whole block: y[0:D] (the head's projection output) + its LoRA term (output columns
// col0 … col0 + D of lo, t of row m), RMS-normed with nw (null: not), rotated on its first rot dims (rot 0: not;
// tables cs/sn of row m) into out. out, x (D floats each) and ts (lo.r floats) are shared memory.
__device__ __forceinline__ void head_prep(float* out, float* x, float* ts, float* sh, const float* y, const LoraUp& lo, long m, long col0,
                                          const float* nw, float eps, float offset, const float* cs, const float* sn, long rot, long D) {
  if (lo.B)
    for (long j = threadIdx.x; j < lo.r; j += blockDim.x) ts[j] = lo.t[m * lo.ldt + j] * lo.scale;
  __syncthreads();
  float ss = 0.f;
  for (long d = threadIdx.x; d < D; d += blockDim.x) {
    float v = y[d];
    if (lo.B) v += lora_dot(ts, lo.B + (col0 + d) * lo.r, lo.r);
    x[d] = v;
    ss += v * v;
  }
  if (nw) {
    ss = block_sum(ss, sh);
    const float rs = rsqrtf(ss / D + eps);
    for (long d = threadIdx.x; d < D; d += blockDim.x) x[d] *= rs * (nw[d] + offset);
  }
  __syncthreads();  // rotary reads the partner element another thread wrote
  rotate_head(out, x, cs, sn, m, rot, D, threadIdx.x, blockDim.x);
  __syncthreads();  // (x and ts are free again, out complete)
}

// block per (row, head) of q, then k, then v (blockIdx.y): the head's D values with the LoRA term, normed, rotated
// (smem: the head's values and scratch, D floats each, then the row's t, r floats)
__global__ void qkv_rope_cache_kernel(float* qOut, void* kc, void* vc, int dtKV, const int32_t* rows, const float* yq, long ldq,
                                      const float* yk, const float* yv, long ldkv, LoraUp lq, LoraUp lk, LoraUp lv, const float* qNorm,
                                      const float* kNorm, float eps, float offset, const float* cs, const float* sn, long rot, long Hq,
                                      long Hkv, long D) {
  extern __shared__ float x[];
  __shared__ float sh[32];
  const long m = blockIdx.x, hy = blockIdx.y;
  const int sec = hy < Hq ? 0 : hy < Hq + Hkv ? 1 : 2;  // q, k, v
  const long hh = sec == 0 ? hy : sec == 1 ? hy - Hq : hy - Hq - Hkv;
  const float* y = (sec == 0 ? yq : sec == 1 ? yk : yv) + m * (sec == 0 ? ldq : ldkv) + hh * D;
  float* out = x + D;
  head_prep(out, x, x + 2 * D, sh, y, sec == 0 ? lq : sec == 1 ? lk : lv, m, hh * D, sec == 0 ? qNorm : sec == 1 ? kNorm : nullptr, eps, offset,
            cs, sn, sec < 2 ? rot : 0, D);
  for (long d = threadIdx.x; d < D; d += blockDim.x) {
    const float v = out[d];
    if (sec == 0) qOut[(m * Hq + hh) * D + d] = v;
    else {
      void* cache = sec == 1 ? kc : vc;
      const long at = (long)rows[m] * Hkv * D + hh * D + d;
      if (dtKV == F32) ((float*)cache)[at] = v;
      else store16(cache, dtKV, at, v);
    }
  }
}

// The decode step's q/k/v kernel and attention in one (T = 1): block per (q head h, row b). The block makes its q head,
// and its kv head's new key and value, as qkv_rope_cache does; the first q head of each kv group writes them to the
// cache, and every block of the group attends to them from shared memory, skipping their cache slot (decode_attend).
// The new key's slot jnew = rows[b] - b·capacity (capacity = kvStrideB / (Hkv·D)) must be one of the row's S keys.
// smem: q, the new key and value and a scratch head, 32·NDL floats each (static), then t, r floats (dynamic)
template <int NDL>
__global__ void __launch_bounds__(DEC_WARPS * 32) qkv_attention_decode_kernel(
    float* o, void* o16, int dt16, void* kc, void* vc, int dtKV, const int32_t* rows, const float* yq, long ldq, const float* yk,
    const float* yv, long ldkv, LoraUp lq, LoraUp lk, LoraUp lv, const float* qNorm, const float* kNorm, float eps, float offset,
    const float* cs, const float* sn, long rot, long Hq, long Hkv, long D, const int32_t* keyMask, long S, long kvStrideB, float scale,
    long window, float softcap) {
  pdl_wait();
  pdl_trigger();
  constexpr int DP = 32 * NDL;
  __shared__ float qs[DP], kn[DP], vn[DP], xs[DP], sh[32];
  extern __shared__ float ts[];
  const long h = blockIdx.x, b = blockIdx.y, hk = h / (Hq / Hkv);
  head_prep(qs, xs, ts, sh, yq + b * ldq + h * D, lq, b, h * D, qNorm, eps, offset, cs, sn, rot, D);
  head_prep(kn, xs, ts, sh, yk + b * ldkv + hk * D, lk, b, hk * D, kNorm, eps, offset, cs, sn, rot, D);
  head_prep(vn, xs, ts, sh, yv + b * ldkv + hk * D, lv, b, hk * D, nullptr, eps, offset, cs, sn, 0, D);
  const long at = (long)rows[b] * Hkv * D + hk * D;
  for (long d = threadIdx.x; d < DP; d += blockDim.x) {
    if (d >= D) { qs[d] = 0.f; continue; }
    qs[d] *= scale;
    if (dtKV == F32) {
      if (h % (Hq / Hkv) == 0) { ((float*)kc)[at + d] = kn[d]; ((float*)vc)[at + d] = vn[d]; }
    } else {  // the values the cache holds, rounded, are the ones attended to
      if (h % (Hq / Hkv) == 0) { store16(kc, dtKV, at + d, kn[d]); store16(vc, dtKV, at + d, vn[d]); }
      kn[d] = round16(kn[d], dtKV);
      vn[d] = round16(vn[d], dtKV);
    }
  }
  __syncthreads();
  const long cap = kvStrideB / (Hkv * D);
  decode_attend<NDL>(o, nullptr, o16, dt16, b * Hq + h, qs, kc, vc, b * kvStrideB + hk * D, Hkv * D, keyMask ? keyMask + b * S : nullptr,
                     S, D, (kvStrideB & 3) == 0, window, softcap, dtKV, (long)rows[b] - b * cap, kn, vn);
}

// head_prep by one warp (the calling warp's lanes only, no block barrier), with the row's t already staged and
// scaled in ts: a block makes several heads at once, a warp each
__device__ __forceinline__ void warp_head_prep(float* out, float* x, const float* ts, const float* y, const LoraUp& lo, long m, long col0,
                                               const float* nw, float eps, float offset, const float* cs, const float* sn, long rot, long D) {
  const int lane = threadIdx.x & 31;
  float ss = 0.f;
  for (long d = lane; d < D; d += 32) {
    float v = y[d];
    if (lo.B) v += lora_dot(ts, lo.B + (col0 + d) * lo.r, lo.r);
    x[d] = v;
    ss += v * v;
  }
  if (nw) {
    const float rs = rsqrtf(warp_sum(ss) / D + eps);
    for (long d = lane; d < D; d += 32) x[d] *= rs * (nw[d] + offset);
  }
  __syncwarp();  // rotary reads the partner element another lane wrote
  rotate_head(out, x, cs, sn, m, rot, D, lane, 32);
  __syncwarp();
}

// The same with a block per (kv head hk, row b), for the group's G = Hq / Hkv query heads at once
// (decode_attend_group): the group's cached keys and values are read once instead of G times. The block's warps make
// the G query heads and the new key and value, one head per warp at a time; the block writes the key and value to
// the cache and attends.
// smem (dynamic): the row's t of q, k and v (rpad floats each: the largest rank rounded up to 4), the G query heads
// (DP floats each), the merge's DEC_WARPS · G · DP floats
template <int NDL>
__global__ void __launch_bounds__(DEC_WARPS * 32) qkv_attention_decode_group_kernel(
    float* o, void* o16, int dt16, void* kc, void* vc, int dtKV, const int32_t* rows, const float* yq, long ldq, const float* yk,
    const float* yv, long ldkv, LoraUp lq, LoraUp lk, LoraUp lv, const float* qNorm, const float* kNorm, float eps, float offset,
    const float* cs, const float* sn, long rot, long Hq, long Hkv, long D, const int32_t* keyMask, long S, long kvStrideB, float scale,
    long window, float softcap, long rpad) {
  pdl_wait();
  pdl_trigger();
  constexpr int DP = 32 * NDL;
  __shared__ float kn[DP], vn[DP], xw[DEC_WARPS][DP];
  extern __shared__ float dyn[];
  const long hk = blockIdx.x, b = blockIdx.y;
  const int G = (int)(Hq / Hkv), w = threadIdx.x >> 5;
  float *tq = dyn, *tk = tq + rpad, *tv = tk + rpad, *qs = tv + rpad, *wacc = qs + (long)G * DP;
  for (long j = threadIdx.x; j < rpad; j += blockDim.x) {
    if (lq.B && j < lq.r) tq[j] = lq.t[b * lq.ldt + j] * lq.scale;
    if (lk.B && j < lk.r) tk[j] = lk.t[b * lk.ldt + j] * lk.scale;
    if (lv.B && j < lv.r) tv[j] = lv.t[b * lv.ldt + j] * lv.scale;
  }
  __syncthreads();
  for (int x = w; x < G + 2; x += DEC_WARPS) {  // heads: the G queries, then the key, then the value
    if (x < G) {
      const long h = hk * G + x;
      warp_head_prep(qs + (long)x * DP, xw[w], tq, yq + b * ldq + h * D, lq, b, h * D, qNorm, eps, offset, cs, sn, rot, D);
    } else if (x == G) {
      warp_head_prep(kn, xw[w], tk, yk + b * ldkv + hk * D, lk, b, hk * D, kNorm, eps, offset, cs, sn, rot, D);
    } else {
      warp_head_prep(vn, xw[w], tv, yv + b * ldkv + hk * D, lv, b, hk * D, nullptr, eps, offset, cs, sn, 0, D);
    }
  }
  __syncthreads();
  const long at = (long)rows[b] * Hkv * D + hk * D;
  for (long d = threadIdx.x; d < DP; d += blockDim.x) {
    for (int g = 0; g < G; g++) qs[(long)g * DP + d] = d < D ? qs[(long)g * DP + d] * scale : 0.f;
    if (d >= D) continue;
    if (dtKV == F32) {
      ((float*)kc)[at + d] = kn[d];
      ((float*)vc)[at + d] = vn[d];
    } else {  // the values the cache holds, rounded, are the ones attended to
      store16(kc, dtKV, at + d, kn[d]);
      store16(vc, dtKV, at + d, vn[d]);
      kn[d] = round16(kn[d], dtKV);
      vn[d] = round16(vn[d], dtKV);
    }
  }
  __syncthreads();
  const long cap = kvStrideB / (Hkv * D);
  decode_attend_group<NDL>(o, o16, dt16, b * Hq + hk * G, G, qs, kc, vc, b * kvStrideB + hk * D, Hkv * D, keyMask ? keyMask + b * S : nullptr,
                           S, D, (kvStrideB & 3) == 0, window, softcap, dtKV, (long)rows[b] - b * cap, kn, vn, wacc);
}

// whether decode steps attend by kv group (qkv_attention_decode_group_kernel; AHA_DECODE_GROUP=1, set_decode_group)
bool g_decode_group = env_is("AHA_DECODE_GROUP", "1");

// r is staged in shared memory: the kernels take ranks up to this (the model's decode path checks it first)
constexpr long MAX_RANK = 1024;
void check_rank(const LoraUp& lo, const char* name) {
  if (lo.B && (lo.r < 1 || lo.r > MAX_RANK)) throw std::runtime_error(std::string(name) + ": LoRA rank " + std::to_string(lo.r) + " outside 1.." + std::to_string(MAX_RANK));
}
// the largest rank of q/k/v's LoRA terms (0: none), each checked: the t a q/k/v kernel stages in shared memory
long qkv_rank(const LoraUp& lq, const LoraUp& lk, const LoraUp& lv, const char* name) {
  long r = 0;
  for (const LoraUp* lo : {&lq, &lk, &lv}) {
    check_rank(*lo, name);
    if (lo->B) r = std::max(r, lo->r);
  }
  return r;
}
int threads_for(long n) { return n >= 1024 ? 512 : n >= 256 ? 256 : n >= 64 ? 64 : 32; }

}  // namespace

void add_rms_norm(float* y, void* y16, int dt16, float* h, const float* add, long ldAdd, LoraUp lo, const float* src, long ldSrc,
                  const float* Ain, long Kin, const float* w, long M, long C, float eps, float offset, float* tOut, const float* Aout,
                  long Rout, long tParts) {
  if (M == 0) return;
  check_rank(lo, "add_rms_norm");
  if (tParts < 1) throw std::runtime_error("add_rms_norm: " + std::to_string(tParts) + " partial sums of t");
  if (!lo.B) lo.r = 0;
  if (lo.B && !lo.t && !(src && Ain)) throw std::runtime_error("add_rms_norm: a LoRA term needs its t or its source and A");
  const size_t smem = (lo.r + (Aout ? C : 0)) * sizeof(float);
  if (smem > 48 * 1024) throw std::runtime_error("add_rms_norm: " + std::to_string(C) + " features too many to stage");
  launch_pdl("add_rms_norm", add_rms_norm_kernel, dim3((unsigned)M), dim3(threads_for(C)), smem, y, y16, dt16, h, add, ldAdd, lo, src, ldSrc, Ain,
             Kin, w, C, eps, offset, tOut, Aout, Rout, tParts);
}

void glu_lora(float* out, void* out16, int dt16, const float* g, const float* u, long ld, LoraUp lg, LoraUp lu, long M, long I, int act,
              float* tOut, const float* Aout, long Rout) {
  if (M * I == 0) return;
  check_rank(lg, "glu_lora");
  check_rank(lu, "glu_lora");
  if (!lg.B) lg.r = 0;  // (no smem for an absent term)
  if (!lu.B) lu.r = 0;
  if (!Aout) Rout = 0;
  const size_t smem = (GLU_ROWS * (lg.r + lu.r) + (Aout ? (GLU_ROWS + Rout) * GLU_PAD : 0)) * sizeof(float);
  if (smem > 48 * 1024)
    throw std::runtime_error("glu_lora: LoRA ranks " + std::to_string(lg.r) + " + " + std::to_string(lu.r) + " (outgoing " + std::to_string(Rout) + ") too large");
  launch_pdl("glu_lora", glu_lora_kernel, dim3((unsigned)((I + GLU_COLS - 1) / GLU_COLS), (unsigned)((M + GLU_ROWS - 1) / GLU_ROWS)), dim3(GLU_COLS),
             smem, out, out16, dt16, g, u, ld, lg, lu, M, I, act, tOut, Aout, Rout);
}

void qkv_rope_cache(float* qOut, void* kc, void* vc, int dtKV, const int32_t* rows, const float* yq, long ldq, const float* yk,
                    const float* yv, long ldkv, LoraUp lq, LoraUp lk, LoraUp lv, const float* qNorm, const float* kNorm, float eps,
                    float offset, const float* cs, const float* sn, long rot, long M, long Hq, long Hkv, long D) {
  if (M == 0) return;
  const long r = qkv_rank(lq, lk, lv, "qkv_rope_cache");
  qkv_rope_cache_kernel<<<dim3((unsigned)M, (unsigned)(Hq + 2 * Hkv)), D >= 128 ? 64 : 32, (2 * D + r) * sizeof(float), stream()>>>(
      qOut, kc, vc, dtKV, rows, yq, ldq, yk, yv, ldkv, lq, lk, lv, qNorm, kNorm, eps, offset, cs, sn, rot, Hq, Hkv, D);
  check_launch("qkv_rope_cache");
}

void qkv_attention_decode(float* o, void* o16, int dt16, void* kc, void* vc, int dtKV, const int32_t* rows, const float* yq, long ldq,
                          const float* yk, const float* yv, long ldkv, LoraUp lq, LoraUp lk, LoraUp lv, const float* qNorm,
                          const float* kNorm, float eps, float offset, const float* cs, const float* sn, long rot, long B, long Hq,
                          long Hkv, long D, const int32_t* keyMask, long S, long kvStrideB, float scale, long window, float softcap) {
  if (B * Hq == 0) return;
  if (dtKV != F32 && dtKV != BF16 && dtKV != F16) throw std::runtime_error("qkv_attention_decode: keys and values must be f32, bf16 or f16");
  if (Hkv < 1 || Hq % Hkv || kvStrideB % (Hkv * D)) throw std::runtime_error("qkv_attention_decode: bad heads or cache stride");
  const long r = qkv_rank(lq, lk, lv, "qkv_attention_decode");
  const long G = Hq / Hkv, rpad = (r + 3) / 4 * 4;
  AHA_DISPATCH_D(D, {
    // (static shared memory: kn, vn, the warps' scratch heads, decode_attend_group's merge state; 48 KB in all)
    const size_t dyn = (size_t)(3 * rpad + G * 32 * N_ + (long)DEC_WARPS * G * 32 * N_) * sizeof(float);
    const size_t stat = (size_t)((2 + DEC_WARPS) * 32 * N_ + 2 * DEC_WARPS * DEC_GMAX + DEC_GMAX) * sizeof(float);
    if (g_decode_group && G <= DEC_GMAX && dyn + stat + 256 <= 48 * 1024) {
      launch_pdl("qkv_attention_decode (by kv group)", qkv_attention_decode_group_kernel<N_>, dim3((unsigned)Hkv, (unsigned)B), dim3(DEC_WARPS * 32),
                 dyn, o, o16, dt16, kc, vc, dtKV, rows, yq, ldq, yk, yv, ldkv, lq, lk, lv, qNorm, kNorm, eps, offset, cs, sn, rot, Hq, Hkv, D,
                 keyMask, S, kvStrideB, scale, window, softcap, rpad);
      return;
    }
  });
  AHA_DISPATCH_D(D, (launch_pdl("qkv_attention_decode", qkv_attention_decode_kernel<N_>, dim3((unsigned)Hq, (unsigned)B), dim3(DEC_WARPS * 32),
                               r * sizeof(float), o, o16, dt16, kc, vc, dtKV, rows, yq, ldq, yk, yv, ldkv, lq, lk, lv, qNorm, kNorm, eps, offset,
                               cs, sn, rot, Hq, Hkv, D, keyMask, S, kvStrideB, scale, window, softcap)));
}

void set_decode_group(bool on) { g_decode_group = on; }

}  // namespace aha_cuda
