// Small CUDA kernels: RMSNorm, rotary, gated activations, embedding, elementwise, copies, reductions and AdamW.
// Same semantics as native/cpu/ops.cpp (accumulating outputs accumulate; buffers come zeroed).
// Column sums (dw, sum_rows, embedding backward) use f32 atomics: the order of additions is not fixed.
#include "common.cuh"
#include "../common/dropout_hash.h"

namespace aha_cuda {

#define GRID_LOOP(i, n) for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n); i += (long)gridDim.x * blockDim.x)

// ---------------- RMSNorm: one block per row ----------------
__global__ void rms_norm_forward_kernel(float* y, float* rstd, const float* x, const float* w, long C, float eps, float offset,
                                        void* y16, int dt16) {
  __shared__ float sh[32];
  long n = blockIdx.x;
  const float* xr = x + n * C;
  float ss = 0.f;
  for (long c = threadIdx.x; c < C; c += blockDim.x) ss += xr[c] * xr[c];
  ss = block_sum(ss, sh);
  float r = rsqrtf(ss / C + eps);
  if (rstd && threadIdx.x == 0) rstd[n] = r;
  for (long c = threadIdx.x; c < C; c += blockDim.x) {
    float v = xr[c] * r * (w ? w[c] + offset : 1.f);
    y[n * C + c] = v;
    if (y16) store16(y16, dt16, n * C + c, v);
  }
}
void rms_norm_forward(float* y, float* rstd, const float* x, const float* w, long N, long C, float eps, float offset, void* y16, int dt16) {
  if (N == 0) return;
  int th = C >= 1024 ? 512 : C >= 256 ? 256 : C >= 64 ? 64 : 32;
  rms_norm_forward_kernel<<<N, th, 0, stream()>>>(y, rstd, x, w, C, eps, offset, y16, dt16);
  check_launch("rms_norm_forward");
}

__global__ void rms_norm_backward_dx_kernel(float* dx, const float* dy, const float* x, const float* rstd, const float* w, long C, float offset) {
  __shared__ float sh[32];
  long n = blockIdx.x;
  const float *xr = x + n * C, *dyr = dy + n * C;
  float r = rstd[n], dot = 0.f;
  for (long c = threadIdx.x; c < C; c += blockDim.x) dot += dyr[c] * (w ? w[c] + offset : 1.f) * xr[c] * r;
  dot = block_sum(dot, sh);
  float m = dot / C;
  for (long c = threadIdx.x; c < C; c += blockDim.x) dx[n * C + c] += r * (dyr[c] * (w ? w[c] + offset : 1.f) - xr[c] * r * m);
}
// column sums out[c] += sum_r f(r, c), grid (ceil(C/32), slices), block (32, 8)
template <class F> __global__ void colsum_kernel(float* out, long R, long C, F f) {
  __shared__ float sh[8][33];
  long c = blockIdx.x * 32 + threadIdx.x;
  float s = 0.f;
  if (c < C)
    for (long r = blockIdx.y * 8 + threadIdx.y; r < R; r += (long)gridDim.y * 8) s += f(r, c);
  sh[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int i = 1; i < 8; i++) s += sh[i][threadIdx.x];
    atomicAdd(out + c, s);
  }
}
template <class F> void colsum(float* out, long R, long C, F f) {
  if (R == 0 || C == 0) return;
  long cb = (C + 31) / 32;
  long slices = std::min<long>((R + 63) / 64, std::max<long>(1, 8L * num_sms() / cb));
  slices = std::max<long>(1, std::min<long>(slices, 65535));
  colsum_kernel<<<dim3((unsigned)cb, (unsigned)slices), dim3(32, 8), 0, stream()>>>(out, R, C, f);
  check_launch("colsum");
}
struct RmsDw { const float *dy, *x, *rstd; long C; __device__ float operator()(long r, long c) const { return dy[r * C + c] * x[r * C + c] * rstd[r]; } };
void rms_norm_backward(float* dx, float* dw, const float* dy, const float* x, const float* rstd, const float* w, long N, long C, float offset) {
  if (N == 0) return;
  if (dx) {
    int th = C >= 1024 ? 512 : C >= 256 ? 256 : C >= 64 ? 64 : 32;
    rms_norm_backward_dx_kernel<<<N, th, 0, stream()>>>(dx, dy, x, rstd, w, C, offset);
    check_launch("rms_norm_backward");
  }
  if (dw) colsum(dw, N, C, RmsDw{dy, x, rstd, C});
}

