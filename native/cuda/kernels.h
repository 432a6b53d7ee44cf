// Host entry points of the CUDA kernels, argument order as native/cpu/kernels.h (outputs, saved state, inputs,
// weights, sizes); every pointer is a device pointer and every call is enqueued on the backend's one stream.
// Included by the N-API binding (host compiler) and by the .cu files (through common.cuh).
#pragma once
#include <cstdint>
#include <cstddef>
#include <map>
#include <string>
#include "../common/grpo_loss.h"

namespace aha_cuda {

enum DType : int { F32 = 0, BF16 = 1, F16 = 2, I32 = 3 };
inline int bytes_of(int dt) { return dt == F32 || dt == I32 ? 4 : 2; }  // bytes of one element

// device runtime (runtime.cu)
std::string init_device(std::string* name, size_t* total_mem, int* cc);
bool ready();
void* raw_alloc(size_t n);
void raw_free(void* p);
void memory_report(double* out /* allocated, peak, buffers, reserved, peak_reserved, largest block since reset_peak */);
void reset_peak();
void empty_cache();
int num_sms();
bool pdl_enabled();        // launch_pdl launches with programmatic stream serialization (AHA_PDL=1 / set_pdl, sm_90+)
void set_pdl(bool on);
void upload(void* dst, const void* src, size_t bytes);
void download(void* dst, const void* src, size_t bytes);
int download_async(const void* src, size_t bytes);  // → a read id; download_wait copies it out once it has run
void download_wait(int id, void* dst, size_t bytes);
void zero(void* dst, size_t bytes);
void poison(void* dst, size_t bytes);  // all-ones bytes where AHA_POISON=1 (tests: reads of unwritten outputs show)
void synchronize();
// CUDA graphs (runtime.cu): capture what the stream is given between begin and end, replay it with one launch.
// Buffers allocated while capturing belong to the graph until graph_destroy (see runtime.cu).
void graph_begin();
int graph_end();    // the new graph's id
void graph_abort();  // end a capture that failed on the host side, discarding it
void graph_launch(int id);
void graph_destroy(int id);
bool capturing();
// per-op GPU time (AHA_CUDA_PROFILE=1): events around each binding call, summed by op name, with the calls' cost
// model (FLOPs, and the least bytes they read and write) where the binding gives one; GEMMs also by shape label
void* prof_begin();
void prof_end(const char* name, void* token, double flops = 0, double bytes = 0, const std::string* shape = nullptr);
struct ProfSum { double ms = 0, flops = 0, bytes = 0; long calls = 0; };
std::map<std::string, ProfSum> prof_ops();     // by op name since the last call; clears them
std::map<std::string, ProfSum> prof_shapes();  // GEMMs by shape label since the last call; clears them
void set_profile(bool on);

void gemm(float* C, const void* A, int dtA, const void* B, int dtB, long batch, long M, long N, long K, bool transA,
          bool transB, long lda, long ldb, long ldc, long strideA, long strideB, long strideC, float alpha, float beta,
          bool fast = false,  // fast: f32 × f32 on TF32 tensor cores in mode 0 (the LoRA GEMMs of a 16-bit model)
          const float* bias = nullptr,  // bias [N] added to every row of C (ldc = N): cuBLASLt's epilogue where it can
          long biasStride = 0);  // elements between the biases of consecutive batches (0: one bias for all)
bool gemm_ready(std::string* why);
void set_gemm_mode(int mode);  // 0 = 16-bit operands with f32 accumulate (fast), 1 = f32 operands (exact), 2 = tf32
int gemm_mode();
void set_gemm_tuning(bool on);  // time the heuristic's algorithms per GEMM shape (plans made from now on; AHA_GEMM_TUNE=1)
void gemm_tuning_report(long* tuned, long* changed);  // plans timed so far, and those that took another than the first
// C = alpha A Wᵀ (+ beta C) (+ bias) for M ≤ 64 rows by bf16 weights on our tensor-core kernel (skinny_gemm.cu),
// when turned on (AHA_SKINNY_GEMM=1) and the call fits it; false: the caller runs cuBLAS
bool skinny_gemm(float* C, const void* A, int dtA, const void* B, int dtB, long batch, long M, long N, long K, bool transA, bool transB,
                 long lda, long ldb, long ldc, long sA, long sB, long sC, float alpha, float beta, const float* bias, long sBias);
void set_skinny_gemm(bool on);
void set_decode_group(bool on);  // decode attention by kv group, one block per (kv head, row) (AHA_DECODE_GROUP=1)
long skinny_gemm_calls();
void convert(void* dst, int dtDst, const void* src, int dtSrc, long n);

// y16 / out16 (may be null): the output rounded to dt16 (bf16 or f16) as well, for GEMMs that take 16-bit inputs
void rms_norm_forward(float* y, float* rstd, const float* x, const float* w, long N, long C, float eps, float offset,
                      void* y16 = nullptr, int dt16 = BF16);
void rms_norm_backward(float* dx, float* dw, const float* dy, const float* x, const float* rstd, const float* w, long N, long C, float offset);
// y2/x2 [N, H2, D] (may be null): a second tensor rotated with the same tables in the same launch (keys beside queries)
void rope_forward(float* y, const float* x, const float* cs, const float* sn, long N, long H, long D, long rot, bool inverse,
                  float* y2 = nullptr, const float* x2 = nullptr, long H2 = 0);
void glu_forward(float* out, const float* g, const float* u, long n, int act, void* out16 = nullptr, int dt16 = BF16);
void glu_backward(float* dg, float* du, const float* dout, const float* g, const float* u, long n, int act);
void embedding_forward(float* out, const int32_t* ids, const void* table, int dt, long N, long C, long V);
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, long N, long C);
// out[i] = scale where the uniform drawn for (seed[0], salt, i) is below keep, else 0 (native/common/dropout_hash.h)
void dropout_mask(float* out, const int32_t* seed, uint32_t salt, long n, float keep, float scale);
// dst[rows[n], :] = src[n, :] for n < N (rows of C elements), and the same for dst2/src2 when given
void scatter_rows(void* dst, const float* src, const int32_t* rows, long N, long C, void* dst2 = nullptr, const float* src2 = nullptr,
                  int dtDst = F32);  // dtDst: f32, or bf16/f16 (a KV cache of 16-bit values)
