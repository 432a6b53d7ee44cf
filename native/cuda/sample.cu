// sample_rows on the GPU: one block (1024 threads) per row of logits [B, V], so generation reads back B token ids
// and B log-probs instead of [B, V] logits. Same contract as the CPU reference (native/cpu/sample.cpp):
// p = exp((x − max) / temperature) rounded to f32 (computed once in double into a scratch row, so the CPU and
// the GPU see the same p), top-k / top-p thresholds by a 30-step binary search over the f32 bit patterns of p
// (each step one block-wide count or mass reduction over the row; no sort), min-p as minP · pmax, then an
// inverse-CDF draw in index order: a block pass sums the kept mass per warp-sized chunk of the row, the chunk
// holding u·S is found, and its warp scans it 32 tokens at a time. Masses are accumulated in double.
// Cost: 3 passes over the row without top-k / top-p, about 31 more for each of them (L2-resident rows).
// Simplified: one block per row (B ≤ 2^31); a radix histogram would cut the 30 search passes to 3.
// Without top-k / top-p (greedy, temperature, min-p: GRPO's usual sampling) a row is split over blocks of kSeg
// logits instead, since one block per row leaves most of the GPU idle at B = 64 (0.18 ms per call at V = 151,936
// on an H200): segment argmaxes, then segment masses, then one block per row finds the segment holding u·S and
// scans it. Same p, same kept set, same draw rule; the sums are added in another order (double).
#include "common.cuh"
#include <climits>

