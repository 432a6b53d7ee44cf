// Fused lm-head + log-softmax + gather on the GPU, in chunks of rows so the [N, V] logits never exist whole:
// per chunk z = softcap(h Wᵀ) · invTemp through the GEMM (bf16 weights on tensor cores by default), then one block
// per row reduces max / sum / entropy online and gathers z[y]. Backward recomputes the chunk's logits, turns them
// in place into dz = g (1[v=y] − p) · invTemp (· softcap'), and runs dh += dz W (dz rounded to the weight's
// 16-bit type in the default GEMM mode) and dW += dzᵀ h when W trains.
#include "common.cuh"

namespace aha_cuda {

namespace {
// rows per chunk: at most 2^27 f32 logits (512 MiB), and at most 65535 (the backward's grid.y)
// (AHA_LM_CHUNK_ROWS: fewer rows, so that a test's small vocabulary shows the logits never exist whole: test/long-context)
long chunk_rows(long N, long V) {
  static const long cap = getenv("AHA_LM_CHUNK_ROWS") ? std::max(1L, atol(getenv("AHA_LM_CHUNK_ROWS"))) : 65535L;
  long r = std::min({(1L << 27) / V, 65535L, cap});
  return r < 1 ? 1 : r > N ? N : r;
}

// z <- softcap * tanh(z / softcap) * invTemp, keeping the raw value for backward when raw != nullptr
__global__ void softcap_kernel(float* z, float* raw, long n, float invTemp, float softcap) {
  for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
    float x = z[i];
    if (raw) raw[i] = x;
    z[i] = softcap * tanhf(x / softcap) * invTemp;
  }
}

// one block per row: lse, logp of the target, entropy
__global__ void row_stats_kernel(float* logp, float* lse, float* entropy, const float* z, const int32_t* targets, long V) {
  __shared__ float sm[32], ss[32], sz[32];
  long r = blockIdx.x;
  const float* zr = z + r * V;
  float m = -INFINITY, s = 0.f, t = 0.f;  // running max, sum e^(z-m), sum e^(z-m) z
  for (long v = threadIdx.x; v < V; v += blockDim.x) {
    float x = zr[v];
    if (x > m) { float c = __expf(m - x); s *= c; t *= c; m = x; }
    float e = __expf(x - m);
    s += e; t += e * x;
  }
  // combine across the block
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o), t2 = __shfl_xor_sync(0xffffffffu, t, o);
    float mn = fmaxf(m, m2);
    float c1 = mn == -INFINITY ? 0.f : __expf(m - mn), c2 = mn == -INFINITY ? 0.f : __expf(m2 - mn);
    s = s * c1 + s2 * c2; t = t * c1 + t2 * c2; m = mn;
  }
  if (lane == 0) { sm[w] = m; ss[w] = s; sz[w] = t; }
  __syncthreads();
  if (w == 0) {
    m = lane < nw ? sm[lane] : -INFINITY; s = lane < nw ? ss[lane] : 0.f; t = lane < nw ? sz[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1) {
      float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o), t2 = __shfl_xor_sync(0xffffffffu, t, o);
      float mn = fmaxf(m, m2);
      float c1 = mn == -INFINITY ? 0.f : __expf(m - mn), c2 = mn == -INFINITY ? 0.f : __expf(m2 - mn);
      s = s * c1 + s2 * c2; t = t * c1 + t2 * c2; m = mn;
    }
    if (lane == 0) {
      float L = m + logf(s);
      lse[r] = L;
      long y = targets[r];
      logp[r] = (y >= 0 && y < V) ? zr[y] - L : __int_as_float(0x7fc00000);
      if (entropy) entropy[r] = L - t / s;
    }
  }
}