// dst[pairs[2i], :] = src[pairs[2i + 1], :] (rows of C elements of esize bytes, 4 or 2), and dst2/src2 when given
void copy_rows(void* dst, const void* src, const int32_t* pairs, long N, long C, int esize, void* dst2 = nullptr, const void* src2 = nullptr);
void binary(float* out, const float* a, const float* b, long n, long nb, int op);
void scale(float* out, const float* a, float s, long n);
void softcap(float* out, const float* x, float cap, long n);  // out = cap * tanh(x / cap)
void sum_rows(float* out, const float* x, long R, long C, bool accumulate);
void copy2d(float* dst, const float* src, long rows, long width, long dStride, long sStride, bool accumulate);
void adamw(float* p, float* m, float* v, const float* g, long n, float lr, float b1, float b2, float eps, float wd, long step);
double sum_squares(const float* x, long n);
// The GRPO-family loss over `rows` rows of T tokens (grpo_loss.cu; as native/cpu/kernels.h says)
double grpo_loss(float* dlogp, const float* logp, const float* old, const float* ref, const float* adv, const float* w,
                 const float* entropy, long rows, long T, const aha_common::GrpoVariant& p, float gout, float* out = nullptr);
// o16: o rounded to dt16 as well (o_proj's input); dtKV: k and v's dtype (f32, or bf16 in a KV cache)
void attention_forward(float* o, float* lse, const float* q, const void* k, const void* v, const int32_t* keyMask,
                       long B, long T, long S, long Hq, long Hkv, long D, long kvStrideB, float scale, long window, float softcap,
                       bool lowp = false, void* o16 = nullptr, int dt16 = BF16, int dtKV = F32);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* o, const float* lse,
                        const float* q, const float* k, const float* v, const int32_t* keyMask,
                        long B, long T, long S, long Hq, long Hkv, long D, float scale, long window, float softcap, bool lowp = false);