namespace aha_cuda {

namespace {
constexpr int kThreads = 1024;
constexpr unsigned kFull = 0xffffffffu;

template <class T> __device__ __forceinline__ T warp_sum_t(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
// block sum; every thread gets the same value (the butterfly adds the same pairs in every lane)
template <class T> __device__ __forceinline__ T block_sum_t(T v, T* sh /* [32] */) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum_t(v);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  return warp_sum_t(lane < nw ? sh[lane] : T(0));
}
// (value, index) argmax, lowest index on ties
__device__ __forceinline__ void arg_better(float& m, long long& i, float m2, long long i2) {
  if (m2 > m || (m2 == m && i2 < i)) { m = m2; i = i2; }
}
__device__ __forceinline__ void warp_argmax(float& m, long long& i) {
  for (int o = 16; o > 0; o >>= 1) arg_better(m, i, __shfl_xor_sync(kFull, m, o), __shfl_xor_sync(kFull, i, o));
}
__device__ __forceinline__ long long warp_max_ll(long long v) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
__device__ __forceinline__ long long block_argmax(float m, long long i, float* shm, long long* shi) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  warp_argmax(m, i);
  __syncthreads();
  if (lane == 0) { shm[w] = m; shi[w] = i; }
  __syncthreads();
  m = lane < nw ? shm[lane] : -INFINITY;
  i = lane < nw ? shi[lane] : LLONG_MAX;
  warp_argmax(m, i);
  return i;
}

__global__ void __launch_bounds__(kThreads) sample_rows_kernel(int32_t* tokens, float* logprobs, float* pbuf,
                                                                const float* logits, const float* uniforms, long V,
                                                                float temperature, long topK, float topP, float minP) {
  pdl_wait();
  pdl_trigger();
  __shared__ double shd[32], wsum[32];
  __shared__ long long shl[32], wlast[32];
  __shared__ float shf[32];
  __shared__ int shc[32];
  __shared__ int selW;
  __shared__ double selBase, selS;
  __shared__ long long selTok;
  const long r = blockIdx.x;
  const float* x = logits + r * V;  // [V]
  float* p = pbuf + r * V;          // [V] scratch
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, nw = blockDim.x >> 5;
  const long stride = blockDim.x;

  // argmax of the raw logits (lowest index on ties; NaN never wins)
  float m = -INFINITY;
  long long bi = LLONG_MAX;
  for (long v = tid; v < V; v += stride) {
    float xv = x[v];
    if (xv > m || (xv == m && v < bi)) { m = xv; bi = v; }
  }
  bi = block_argmax(m, bi, shf, shl);
  if (bi >= V) bi = 0;
  const double mx = x[bi];

  if (!(temperature > 0)) {  // greedy: log-softmax of the raw logits at the argmax
    double s = 0;
    for (long v = tid; v < V; v += stride) s += exp((double)x[v] - mx);
    s = block_sum_t(s, shd);
    if (tid == 0) { tokens[r] = (int32_t)bi; logprobs[r] = (float)((double)x[bi] - mx - log(s)); }
    return;
  }

  const double T = temperature;
  for (long v = tid; v < V; v += stride) p[v] = (float)exp(((double)x[v] - mx) / T);  // p[bi] = 1
  __syncthreads();  // the draw below reads p in warp chunks, not in this thread's stride
  float tk = 0.f, tp = 0.f;
  if (topK > 0 && topK < V) {  // the largest τ with count(p ≥ τ) ≥ k
    unsigned bits = 0;
    for (int b = 29; b >= 0; b--) {
      const unsigned cand = bits | (1u << b);
      const float t = __uint_as_float(cand);
      int c = 0;
      for (long v = tid; v < V; v += stride) c += p[v] >= t;
      if (block_sum_t(c, shc) >= topK) bits = cand;
    }
    tk = __uint_as_float(bits);
  }
  if (topP < 1.f) {  // the largest τ with mass(p ≥ max(τ, τ_k)) ≥ topP · mass(p ≥ τ_k)
    double tot = 0;
    for (long v = tid; v < V; v += stride) { float q = p[v]; if (q >= tk) tot += q; }
    const double target = (double)topP * block_sum_t(tot, shd);
    unsigned bits = 0;
    for (int b = 29; b >= 0; b--) {
      const unsigned cand = bits | (1u << b);
      const float t = fmaxf(__uint_as_float(cand), tk);
      double s = 0;
      for (long v = tid; v < V; v += stride) { float q = p[v]; if (q >= t) s += q; }
      if (block_sum_t(s, shd) >= target) bits = cand;
    }
    tp = __uint_as_float(bits);
  }
  const float tau = fminf(fmaxf(fmaxf(tk, tp), minP), 1.f);  // minP · pmax with pmax = 1; the top token always kept

  // kept mass and last kept index per warp chunk [v0, v1)
  const long chunk = (V + nw - 1) / nw, v0 = w * chunk, v1 = v0 + chunk < V ? v0 + chunk : V;
  double s = 0;
  long long last = -1;
  for (long v = v0 + lane; v < v1; v += 32) {
    float q = p[v];
    if (q >= tau && q > 0) { s += q; last = v; }
  }
  s = warp_sum_t(s);
  for (int o = 16; o > 0; o >>= 1) last = max(last, __shfl_xor_sync(kFull, last, o));
  if (lane == 0) { wsum[w] = s; wlast[w] = last; }
  __syncthreads();
  if (tid == 0) {
    double S = 0;
    long long lastAll = bi;
    for (int i = 0; i < nw; i++) { S += wsum[i]; if (wlast[i] >= 0) lastAll = wlast[i]; }
    const double target = (double)uniforms[r] * S;
    double base = 0;
    int sel = -1;
    for (int i = 0; i < nw; i++) {
      if (target < base + wsum[i]) { sel = i; break; }
      base += wsum[i];
    }
    selW = sel; selBase = base; selS = S; selTok = lastAll;  // lastAll: rounding put u·S past the kept mass
  }
  __syncthreads();
  if (w == selW) {  // this warp's chunk holds u·S: scan it 32 tokens at a time
    const double target = (double)uniforms[r] * selS;
    long long tok = wlast[w];
    double run = selBase;
    for (long s0 = v0; s0 < v1; s0 += 32) {
      const long v = s0 + lane;
      const float q = v < v1 ? p[v] : 0.f;
      double a = q >= tau && q > 0 ? (double)q : 0.0;
      for (int o = 1; o < 32; o <<= 1) {
        double n = __shfl_up_sync(kFull, a, o);
        if (lane >= o) a += n;
      }
      const unsigned hit = __ballot_sync(kFull, target < run + a);
      if (hit) { tok = s0 + __ffs(hit) - 1; break; }
      run += __shfl_sync(kFull, a, 31);
    }
    if (lane == 0) selTok = tok;
  }
  __syncthreads();
  if (tid == 0) {
    const long long tok = selTok;
    tokens[r] = (int32_t)tok;
    logprobs[r] = (float)(log((double)p[tok]) - log(selS));
  }
}
// ---- split-row path (no top-k / top-p) -------------------------------------------------------------------------
constexpr int kSegThreads = 256;
constexpr long kSeg = 4096;  // logits per segment block (16 per thread)

// the row's argmax from its nseg segment partials (pm values, pi indices), in every thread (lowest index on ties)
__device__ __forceinline__ long long row_argmax(const float* pm, const long long* pi, int nseg, float* shm, long long* shi) {
  float m = -INFINITY;
  long long bi = LLONG_MAX;
  for (int s = threadIdx.x; s < nseg; s += blockDim.x) arg_better(m, bi, pm[s], pi[s]);
  return block_argmax(m, bi, shm, shi);
}

// grid (nseg, rows): argmax of each segment's raw logits → pm, pi [rows, nseg]
__global__ void __launch_bounds__(kSegThreads) seg_argmax_kernel(float* pm, long long* pi, const float* logits, long V, int nseg) {
  pdl_wait();
  pdl_trigger();
  __shared__ float shf[32];
  __shared__ long long shl[32];
  const long r = blockIdx.y, v0 = blockIdx.x * kSeg, v1 = v0 + kSeg < V ? v0 + kSeg : V;
  const float* x = logits + r * V;  // [V]
  float m = -INFINITY;
  long long bi = LLONG_MAX;
  for (long v = v0 + threadIdx.x; v < v1; v += blockDim.x) {
    const float xv = x[v];
    if (xv > m || (xv == m && v < bi)) { m = xv; bi = v; }
  }
  bi = block_argmax(m, bi, shf, shl);
  if (threadIdx.x == 0) {
    pm[r * nseg + blockIdx.x] = bi < V ? x[bi] : -INFINITY;
    pi[r * nseg + blockIdx.x] = bi;
  }
}

// grid (nseg, rows): the row's argmax from the partials, then each segment's mass: greedy Σ exp(x − max), else the
// kept Σ p with p = f32(exp((x − max) / T)), kept when p ≥ tau and p > 0, and its last kept index (−1 if none)
__global__ void __launch_bounds__(kSegThreads) seg_mass_kernel(double* ps, long long* plast, const float* pm, const long long* pi,
                                                               const float* logits, long V, int nseg, float temperature, float tau) {
  pdl_wait();
  pdl_trigger();
  __shared__ float shf[32];
  __shared__ long long shl[32];
  __shared__ double shd[32];
  const long r = blockIdx.y, v0 = blockIdx.x * kSeg, v1 = v0 + kSeg < V ? v0 + kSeg : V;
  const float* x = logits + r * V;  // [V]
  long long bi = row_argmax(pm + r * nseg, pi + r * nseg, nseg, shf, shl);
  if (bi >= V) bi = 0;
  const double mx = x[bi], T = temperature;
  double s = 0;
  long long last = -1;
  for (long v = v0 + threadIdx.x; v < v1; v += blockDim.x) {
    if (!(temperature > 0)) { s += exp((double)x[v] - mx); continue; }
    const float q = (float)exp(((double)x[v] - mx) / T);
    if (q >= tau && q > 0) { s += q; last = v; }
  }
  s = block_sum_t(s, shd);
  __syncthreads();
  last = warp_max_ll(last);
  if ((threadIdx.x & 31) == 0) shl[threadIdx.x >> 5] = last;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) last = max(last, shl[w]);
    ps[r * nseg + blockIdx.x] = s;
    plast[r * nseg + blockIdx.x] = last;
  }
}