// dz[r, v] = g_r (1[v = y_r] − exp(z − lse_r)) · invTemp · (1 − tanh²(raw / cap)); written as f32 in place or as 16-bit
__global__ void dz_kernel(float* z, void* dz16, int dt16, const float* raw, const float* dlogp, const float* lse, const int32_t* targets,
                          long V, float invTemp, float softcap) {
  long r = blockIdx.y;
  float g = dlogp[r], L = lse[r];
  long y = targets[r];
  for (long v = blockIdx.x * (long)blockDim.x + threadIdx.x; v < V; v += (long)gridDim.x * blockDim.x) {
    long i = r * V + v;
    float d = g * ((v == y ? 1.f : 0.f) - __expf(z[i] - L)) * invTemp;
    if (softcap > 0) { float t = tanhf(raw[i] / softcap); d *= 1.f - t * t; }
    if (dz16) {
      if (dt16 == BF16) ((__nv_bfloat16*)dz16)[i] = __float2bfloat16(d);
      else ((__half*)dz16)[i] = __float2half(d);
    } else z[i] = d;
  }
}

void chunk_logits(float* z, float* raw, const float* h, const void* W, int dtW, long rows, long C, long V, float invTemp, float softcap) {
  gemm(z, h, F32, W, dtW, 1, rows, V, C, false, true, C, C, V, 0, 0, 0, softcap > 0 ? 1.0f : invTemp, 0.0f);
  if (softcap > 0) {
    softcap_kernel<<<blocks_for(rows * V, 256, 8192), 256, 0, stream()>>>(z, raw, rows * V, invTemp, softcap);
    check_launch("lm_logp softcap");
  }
}
}  // namespace

void lm_logp_forward(float* logp, float* lse, float* entropy, const float* h, const void* W, int dtW,
                     const int32_t* targets, long N, long C, long V, float invTemp, float softcap) {
  if (N == 0) return;
  long R = chunk_rows(N, V);
  Scratch z((size_t)R * V * 4);
  for (long n0 = 0; n0 < N; n0 += R) {
    long rows = std::min(R, N - n0);
    chunk_logits(z.as<float>(), nullptr, h + n0 * C, W, dtW, rows, C, V, invTemp, softcap);
    row_stats_kernel<<<rows, 512, 0, stream()>>>(logp + n0, lse + n0, entropy ? entropy + n0 : nullptr, z.as<float>(), targets + n0, V);
    check_launch("lm_logp_forward");
  }
}

void lm_logp_backward(float* dh, float* dW, const float* dlogp, const float* lse, const float* h, const void* W, int dtW,
                      const int32_t* targets, long N, long C, long V, float invTemp, float softcap) {
  if (N == 0) return;
  long R = chunk_rows(N, V);
  bool half = dtW != F32 && gemm_mode() == 0;  // dz in W's 16-bit type for the tensor-core GEMM
  Scratch z((size_t)R * V * 4), raw(softcap > 0 ? (size_t)R * V * 4 : 0), dz16(half ? (size_t)R * V * 2 : 0);
  for (long n0 = 0; n0 < N; n0 += R) {
    long rows = std::min(R, N - n0);
    chunk_logits(z.as<float>(), raw.as<float>(), h + n0 * C, W, dtW, rows, C, V, invTemp, softcap);
    dim3 grid((unsigned)std::min<long>((V + 255) / 256, 64), (unsigned)rows);
    dz_kernel<<<grid, 256, 0, stream()>>>(z.as<float>(), dz16.p, dtW, raw.as<float>(), dlogp + n0, lse + n0, targets + n0, V, invTemp, softcap);
    check_launch("lm_logp_backward dz");
    // dh[rows, C] += dz[rows, V] W[V, C]
    if (half) gemm(dh + n0 * C, dz16.p, dtW, W, dtW, 1, rows, C, V, false, false, V, C, C, 0, 0, 0, 1.0f, 1.0f);
    else gemm(dh + n0 * C, z.p, F32, W, dtW, 1, rows, C, V, false, false, V, C, C, 0, 0, 0, 1.0f, 1.0f);
    // dW[V, C] += dzᵀ h
    if (dW) {
      if (half) throw std::runtime_error("aha cuda lm_logp_backward: a gradient for a 16-bit lm-head is not supported");
      gemm(dW, z.p, F32, h + n0 * C, F32, 1, V, C, rows, true, false, V, C, C, 0, 0, 0, 1.0f, 1.0f);
    }
  }
}

}  // namespace aha_cuda