// ---------------- rotary (rotate_half), thread per (row, head, pair) ----------------
// rows of x [N, H, D] and, when given, of x2 [N, H2, D] (queries and keys: one launch), sharing the tables cos/sin
__global__ void rope_kernel(float* y, const float* x, float* y2, const float* x2, const float* cs, const float* sn, long N,
                            long H, long H2, long D, long rot, bool inverse) {
  long half = rot / 2, per = (H + H2) * half;
  GRID_LOOP(idx, N * per) {
    long n = idx / per, hh = (idx % per) / half, i = idx % half;
    const float* xr = hh < H ? x + (n * H + hh) * D : x2 + (n * H2 + hh - H) * D;
    float* yr = hh < H ? y + (n * H + hh) * D : y2 + (n * H2 + hh - H) * D;
    float c = cs[n * half + i], s = inverse ? -sn[n * half + i] : sn[n * half + i];
    float x1 = xr[i], x2v = xr[i + half];
    yr[i] = x1 * c - x2v * s;
    yr[i + half] = x2v * c + x1 * s;
  }
}
__global__ void rope_pass_kernel(float* y, const float* x, long NH, long D, long rot) {
  long w = D - rot;
  GRID_LOOP(idx, NH * w) { long r = idx / w, i = rot + idx % w; y[r * D + i] = x[r * D + i]; }
}
void rope_forward(float* y, const float* x, const float* cs, const float* sn, long N, long H, long D, long rot, bool inverse,
                  float* y2, const float* x2, long H2) {
  if (N == 0) return;
  if (!y2) H2 = 0;
  rope_kernel<<<blocks_for(N * (H + H2) * (rot / 2), 256), 256, 0, stream()>>>(y, x, y2, x2, cs, sn, N, H, H2, D, rot, inverse);
  if (y != x && rot < D) rope_pass_kernel<<<blocks_for(N * H * (D - rot), 256), 256, 0, stream()>>>(y, x, N * H, D, rot);
  if (y2 && y2 != x2 && rot < D) rope_pass_kernel<<<blocks_for(N * H2 * (D - rot), 256), 256, 0, stream()>>>(y2, x2, N * H2, D, rot);
  check_launch("rope_forward");
}

// ---------------- gated activations ----------------
__global__ void glu_forward_kernel(float* out, const float* g, const float* u, long n, int act, void* out16, int dt16) {
  GRID_LOOP(i, n) {
    float v = act_f(g[i], act) * u[i];
    out[i] = v;
    if (out16) store16(out16, dt16, i, v);
  }
}
__global__ void glu_backward_kernel(float* dg, float* du, const float* dout, const float* g, const float* u, long n, int act) {
  GRID_LOOP(i, n) {
    if (dg) dg[i] += dout[i] * u[i] * act_df(g[i], act);
    if (du) du[i] += dout[i] * act_f(g[i], act);
  }
}
void glu_forward(float* out, const float* g, const float* u, long n, int act, void* out16, int dt16) {
  if (n == 0) return;
  glu_forward_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(out, g, u, n, act, out16, dt16);
  check_launch("glu_forward");
}
void glu_backward(float* dg, float* du, const float* dout, const float* g, const float* u, long n, int act) {
  if (n == 0) return;
  glu_backward_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(dg, du, dout, g, u, n, act);
  check_launch("glu_backward");
}