// grid rows: the draw. Greedy: the argmax and its log-softmax. Else the segment holding u·S (S = Σ segment masses,
// in segment order), then that segment in index order: each thread sums its 16 consecutive logits' kept p, a block
// scan gives each thread's start, and the thread whose range holds u·S walks it.
__global__ void __launch_bounds__(kSegThreads) seg_draw_kernel(int32_t* tokens, float* logprobs, const float* pm, const long long* pi,
                                                               const double* ps, const long long* plast, const float* logits,
                                                               const float* uniforms, long V, int nseg, float temperature, float tau) {
  pdl_wait();
  pdl_trigger();
  __shared__ float shf[32];
  __shared__ long long shl[32];
  __shared__ double shd[32];
  __shared__ int selSeg;
  __shared__ double selBase, selS;
  __shared__ unsigned long long selTok, hitTok;
  const long r = blockIdx.x;
  const float* x = logits + r * V;  // [V]
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  long long bi = row_argmax(pm + r * nseg, pi + r * nseg, nseg, shf, shl);
  if (bi >= V) bi = 0;
  const double mx = x[bi], T = temperature;
  const double* s = ps + r * nseg;  // [nseg]
  if (tid == 0) {
    double S = 0;
    long long lastAll = bi;
    for (int i = 0; i < nseg; i++) { S += s[i]; if (plast[r * nseg + i] >= 0) lastAll = plast[r * nseg + i]; }
    selS = S;
    selTok = (unsigned long long)lastAll;  // rounding put u·S past the kept mass
    selSeg = -1;
    selBase = 0;
    hitTok = ULLONG_MAX;
    if (temperature > 0) {
      const double target = (double)uniforms[r] * S;
      double base = 0;
      for (int i = 0; i < nseg; i++) {
        if (target < base + s[i]) { selSeg = i; break; }
        base += s[i];
      }
      selBase = base;
      if (selSeg >= 0) selTok = (unsigned long long)plast[r * nseg + selSeg];
    }
  }
  __syncthreads();
  if (!(temperature > 0)) {
    if (tid == 0) { tokens[r] = (int32_t)bi; logprobs[r] = (float)((double)x[bi] - mx - log(selS)); }
    return;
  }
  if (selSeg >= 0) {
    const long per = kSeg / kSegThreads, a0 = selSeg * kSeg + (long)tid * per, a1 = a0 + per < V ? a0 + per : V;
    double own = 0;
    for (long v = a0; v < a1; v++) {
      const float q = (float)exp(((double)x[v] - mx) / T);
      if (q >= tau && q > 0) own += q;
    }
    // inclusive scan of own over the block
    double inc = own;
    for (int o = 1; o < 32; o <<= 1) {
      const double n = __shfl_up_sync(kFull, inc, o);
      if (lane >= o) inc += n;
    }
    if (lane == 31) shd[w] = inc;
    __syncthreads();
    double before = 0;
    for (int i = 0; i < w; i++) before += shd[i];
    const double start = selBase + before + inc - own, target = (double)uniforms[r] * selS;
    if (target >= start && target < start + own) {  // one thread (the lowest wins if rounding makes two)
      double run = start;
      for (long v = a0; v < a1; v++) {
        const float q = (float)exp(((double)x[v] - mx) / T);
        if (!(q >= tau && q > 0)) continue;
        run += q;
        if (target < run) { atomicMin(&hitTok, (unsigned long long)v); break; }
      }
    }
  }
  __syncthreads();
  if (tid == 0) {
    const long long tok = hitTok != ULLONG_MAX ? (long long)hitTok : (long long)selTok;
    tokens[r] = (int32_t)tok;
    logprobs[r] = (float)(log((double)(float)exp(((double)x[tok] - mx) / T)) - log(selS));
  }
}