// lowp: bf16 tensor cores (attention_tc.cu) when the GEMM mode is the default one and the head dim allows; these two
// return false when they cannot run (the caller then runs the f32 kernels)
// the tensor-core attention kernels: 0 WMMA (default), 1 mma.sync (attention_tc.cu; AHA_ATTENTION=mma)
void set_attention_kernel(int which);
int attention_kernel();
bool attention_tc_forward(float* o, float* lse, const float* q, const void* k, const void* v, const int32_t* keyMask,
                          long B, long T, long S, long Hq, long Hkv, long D, long kvStrideB, float scale, long window, float softcap,
                          void* o16 = nullptr, int dt16 = BF16, int dtKV = F32);
bool attention_tc_backward(float* dq, float* dk, float* dv, const float* dout, const float* lse, const float* di, const float* q,
                           const float* k, const float* v, const int32_t* keyMask, long B, long T, long S, long Hq, long Hkv, long D,
                           float scale, long window, float softcap);
void lm_logp_forward(float* logp, float* lse, float* entropy, const float* h, const void* W, int dtW,
                     const int32_t* targets, long N, long C, long V, float invTemp, float softcap);
void lm_logp_backward(float* dh, float* dW, const float* dlogp, const float* lse, const float* h, const void* W, int dtW,
                      const int32_t* targets, long N, long C, long V, float invTemp, float softcap);
void sample_rows(int32_t* tokens, float* logprobs, const float* logits, const float* uniforms, long B, long V,
                 float temperature, long topK, float topP, float minP);
// in place: z / penalty where z > 0, else z · penalty, for the distinct tokens of each row of ids [B, L] (-1 pads)
void repetition_penalty(float* logits, const int32_t* ids, long B, long V, long L, float penalty);

// ---- the decode path's fused kernels (decode.cu; as native/cpu/kernels.h, 16-bit copies in dt16) ----
// A LoRA branch's term for output column n of row m: scale · Σ_{j<r} t[m·ldt + j] · B[n·r + j] (none if B is null).
struct LoraUp { const float* t; const float* B; long ldt; long r; float scale; };
void add_rms_norm(float* y, void* y16, int dt16, float* h, const float* add, long ldAdd, LoraUp lo, const float* src, long ldSrc,
                  const float* Ain, long Kin, const float* w, long M, long C, float eps, float offset, float* tOut, const float* Aout,
                  long Rout, long tParts);
// tOut [M, nb, Rout]: partial sums of out · Aoutᵀ over column blocks of 128 (kGluPartCols of native/cpu/kernels.h)
void glu_lora(float* out, void* out16, int dt16, const float* g, const float* u, long ld, LoraUp lg, LoraUp lu, long M, long I, int act,
              float* tOut, const float* Aout, long Rout);
void qkv_rope_cache(float* qOut, void* kc, void* vc, int dtKV, const int32_t* rows, const float* yq, long ldq, const float* yk,
                    const float* yv, long ldkv, LoraUp lq, LoraUp lk, LoraUp lv, const float* qNorm, const float* kNorm, float eps,
                    float offset, const float* cs, const float* sn, long rot, long M, long Hq, long Hkv, long D);
// qkv_rope_cache then attention_forward for a decode step (T = 1, one row per sequence b, its cache row rows[b]) in one
// kernel: o [B, Hq, D] (o16 its dt16 copy, may be null); no lse
void qkv_attention_decode(float* o, void* o16, int dt16, void* kc, void* vc, int dtKV, const int32_t* rows, const float* yq, long ldq,
                          const float* yk, const float* yv, long ldkv, LoraUp lq, LoraUp lk, LoraUp lv, const float* qNorm,
                          const float* kNorm, float eps, float offset, const float* cs, const float* sn, long rot, long B, long Hq,
                          long Hkv, long D, const int32_t* keyMask, long S, long kvStrideB, float scale, long window, float softcap);

}  // namespace aha_cuda