// ---------------- embedding ----------------
__global__ void embedding_forward_kernel(float* out, const int32_t* ids, const void* table, int dt, long N, long C, long V) {
  pdl_wait();
  pdl_trigger();
  GRID_LOOP(idx, N * C) {
    long n = idx / C, c = idx % C, id = ids[n];
    out[idx] = (id < 0 || id >= V) ? __int_as_float(0x7fc00000) : load_f(table, dt, id * C + c);
  }
}
__global__ void embedding_backward_kernel(float* dtable, const float* dout, const int32_t* ids, long N, long C) {
  GRID_LOOP(idx, N * C) atomicAdd(dtable + (long)ids[idx / C] * C + idx % C, dout[idx]);
}
// LoRA dropout masks, drawn by the CPU's hash (native/common: the same masks on both backends); the seed is read
// from the device, so a captured graph draws new masks at each replay
__global__ void dropout_mask_kernel(float* out, const int32_t* seed, uint32_t salt, long n, float keep, float scale) {
  const uint32_t sd = (uint32_t)seed[0];
  GRID_LOOP(i, n) out[i] = aha_common::dropout_uniform(sd, salt, i) < keep ? scale : 0.f;
}
void dropout_mask(float* out, const int32_t* seed, uint32_t salt, long n, float keep, float scale) {
  if (n == 0) return;
  dropout_mask_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(out, seed, salt, n, keep, scale);
  check_launch("dropout_mask");
}

// dst[rows[n], :] = src[n, :] and, when given, dst2[rows[n], :] = src2[n, :] (a KV cache's new keys and values)
__global__ void scatter_rows_kernel(void* dst, const float* src, void* dst2, const float* src2, const int32_t* rows, long N, long C, int dt) {
  GRID_LOOP(idx, N * C) {
    long at = (long)rows[idx / C] * C + idx % C;
    if (dt == F32) { ((float*)dst)[at] = src[idx]; if (dst2) ((float*)dst2)[at] = src2[idx]; }
    else { store16(dst, dt, at, src[idx]); if (dst2) store16(dst2, dt, at, src2[idx]); }
  }
}
void scatter_rows(void* dst, const float* src, const int32_t* rows, long N, long C, void* dst2, const float* src2, int dtDst) {
  if (N * C == 0) return;
  scatter_rows_kernel<<<blocks_for(N * C, 256), 256, 0, stream()>>>(dst, src, dst2, src2, rows, N, C, dtDst);
  check_launch("scatter_rows");
}
// element e of row pair i: dst[pairs[2i]·C + e] = src[pairs[2i + 1]·C + e] (T: the element's bytes)
template <class T>
__global__ void copy_rows_kernel(T* dst, const T* src, T* dst2, const T* src2, const int32_t* pairs, long N, long C) {
  GRID_LOOP(idx, N * C) {
    const long i = idx / C, e = idx % C, d = (long)pairs[2 * i] * C + e, s = (long)pairs[2 * i + 1] * C + e;
    dst[d] = src[s];
    if (dst2) dst2[d] = src2[s];
  }
}
void copy_rows(void* dst, const void* src, const int32_t* pairs, long N, long C, int esize, void* dst2, const void* src2) {
  if (N * C == 0) return;
  if (esize == 4)
    copy_rows_kernel<<<blocks_for(N * C, 256), 256, 0, stream()>>>((uint32_t*)dst, (const uint32_t*)src, (uint32_t*)dst2, (const uint32_t*)src2, pairs, N, C);
  else if (esize == 2)
    copy_rows_kernel<<<blocks_for(N * C, 256), 256, 0, stream()>>>((uint16_t*)dst, (const uint16_t*)src, (uint16_t*)dst2, (const uint16_t*)src2, pairs, N, C);
  else throw std::runtime_error("copy_rows: elements of 2 or 4 bytes");
  check_launch("copy_rows");
}
void embedding_forward(float* out, const int32_t* ids, const void* table, int dt, long N, long C, long V) {
  if (N * C == 0) return;
  launch_pdl("embedding_forward", embedding_forward_kernel, dim3(blocks_for(N * C, 256)), dim3(256), 0, out, ids, table, dt, N, C, V);
}
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, long N, long C) {
  if (N * C == 0) return;
  embedding_backward_kernel<<<blocks_for(N * C, 256), 256, 0, stream()>>>(dtable, dout, ids, N, C);
  check_launch("embedding_backward");
}

