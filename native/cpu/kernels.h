// CPU kernels of the aha engine. Argument order as in llm.c: outputs, saved state, inputs, weights, sizes.
// Activations are float32; weight operands (gemm B, embedding tables, lm-head) may be bf16 or f16 and are
// converted inside the kernels. Names match the TS op table (src/engine/ops) and the CUDA kernels.
#pragma once
#include <cstdint>
#include <cstring>
#include <cmath>
#include "../common/grpo_loss.h"

namespace aha {

enum DType : int { F32 = 0, BF16 = 1, F16 = 2, I32 = 3 };

inline float bf16_to_f32(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; std::memcpy(&f, &u, 4); return f; }
inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
  if (exp == 0) {
    if (mant == 0) u = sign;
    else { exp = 127 - 15 + 1; while (!(mant & 0x400)) { mant <<= 1; exp--; } mant &= 0x3ff; u = sign | (exp << 23) | (mant << 13); }
  } else if (exp == 31) u = sign | 0x7f800000 | (mant << 13);
  else u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  float f; std::memcpy(&f, &u, 4); return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u; std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}
// Σ a[i] · b[i] over n floats
inline float dot(const float* a, const float* b, long n) {
  float s = 0.f;
  for (long i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}
// gated activations: 0 = silu, 1 = gelu (tanh approximation)
constexpr float GELU_K = 0.7978845608028654f;  // sqrt(2/pi)
inline float act_f(float g, int act) {
  if (act == 0) return g / (1.0f + std::exp(-g));
  float t = std::tanh(GELU_K * (g + 0.044715f * g * g * g));
  return 0.5f * g * (1.0f + t);
}
// element i of a buffer of dtype dt as float
inline float load_as_f32(const void* p, int dt, long i) {
  switch (dt) {
    case BF16: return bf16_to_f32(((const uint16_t*)p)[i]);
    case F16: return f16_to_f32(((const uint16_t*)p)[i]);
    case I32: return (float)((const int32_t*)p)[i];
    default: return ((const float*)p)[i];
  }
}
// convert n elements starting at element i0 into dst
void convert_row(float* dst, const void* src, int dt, long i0, long n);
// dst[0:n] = src[0:n] converted from dtSrc to dtDst (dtDst f32, or bf16 rounded to nearest even)
void convert(void* dst, int dtDst, const void* src, int dtSrc, long n);

// C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b]; op = transpose when trans*. A f32, B f32/bf16/f16, C f32.
// Row-major; lda/ldb/ldc are the row strides of the stored matrices; stride* the batch strides (0 = broadcast).
void gemm(float* C, const float* A, const void* B, int dtB, long batch, long M, long N, long K,
          bool transA, bool transB, long lda, long ldb, long ldc, long strideA, long strideB, long strideC,
          float alpha, float beta);

}  // namespace aha

namespace aha {
// y[N,C] = x * rstd * (w + offset); rstd[N] saved. offset = 1 for Gemma's (1 + w) norms. y16 (may be null): y
// rounded to bf16 as well, for GEMMs that take their input in 16 bits (CUDA also writes f16 there).
void rms_norm_forward(float* y, float* rstd, const float* x, const float* w, long N, long C, float eps, float offset,
                      uint16_t* y16 = nullptr);
// dx[N,C] (+)= ..., dw[C] += sum_n dy * xhat (dw may be null)
void rms_norm_backward(float* dx, float* dw, const float* dy, const float* x, const float* rstd, const float* w,
                       long N, long C, float offset);
// rotate_half rotary on rows: x [N, H, D], cos/sin [N, rot/2]; dims >= rot pass through. inverse = backward.
// y2/x2 [N, H2, D] (may be null): a second tensor rotated with the same tables in the same call (keys beside queries).
void rope_forward(float* y, const float* x, const float* cos, const float* sin, long N, long H, long D, long rot, bool inverse,
                  float* y2 = nullptr, const float* x2 = nullptr, long H2 = 0);
// out = act(g) * u, act: 0 = silu, 1 = gelu (tanh approximation); out16 (may be null): out rounded to bf16 as well
void glu_forward(float* out, const float* g, const float* u, long n, int act, uint16_t* out16 = nullptr);
void glu_backward(float* dg, float* du, const float* dout, const float* g, const float* u, long n, int act);
// out[i] = scale where dropout_uniform(seed[0], salt, i) < keep, else 0 (a LoRA dropout mask; seed: [1] on the
// device; the hash in native/common/dropout_hash.h, shared with CUDA)
void dropout_mask(float* out, const int32_t* seed, uint32_t salt, long n, float keep, float scale);
// out[n, :] = table[ids[n], :]
void embedding_forward(float* out, const int32_t* ids, const void* table, int dt, long N, long C, long V);
// dtable[ids[n], :] += dout[n, :]
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, long N, long C);
// dst[rows[n], :] = src[n, :] for n < N (rows of C elements), and the same for dst2/src2 when given; dtDst: the
// destinations' dtype (f32, or bf16: a KV cache of 16-bit values, rounded to nearest even)
void scatter_rows(void* dst, const float* src, const int32_t* rows, long N, long C, void* dst2 = nullptr, const float* src2 = nullptr,
                  int dtDst = F32);