// one thread per (row, listed token); the tokens of a row are distinct, so no two threads touch one logit
__global__ void repetition_penalty_kernel(float* logits, const int32_t* ids, long B, long V, long L, float penalty) {
  for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < B * L; i += (long)gridDim.x * blockDim.x) {
    const long t = ids[i];
    if (t < 0 || t >= V) continue;
    float* z = logits + (i / L) * V + t;
    *z = *z > 0 ? *z / penalty : *z * penalty;
  }
}
}  // namespace

void repetition_penalty(float* logits, const int32_t* ids, long B, long V, long L, float penalty) {
  if (B * L == 0) return;
  repetition_penalty_kernel<<<blocks_for(B * L, 256), 256, 0, stream()>>>(logits, ids, B, V, L, penalty);
  check_launch("repetition_penalty");
}

void sample_rows(int32_t* tokens, float* logprobs, const float* logits, const float* uniforms, long B, long V,
                 float temperature, long topK, float topP, float minP) {
  if (B == 0 || V == 0) return;
  if (topK <= 0 || topK >= V) {
    if (!(topP < 1.f)) {  // split rows: partials [rows, nseg] of max, argmax, mass, last kept index
      const int nseg = (int)((V + kSeg - 1) / kSeg);
      const long R = std::min(B, 65535L);
      Scratch part((size_t)R * nseg * (4 + 8 + 8 + 8));
      double* ps = part.as<double>();
      long long* pi = (long long*)(ps + R * nseg);
      long long* plast = pi + R * nseg;
      float* pm = (float*)(plast + R * nseg);
      const float tau = fminf(fmaxf(minP, 0.f), 1.f);  // minP · pmax with pmax = 1; the top token always kept
      for (long r0 = 0; r0 < B; r0 += R) {
        const long rows = std::min(R, B - r0);
        const float* x = logits + r0 * V;
        launch_pdl("sample_rows (segment argmax)", seg_argmax_kernel, dim3(nseg, (unsigned)rows), dim3(kSegThreads), 0, pm, pi, x, V, nseg);
        launch_pdl("sample_rows (segment mass)", seg_mass_kernel, dim3(nseg, (unsigned)rows), dim3(kSegThreads), 0, ps, plast, pm, pi, x, V, nseg,
                   temperature, tau);
        launch_pdl("sample_rows (draw)", seg_draw_kernel, dim3((unsigned)rows), dim3(kSegThreads), 0, tokens + r0, logprobs + r0, pm, pi, ps, plast,
                   x, uniforms + r0, V, nseg, temperature, tau);
      }
      return;
    }
  }
  long R = (1L << 26) / V;  // rows per launch: at most 256 MiB of scratch p
  R = R < 1 ? 1 : R > B ? B : R;
  Scratch p(temperature > 0 ? (size_t)R * V * 4 : 0);
  for (long r0 = 0; r0 < B; r0 += R) {
    const long rows = std::min(R, B - r0);
    launch_pdl("sample_rows", sample_rows_kernel, dim3((unsigned)rows), dim3(kThreads), 0, tokens + r0, logprobs + r0, p.as<float>(), logits + r0 * V,
               uniforms + r0, V, temperature, topK, topP, minP);
  }
}

}  // namespace aha_cuda