// ---------------- elementwise, copies ----------------
__global__ void binary_kernel(float* out, const float* a, const float* b, long n, long nb, int op) {
  GRID_LOOP(i, n) {
    float bv = b[nb == n ? i : i % nb];
    out[i] = op == 0 ? a[i] + bv : op == 1 ? a[i] - bv : a[i] * bv;
  }
}
void binary(float* out, const float* a, const float* b, long n, long nb, int op) {
  if (n == 0) return;
  binary_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(out, a, b, n, nb, op);
  check_launch("binary");
}
__global__ void scale_kernel(float* out, const float* a, float s, long n) { GRID_LOOP(i, n) out[i] = a[i] * s; }
void scale(float* out, const float* a, float s, long n) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(out, a, s, n);
  check_launch("scale");
}
__global__ void softcap_kernel(float* out, const float* x, float cap, long n) { GRID_LOOP(i, n) out[i] = cap * tanhf(x[i] / cap); }
void softcap(float* out, const float* x, float cap, long n) {
  if (n == 0) return;
  softcap_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(out, x, cap, n);
  check_launch("softcap");
}
struct RowsOf { const float* x; long C; __device__ float operator()(long r, long c) const { return x[r * C + c]; } };
// few rows (R = 1 is the gradient of a same-shape add): a thread per column, no atomics
__global__ void sum_rows_few_kernel(float* out, const float* x, long R, long C, bool acc) {
  GRID_LOOP(c, C) {
    float s = 0.f;
    for (long r = 0; r < R; r++) s += x[r * C + c];
    out[c] = acc ? out[c] + s : s;
  }
}
void sum_rows(float* out, const float* x, long R, long C, bool accumulate) {
  if (C == 0) return;
  if (R <= 32 && C >= 1024) {
    sum_rows_few_kernel<<<blocks_for(C, 256), 256, 0, stream()>>>(out, x, R, C, accumulate);
    check_launch("sum_rows");
    return;
  }
  if (!accumulate) CK(cudaMemsetAsync(out, 0, C * 4, stream()));
  colsum(out, R, C, RowsOf{x, C});
}
__global__ void copy2d_kernel(float* dst, const float* src, long rows, long width, long dS, long sS, bool acc) {
  GRID_LOOP(idx, rows * width) {
    long r = idx / width, c = idx % width;
    if (acc) dst[r * dS + c] += src[r * sS + c];
    else dst[r * dS + c] = src[r * sS + c];
  }
}
void copy2d(float* dst, const float* src, long rows, long width, long dStride, long sStride, bool accumulate) {
  if (rows * width == 0) return;
  if (!accumulate) {
    CK(cudaMemcpy2DAsync(dst, (rows > 1 ? dStride : width) * 4, src, (rows > 1 ? sStride : width) * 4, width * 4, rows, cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  copy2d_kernel<<<blocks_for(rows * width, 256), 256, 0, stream()>>>(dst, src, rows, width, dStride, sStride, accumulate);
  check_launch("copy2d");
}

// ---------------- AdamW ----------------
__global__ void adamw_kernel(float* p, float* m, float* v, const float* g, long n, float lr, float b1, float b2, float eps, float wd, float bc1, float bc2) {
  GRID_LOOP(i, n) {
    float pi = p[i] - lr * wd * p[i], gi = g[i];
    float mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = mi; v[i] = vi;
    p[i] = pi - lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
  }
}
void adamw(float* p, float* m, float* v, const float* g, long n, float lr, float b1, float b2, float eps, float wd, long step) {
  if (n == 0) return;
  float bc1 = 1.f - powf(b1, (float)step), bc2 = 1.f - powf(b2, (float)step);
  adamw_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(p, m, v, g, n, lr, b1, b2, eps, wd, bc1, bc2);
  check_launch("adamw");
}

// ---------------- reductions returned to the host ----------------
__global__ void sum_squares_kernel(double* out, const float* x, long n) {
  __shared__ float sh[32];
  float s = 0.f;
  GRID_LOOP(i, n) s += x[i] * x[i];
  s = block_sum(s, sh);
  if (threadIdx.x == 0) atomicAdd(out, (double)s);
}
double sum_squares(const float* x, long n) {
  Scratch acc(8);
  CK(cudaMemsetAsync(acc.p, 0, 8, stream()));
  if (n > 0) { sum_squares_kernel<<<blocks_for(n, 256, 4L * num_sms()), 256, 0, stream()>>>(acc.as<double>(), x, n); check_launch("sum_squares"); }
  return fetch_double(acc.as<double>());
}


}  // namespace aha_cuda