// dst[pairs[2i], :] = src[pairs[2i + 1], :] for i < N (rows of C elements of esize bytes, 4 or 2), and the same for
// dst2/src2 when given: a KV cache's sequences selected (fanned out, compacted) in one call per layer
void copy_rows(void* dst, const void* src, const int32_t* pairs, long N, long C, int esize, void* dst2 = nullptr, const void* src2 = nullptr);
// out[i] = a[i] op b[i % nb]; op: 0 add, 1 sub, 2 mul
void binary(float* out, const float* a, const float* b, long n, long nb, int op);
// out[i] = a[i] * s
void scale(float* out, const float* a, float s, long n);
// out = cap * tanh(x / cap) (Gemma's final-logit soft-capping)
void softcap(float* out, const float* x, float cap, long n);
// out[j] (+)= sum_r x[r * C + j]
void sum_rows(float* out, const float* x, long R, long C, bool accumulate);
// dst[dOff + r*dStride + c] (+)= src[sOff + r*sStride + c] for r < rows, c < width
void copy2d(float* dst, const float* src, long rows, long width, long dStride, long sStride, bool accumulate);
// AdamW step on n parameters (bias-corrected, decoupled weight decay)
void adamw(float* p, float* m, float* v, const float* g, long n, float lr, float b1, float b2, float eps, float wd, long step);
double sum_squares(const float* x, long n);
// causal GQA attention. q/o [B,T,Hq,D], k/v [B,*,Hkv,D] with batch stride kvStrideB and S valid keys;
// keyMask [B, S] (1 = attend; may be null); query i sits at key index i + (S - T); window > 0 limits to
// (i+S-T) - j < window; softcap > 0 applies cap*tanh(s/cap). lse [B,Hq,T] saved for backward.
// o16 (may be null): o rounded to bf16 as well (the o projection's input). dtKV: k and v's dtype (f32, or bf16 in a
// KV cache; k and v are then really uint16_t*).
void attention_forward(float* o, float* lse, const float* q, const float* k, const float* v, const int32_t* keyMask,
                       long B, long T, long S, long Hq, long Hkv, long D, long kvStrideB, float scale, long window, float softcap,
                       uint16_t* o16 = nullptr, int dtKV = F32);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* o, const float* lse,
                        const float* q, const float* k, const float* v, const int32_t* keyMask,
                        long B, long T, long S, long Hq, long Hkv, long D, float scale, long window, float softcap);
// Fused lm-head + log-softmax + gather, in chunks of rows so [N, V] never exists.
// z = softcap(h W^T) * invTemp; logp[n] = z[y] - lse(z); entropy[n] = -sum p log p (may be null).
void lm_logp_forward(float* logp, float* lse, float* entropy, const float* h, const void* W, int dtW,
                     const int32_t* targets, long N, long C, long V, float invTemp, float softcap);
// dh[N,C] += sum_v dz W, dz = dlogp (1[v=y] - p) (* softcap'), dW[V,C] += dz^T h (may be null)
void lm_logp_backward(float* dh, float* dW, const float* dlogp, const float* lse, const float* h, const void* W, int dtW,
                      const int32_t* targets, long N, long C, long V, float invTemp, float softcap);
// The GRPO-family loss over `rows` rows of T tokens (grpo_loss.cpp, terms in native/common/grpo_loss.h):
// loss = Σ w·(policy term, masked by the off-policy and entropy masks) + β·w·KL; dlogp = gout · ∂loss/∂logp.
// w carries the completion mask (0 = padding) and the loss type's normaliser; entropy may be null (no entropy mask).
// Returns the loss; writes dlogp when non-null; out: also store the total there (as f32), for a caller that reads it later.
double grpo_loss(float* dlogp, const float* logp, const float* old, const float* ref, const float* adv, const float* w,
                 const float* entropy, long rows, long T, const aha_common::GrpoVariant& p, float gout, float* out = nullptr);
// One token per row of logits [B, V] with uniforms [B] in [0, 1): temperature (0 = greedy), then top-k (0 = off),
// top-p (1 = off), min-p (0 = off) as one threshold on p; inverse-CDF draw in index order (sample.cpp).
// tokens [B], logprobs [B] = log-prob of the token under the filtered distribution (greedy: raw log-softmax).
void sample_rows(int32_t* tokens, float* logprobs, const float* logits, const float* uniforms, long B, long V,
                 float temperature, long topK, float topP, float minP);
// Repetition penalty in place on logits [B, V] for the tokens in each row of ids [B, L] (distinct per row; -1 pads):
// z / penalty where z > 0, else z · penalty (Hugging Face's; applied before sample_rows)
void repetition_penalty(float* logits, const int32_t* ids, long B, long V, long L, float penalty);

// ---- the decode path's fused kernels (decode.cpp; no autograd: generation with a KV cache) ----
// Each adds LoRA branches' up-projections where their outputs are read, so a branch costs at most one GEMM (t = x Aᵀ,
// none where add_rms_norm makes t) instead of two. A branch's term for output column n of row m: scale · Σ_{j<r} t[m·ldt + j] · B[n·r + j] (none if B is null).
struct LoraUp { const float* t; const float* B; long ldt; long r; float scale; };
// h[m, :] += add[m, 0:C] (add [M, ldAdd], may be null) + the term of lo (none if lo.B is null; its t is lo.t, or
// when that is null src[m, 0:Kin] · Ainᵀ, src rows at stride ldSrc, Ain [r, Kin]: a branch whose down-projection is
// folded in here too); then y = rms_norm(h) · (w + offset), y16 (may be null) y rounded to bf16; and tOut [M, Rout] =
// y · Aoutᵀ (Aout [Rout, C], may be null: the next projections' down-projections). The residual stream's add, the
// next norm and the LoRA GEMMs on either side of it in one pass.
// tParts: lo.t holds that many partial sums of t side by side (r wide each, within ldt), added up first (glu_lora's).
void add_rms_norm(float* y, uint16_t* y16, float* h, const float* add, long ldAdd, LoraUp lo, const float* src, long ldSrc,
                  const float* Ain, long Kin, const float* w, long M, long C, float eps, float offset, float* tOut, const float* Aout,
                  long Rout, long tParts);
// out[m, n] = act(g[m, n] + term_g) · (u[m, n] + term_u), g and u rows at stride ld; out16 (may be null) in bf16.
// With Aout [Rout, I] (may be null) also the next projection's down-projection out · Aoutᵀ, as partial sums over column
// blocks of kGluPartCols: tOut [M, nb, Rout], nb = ceil(I / kGluPartCols) (add_rms_norm adds them up).
constexpr long kGluPartCols = 128;
void glu_lora(float* out, uint16_t* out16, const float* g, const float* u, long ld, LoraUp lg, LoraUp lu, long M, long I, int act,
              float* tOut, const float* Aout, long Rout);
// After the q/k/v projections of M token rows (yq rows at stride ldq, yk and yv at ldkv): their LoRA terms added,
// q and k RMS-normed per head (qNorm / kNorm [D], Qwen3; null: none), rotated (rotate_half on the first rot dims,
// tables cos/sin [M, rot/2]); q to qOut [M, Hq, D], k and v to rows rows[m] of the caches kc / vc ([*, Hkv·D] of dtKV).
void qkv_rope_cache(float* qOut, void* kc, void* vc, int dtKV, const int32_t* rows, const float* yq, long ldq, const float* yk,
                    const float* yv, long ldkv, LoraUp lq, LoraUp lk, LoraUp lv, const float* qNorm, const float* kNorm, float eps,
                    float offset, const float* cs, const float* sn, long rot, long M, long Hq, long Hkv, long D);
// A decode step's qkv_rope_cache then attention_forward (T = 1: one query row per sequence b, its key and value to
// cache row rows[b], S keys per sequence at stride kvStrideB): o [B, Hq, D] and o16 (may be null) its bf16 copy.
// CUDA runs it as one kernel.
void qkv_attention_decode(float* o, uint16_t* o16, void* kc, void* vc, int dtKV, const int32_t* rows, const float* yq, long ldq,
                          const float* yk, const float* yv, long ldkv, LoraUp lq, LoraUp lk, LoraUp lv, const float* qNorm,
                          const float* kNorm, float eps, float offset, const float* cs, const float* sn, long rot, long B, long Hq,
                          long Hkv, long D, const int32_t* keyMask, long S, long kvStrideB, float scale, long window, float softcap);
}  // namespace aha
