// N-API binding of the CUDA backend (aha_cuda.node). Buffers are device addresses passed as JS numbers (exact below
// 2^53); null/undefined is a null pointer. Kernel exports take the same arguments, in the same order, as the CPU
// addon (native/cpu/addon.cpp), so src/engine/cuda.ts hands them straight to the ops. Loading never touches the
// GPU: init() reports whether a device (and cuBLAS) is usable. C++ exceptions become JS errors naming the op.
#include <napi.h>
#include <algorithm>
#include "kernels.h"
#include "../common/grpo_loss_napi.h"
#include "q4.h"
#include "offload.h"
#include <stdexcept>

using namespace aha_cuda;

namespace {
template <class T = float> T* P(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  return reinterpret_cast<T*>((uintptr_t)v.As<Napi::Number>().Int64Value());
}
long L(const Napi::Value& v) { return (long)v.As<Napi::Number>().Int64Value(); }
float F(const Napi::Value& v) { return v.As<Napi::Number>().FloatValue(); }
bool Bo(const Napi::Value& v) { return v.ToBoolean().Value(); }
void* host_ptr(const Napi::Value& v, size_t* bytes) {
  auto ta = v.As<Napi::TypedArray>();
  *bytes = ta.ByteLength();
  return static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
}

// "[batch ×] M×N×K, A bf16, Bᵀ bf16[, tf32][, β][, bias]" for the profile by GEMM shape (C [M, N] = op(A) op(B), f32),
// with the call's FLOPs and the bytes it must move at least (A and B once, a broadcast operand once for the batch,
// C written, and read too when accumulating)
std::string gemm_shape_label(int dtA, int dtB, long batch, long M, long N, long K, bool tA, bool tB, long sA, long sB, float beta, bool fast,
                             bool bias, double* flops, double* bytes) {
  const auto dt = [](int d) { return d == F32 ? "f32" : d == BF16 ? "bf16" : "f16"; };
  std::string s = (batch > 1 ? std::to_string(batch) + " × " : "") + std::to_string(M) + "×" + std::to_string(N) + "×" + std::to_string(K) +
                  ", A" + (tA ? "ᵀ " : " ") + dt(dtA) + ", B" + (tB ? "ᵀ " : " ") + dt(dtB);
  if (fast && dtA == F32 && dtB == F32) s += ", tf32";
  if (beta != 0.f) s += ", β";
  if (bias) s += ", bias";
  *flops = 2.0 * batch * M * N * K;
  *bytes = (sA ? batch : 1) * (double)M * K * bytes_of(dtA) + (sB ? batch : 1) * (double)N * K * bytes_of(dtB) + batch * (double)M * N * 4 * (beta != 0.f ? 2 : 1);
  return s;
}

// attention's FLOPs: QKᵀ and PV over the keys each query sees (causal: on average S - (T - 1) / 2 of S, or the window)
double attention_flops(long B, long T, long S, long Hq, long D, long window) {
  double keys = T > 1 ? S - (T - 1) / 2.0 : S;
  if (window > 0) keys = std::min(keys, (double)window);
  return 4.0 * B * Hq * T * keys * D;
}

#define FN(name) Napi::Value name##_js(const Napi::CallbackInfo& a)
struct ProfScope {
  const char* name; void* tok;
  std::string shape; double flops = 0, bytes = 0;  // a GEMM's shape label, FLOPs and bytes (profile by shape)
  explicit ProfScope(const char* n) : name(n), tok(prof_begin()) {}
  ~ProfScope() { prof_end(name, tok, flops, bytes, shape.empty() ? nullptr : &shape); }
};
// a call's cost model for the profile (FLOPs, least bytes read and written), worked out only while profiling
#define COST(f, b) if (prof_.tok) { prof_.flops = (double)(f); prof_.bytes = (double)(b); }
#define TRY(name) ProfScope prof_(#name); try {
#define CATCH(name)                                                                                   \
  } catch (const std::exception& e) {                                                                 \
    Napi::Error::New(a.Env(), std::string(#name) + ": " + e.what()).ThrowAsJavaScriptException();     \
  }                                                                                                   \
  return a.Env().Undefined();
#define UNDEF return a.Env().Undefined();

FN(init) {
  Napi::Object o = Napi::Object::New(a.Env());
  std::string name, why;
  size_t mem = 0;
  int cc = 0;
  std::string err = init_device(&name, &mem, &cc);
  o.Set("ok", err.empty());
  if (!err.empty()) { o.Set("error", err); return o; }
  bool blas = gemm_ready(&why);
  o.Set("ok", blas);
  if (!blas) o.Set("error", "cuBLAS: " + why);
  o.Set("name", name);
  o.Set("totalMemory", (double)mem);
  o.Set("computeCapability", cc);
  o.Set("sms", num_sms());
  return o;
}
FN(alloc) { TRY(alloc) size_t n = (size_t)L(a[0]); void* p = raw_alloc(n); if (a.Length() < 2 || a[1].ToBoolean().Value()) zero(p, n); else poison(p, n); return Napi::Number::New(a.Env(), (double)(uintptr_t)p); CATCH(alloc) }
FN(free) { TRY(free) raw_free(P<void>(a[0])); UNDEF CATCH(free) }
FN(write) { TRY(write) size_t n; void* h = host_ptr(a[1], &n); upload(P<void>(a[0]), h, n); UNDEF CATCH(write) }
FN(read) { TRY(read) size_t n; void* h = host_ptr(a[1], &n); download(h, P<void>(a[0]), n); UNDEF CATCH(read) }
FN(read_async) { TRY(read_async) return Napi::Number::New(a.Env(), download_async(P<void>(a[0]), (size_t)L(a[1]))); CATCH(read_async) }
FN(read_wait) { TRY(read_wait) size_t n; void* h = host_ptr(a[1], &n); download_wait((int)L(a[0]), h, n); UNDEF CATCH(read_wait) }
FN(synchronize) { TRY(synchronize) synchronize(); UNDEF CATCH(synchronize) }
FN(memory) {
  double m[6];
  memory_report(m);
  Napi::Object o = Napi::Object::New(a.Env());
  o.Set("allocated", m[0]); o.Set("peak", m[1]); o.Set("buffers", m[2]); o.Set("reserved", m[3]); o.Set("peakReserved", m[4]); o.Set("largest", m[5]);
  return o;
}
FN(reset_peak) { reset_peak(); UNDEF }
FN(empty_cache) { TRY(empty_cache) empty_cache(); UNDEF CATCH(empty_cache) }
FN(set_gemm_mode) { set_gemm_mode((int)L(a[0])); UNDEF }
FN(set_gemm_tuning) { set_gemm_tuning(a[0].ToBoolean().Value()); UNDEF }
FN(set_decode_group) { set_decode_group(a[0].ToBoolean().Value()); UNDEF }
FN(set_pdl) { set_pdl(a[0].ToBoolean().Value()); UNDEF }
FN(set_skinny_gemm) { set_skinny_gemm(a[0].ToBoolean().Value()); UNDEF }
FN(gemm_stats) {
  long tuned = 0, changed = 0;
  gemm_tuning_report(&tuned, &changed);
  Napi::Object o = Napi::Object::New(a.Env());
  o.Set("tuned", (double)tuned); o.Set("changed", (double)changed); o.Set("skinny", (double)skinny_gemm_calls());
  return o;
}
FN(set_attention_kernel) { set_attention_kernel((int)L(a[0])); UNDEF }
// the profile's totals since the last call, by op name or GEMM shape: { name: [ms, calls, flops, bytes] }
Napi::Object prof_object(Napi::Env env, const std::map<std::string, ProfSum>& sums) {
  Napi::Object o = Napi::Object::New(env);
  for (auto& [name, s] : sums) {
    Napi::Array v = Napi::Array::New(env, 4);
    v.Set(0u, s.ms); v.Set(1u, (double)s.calls); v.Set(2u, s.flops); v.Set(3u, s.bytes);
    o.Set(name, v);
  }
  return o;
}
FN(profile) { return prof_object(a.Env(), prof_ops()); }
FN(profile_gemm_shapes) { return prof_object(a.Env(), prof_shapes()); }
FN(set_profile) { set_profile(a[0].ToBoolean().Value()); UNDEF }
FN(num_threads) { return Napi::Number::New(a.Env(), num_sms()); }
FN(graph_begin) { TRY(graph_begin) graph_begin(); UNDEF CATCH(graph_begin) }
FN(graph_end) { TRY(graph_end) return Napi::Number::New(a.Env(), graph_end()); CATCH(graph_end) }
FN(graph_abort) { TRY(graph_abort) graph_abort(); UNDEF CATCH(graph_abort) }
FN(graph_launch) { TRY(graph_launch) graph_launch((int)L(a[0])); UNDEF CATCH(graph_launch) }
FN(graph_destroy) { TRY(graph_destroy) graph_destroy((int)L(a[0])); UNDEF CATCH(graph_destroy) }

FN(gemm) { TRY(gemm)
  const int dtA = a.Length() > 19 && a[19].IsNumber() ? (int)L(a[19]) : F32;  // A's dtype (a 16-bit A: already rounded)
  if (prof_.tok) {  // the profile tells GEMMs apart by weight type and by shape: skinny = some dimension ≤ 64 (LoRA ranks, decode rows)
    const bool w16 = L(a[3]) != F32, skinny = std::min({L(a[5]), L(a[6]), L(a[7])}) <= 64;
    prof_.name = w16 ? (skinny ? "gemm 16-bit, skinny" : "gemm 16-bit") : (skinny ? "gemm f32, skinny" : "gemm f32");
    prof_.shape = gemm_shape_label(dtA, (int)L(a[3]), L(a[4]), L(a[5]), L(a[6]), L(a[7]), Bo(a[8]), Bo(a[9]), L(a[13]), L(a[14]), F(a[17]),
                                   a.Length() > 18 && a[18].ToBoolean().Value(), a.Length() > 20 && !a[20].IsNull() && !a[20].IsUndefined(),
                                   &prof_.flops, &prof_.bytes);
  }
  gemm(P(a[0]), P<void>(a[1]), dtA, P<void>(a[2]), (int)L(a[3]), L(a[4]), L(a[5]), L(a[6]), L(a[7]), Bo(a[8]), Bo(a[9]),
       L(a[10]), L(a[11]), L(a[12]), L(a[13]), L(a[14]), L(a[15]), F(a[16]), F(a[17]), a.Length() > 18 && a[18].ToBoolean().Value(),
       a.Length() > 20 ? P(a[20]) : nullptr, a.Length() > 21 && a[21].IsNumber() ? L(a[21]) : 0);
  UNDEF CATCH(gemm) }
FN(copy_rows) { TRY(copy_rows)
  copy_rows(P<void>(a[0]), P<void>(a[1]), P<int32_t>(a[2]), L(a[3]), L(a[4]), (int)L(a[5]), a.Length() > 6 ? P<void>(a[6]) : nullptr,
            a.Length() > 7 ? P<void>(a[7]) : nullptr);
  UNDEF CATCH(copy_rows) }
FN(scatter_rows) { TRY(scatter_rows)
  scatter_rows(P<void>(a[0]), P(a[1]), P<int32_t>(a[2]), L(a[3]), L(a[4]), a.Length() > 5 ? P<void>(a[5]) : nullptr, a.Length() > 6 ? P(a[6]) : nullptr,
               a.Length() > 7 && a[7].IsNumber() ? (int)L(a[7]) : F32);
  UNDEF CATCH(scatter_rows) }
FN(repetition_penalty) { TRY(repetition_penalty) repetition_penalty(P(a[0]), P<int32_t>(a[1]), L(a[2]), L(a[3]), L(a[4]), F(a[5])); UNDEF CATCH(repetition_penalty) }
FN(softcap) { TRY(softcap) softcap(P(a[0]), P(a[1]), F(a[2]), L(a[3])); UNDEF CATCH(softcap) }
FN(dropout_mask) { TRY(dropout_mask) dropout_mask(P(a[0]), P<int32_t>(a[1]), (uint32_t)L(a[2]), L(a[3]), F(a[4]), F(a[5])); UNDEF CATCH(dropout_mask) }
FN(convert) { TRY(convert) COST(0, L(a[4]) * (double)(bytes_of((int)L(a[1])) + bytes_of((int)L(a[3])))) convert(P<void>(a[0]), (int)L(a[1]), P<void>(a[2]), (int)L(a[3]), L(a[4])); UNDEF CATCH(convert) }
FN(rms_norm_forward) { TRY(rms_norm_forward)
  COST(0, (double)L(a[4]) * L(a[5]) * (8 + (a.Length() > 8 && !a[8].IsNull() && !a[8].IsUndefined() ? 2 : 0)))
  rms_norm_forward(P(a[0]), P(a[1]), P(a[2]), P(a[3]), L(a[4]), L(a[5]), F(a[6]), F(a[7]), a.Length() > 8 ? P<void>(a[8]) : nullptr,
                   a.Length() > 9 && a[9].IsNumber() ? (int)L(a[9]) : BF16);
  UNDEF CATCH(rms_norm_forward) }
FN(rms_norm_backward) { TRY(rms_norm_backward) COST(0, 12.0 * L(a[6]) * L(a[7])) rms_norm_backward(P(a[0]), P(a[1]), P(a[2]), P(a[3]), P(a[4]), P(a[5]), L(a[6]), L(a[7]), F(a[8])); UNDEF CATCH(rms_norm_backward) }
FN(rope_forward) { TRY(rope_forward)
  const bool two = a.Length() > 11 && !a[9].IsNull() && !a[9].IsUndefined();
  COST(0, 8.0 * L(a[4]) * (L(a[5]) + (two ? L(a[11]) : 0)) * L(a[6]))
  rope_forward(P(a[0]), P(a[1]), P(a[2]), P(a[3]), L(a[4]), L(a[5]), L(a[6]), L(a[7]), Bo(a[8]), two ? P(a[9]) : nullptr,
               two ? P(a[10]) : nullptr, two ? L(a[11]) : 0);
  UNDEF CATCH(rope_forward) }
FN(glu_forward) { TRY(glu_forward)
  COST(0, L(a[3]) * (12.0 + (a.Length() > 5 && !a[5].IsNull() && !a[5].IsUndefined() ? 2 : 0)))
  glu_forward(P(a[0]), P(a[1]), P(a[2]), L(a[3]), (int)L(a[4]), a.Length() > 5 ? P<void>(a[5]) : nullptr, a.Length() > 6 && a[6].IsNumber() ? (int)L(a[6]) : BF16);
  UNDEF CATCH(glu_forward) }
FN(glu_backward) { TRY(glu_backward) COST(0, 20.0 * L(a[5])) glu_backward(P(a[0]), P(a[1]), P(a[2]), P(a[3]), P(a[4]), L(a[5]), (int)L(a[6])); UNDEF CATCH(glu_backward) }
FN(embedding_forward) { TRY(embedding_forward) COST(0, (double)L(a[4]) * L(a[5]) * (4 + bytes_of((int)L(a[3])))) embedding_forward(P(a[0]), P<int32_t>(a[1]), P<void>(a[2]), (int)L(a[3]), L(a[4]), L(a[5]), L(a[6])); UNDEF CATCH(embedding_forward) }
FN(embedding_backward) { TRY(embedding_backward) COST(0, 8.0 * L(a[3]) * L(a[4])) embedding_backward(P(a[0]), P(a[1]), P<int32_t>(a[2]), L(a[3]), L(a[4])); UNDEF CATCH(embedding_backward) }
FN(binary) { TRY(binary) COST(0, 8.0 * L(a[3]) + 4.0 * L(a[4])) binary(P(a[0]), P(a[1]), P(a[2]), L(a[3]), L(a[4]), (int)L(a[5])); UNDEF CATCH(binary) }
FN(scale) { TRY(scale) COST(0, 8.0 * L(a[3])) scale(P(a[0]), P(a[1]), F(a[2]), L(a[3])); UNDEF CATCH(scale) }
FN(sum_rows) { TRY(sum_rows) COST(0, 4.0 * L(a[2]) * L(a[3]) + 4.0 * L(a[3])) sum_rows(P(a[0]), P(a[1]), L(a[2]), L(a[3]), Bo(a[4])); UNDEF CATCH(sum_rows) }
FN(copy2d) { TRY(copy2d) COST(0, (Bo(a[6]) ? 12.0 : 8.0) * L(a[2]) * L(a[3])) copy2d(P(a[0]), P(a[1]), L(a[2]), L(a[3]), L(a[4]), L(a[5]), Bo(a[6])); UNDEF CATCH(copy2d) }
FN(adamw) { TRY(adamw) COST(0, 28.0 * L(a[4])) adamw(P(a[0]), P(a[1]), P(a[2]), P(a[3]), L(a[4]), F(a[5]), F(a[6]), F(a[7]), F(a[8]), F(a[9]), L(a[10])); UNDEF CATCH(adamw) }
FN(sum_squares) { TRY(sum_squares) return Napi::Number::New(a.Env(), sum_squares(P(a[0]), L(a[1]))); CATCH(sum_squares) }
FN(attention_forward) { TRY(attention_forward)
  COST(attention_flops(L(a[6]), L(a[7]), L(a[8]), L(a[9]), L(a[11]), L(a[14])), 0)
  attention_forward(P(a[0]), P(a[1]), P(a[2]), P<void>(a[3]), P<void>(a[4]), P<int32_t>(a[5]), L(a[6]), L(a[7]), L(a[8]), L(a[9]), L(a[10]),
                    L(a[11]), L(a[12]), F(a[13]), L(a[14]), F(a[15]), a.Length() > 16 && a[16].ToBoolean().Value(),
                    a.Length() > 17 ? P<void>(a[17]) : nullptr, a.Length() > 18 && a[18].IsNumber() ? (int)L(a[18]) : BF16,
                    a.Length() > 19 && a[19].IsNumber() ? (int)L(a[19]) : F32);
  UNDEF CATCH(attention_forward) }
FN(attention_backward) { TRY(attention_backward)
  COST(2.5 * attention_flops(L(a[10]), L(a[11]), L(a[12]), L(a[13]), L(a[15]), L(a[17])), 0)
  attention_backward(P(a[0]), P(a[1]), P(a[2]), P(a[3]), P(a[4]), P(a[5]), P(a[6]), P(a[7]), P(a[8]), P<int32_t>(a[9]), L(a[10]),
                     L(a[11]), L(a[12]), L(a[13]), L(a[14]), L(a[15]), F(a[16]), L(a[17]), F(a[18]), a.Length() > 19 && a[19].ToBoolean().Value());
  UNDEF CATCH(attention_backward) }
FN(lm_logp_forward) { TRY(lm_logp_forward)
  COST(2.0 * L(a[7]) * L(a[8]) * L(a[9]), 0)
  lm_logp_forward(P(a[0]), P(a[1]), P(a[2]), P(a[3]), P<void>(a[4]), (int)L(a[5]), P<int32_t>(a[6]), L(a[7]), L(a[8]), L(a[9]), F(a[10]), F(a[11]));
  UNDEF CATCH(lm_logp_forward) }
FN(lm_logp_backward) { TRY(lm_logp_backward)
  COST((a[1].IsNull() || a[1].IsUndefined() ? 4.0 : 6.0) * L(a[8]) * L(a[9]) * L(a[10]), 0)  // logits again, dh (and dW)
  lm_logp_backward(P(a[0]), P(a[1]), P(a[2]), P(a[3]), P(a[4]), P<void>(a[5]), (int)L(a[6]), P<int32_t>(a[7]), L(a[8]), L(a[9]), L(a[10]),
                   F(a[11]), F(a[12]));
  UNDEF CATCH(lm_logp_backward) }
// grpo_loss(dlogp, logp, old, ref, adv, w, entropy, rows, T, variant, gout, out), as the CPU addon
FN(grpo_loss) { TRY(grpo_loss)
  return Napi::Number::New(a.Env(), grpo_loss(P(a[0]), P(a[1]), P(a[2]), P(a[3]), P(a[4]), P(a[5]), P(a[6]), L(a[7]), L(a[8]),
                                              aha_common::grpo_variant(a[9]), F(a[10]), P(a[11])));
  CATCH(grpo_loss) }
FN(sample_rows) { TRY(sample_rows)
  sample_rows(P<int32_t>(a[0]), P(a[1]), P(a[2]), P(a[3]), L(a[4]), L(a[5]), F(a[6]), L(a[7]), F(a[8]), F(a[9]));
  UNDEF CATCH(sample_rows) }

// the decode path's fused kernels (decode.cu): a LoRA term is five arguments (t, B, ldt, r, scale; B null: none)
LoraUp lora_up(const Napi::CallbackInfo& a, size_t i) { return LoraUp{P(a[i]), P(a[i + 1]), L(a[i + 2]), L(a[i + 3]), F(a[i + 4])}; }
FN(add_rms_norm) { TRY(add_rms_norm)
  add_rms_norm(P(a[0]), P<void>(a[1]), (int)L(a[2]), P(a[3]), P(a[4]), L(a[5]), lora_up(a, 6), P(a[11]), L(a[12]), P(a[13]), L(a[14]), P(a[15]),
               L(a[16]), L(a[17]), F(a[18]), F(a[19]), P(a[20]), P(a[21]), L(a[22]), L(a[23]));
  UNDEF CATCH(add_rms_norm) }
FN(glu_lora) { TRY(glu_lora)
  glu_lora(P(a[0]), P<void>(a[1]), (int)L(a[2]), P(a[3]), P(a[4]), L(a[5]), lora_up(a, 6), lora_up(a, 11), L(a[16]), L(a[17]), (int)L(a[18]),
           P(a[19]), P(a[20]), L(a[21]));
  UNDEF CATCH(glu_lora) }
FN(qkv_rope_cache) { TRY(qkv_rope_cache)
  qkv_rope_cache(P(a[0]), P<void>(a[1]), P<void>(a[2]), (int)L(a[3]), P<int32_t>(a[4]), P(a[5]), L(a[6]), P(a[7]), P(a[8]), L(a[9]),
                 lora_up(a, 10), lora_up(a, 15), lora_up(a, 20), P(a[25]), P(a[26]), F(a[27]), F(a[28]), P(a[29]), P(a[30]), L(a[31]),
                 L(a[32]), L(a[33]), L(a[34]), L(a[35]));
  UNDEF CATCH(qkv_rope_cache) }
FN(qkv_attention_decode) { TRY(qkv_attention_decode)
  qkv_attention_decode(P(a[0]), P<void>(a[1]), (int)L(a[2]), P<void>(a[3]), P<void>(a[4]), (int)L(a[5]), P<int32_t>(a[6]), P(a[7]), L(a[8]),
                       P(a[9]), P(a[10]), L(a[11]), lora_up(a, 12), lora_up(a, 17), lora_up(a, 22), P(a[27]), P(a[28]), F(a[29]), F(a[30]),
                       P(a[31]), P(a[32]), L(a[33]), L(a[34]), L(a[35]), L(a[36]), L(a[37]), P<int32_t>(a[38]), L(a[39]), L(a[40]), F(a[41]),
                       L(a[42]), F(a[43]));
  UNDEF CATCH(qkv_attention_decode) }

// bitsandbytes 4-bit weights (q4.cu): a weight is seven arguments from i (packed, absmax, nested, code, ncode, offset, dtype)
Q4 q4_arg(const Napi::CallbackInfo& a, size_t i) {
  return Q4{P<uint8_t>(a[i]), P<void>(a[i + 1]), P(a[i + 2]), P(a[i + 3]), P(a[i + 4]), F(a[i + 5]), (int)L(a[i + 6])};
}
FN(q4_gemm) { TRY(q4_gemm)  // (C, A, dtA, weight…, M, R, K, trans, alpha, beta, bias, dtCompute)
  const long M = L(a[10]), R = L(a[11]), K = L(a[12]);
  COST(2.0 * M * R * K, R * (double)K / 2 + M * (double)(R + K) * 4)
  q4_gemm(P(a[0]), P<void>(a[1]), (int)L(a[2]), q4_arg(a, 3), M, R, K, Bo(a[13]), F(a[14]), F(a[15]), P(a[16]), (int)L(a[17]));
  UNDEF CATCH(q4_gemm) }
FN(q4_dequantize) { TRY(q4_dequantize) q4_dequantize(P<void>(a[0]), (int)L(a[1]), q4_arg(a, 2), L(a[9]), L(a[10])); UNDEF CATCH(q4_dequantize) }
// offloaded checkpointing's copies (offload.cu)
FN(offload_to_host) { TRY(offload_to_host) return Napi::Number::New(a.Env(), offload_to_host(P<void>(a[0]), (size_t)L(a[1]))); CATCH(offload_to_host) }
FN(offload_wait) { TRY(offload_wait) offload_wait((int)L(a[0])); UNDEF CATCH(offload_wait) }
FN(offload_to_device) { TRY(offload_to_device) offload_to_device((int)L(a[0]), P<void>(a[1])); UNDEF CATCH(offload_to_device) }
FN(offload_release) { TRY(offload_release) offload_release((int)L(a[0])); UNDEF CATCH(offload_release) }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#define REG(name) exports.Set(#name, Napi::Function::New(env, name##_js, #name))
  REG(init); REG(alloc); REG(free); REG(write); REG(read); REG(read_async); REG(read_wait); REG(synchronize); REG(memory); REG(reset_peak); REG(empty_cache);
  REG(set_gemm_mode); REG(set_gemm_tuning); REG(set_skinny_gemm); REG(set_pdl); REG(set_decode_group); REG(gemm_stats); REG(set_attention_kernel); REG(num_threads); REG(profile); REG(profile_gemm_shapes); REG(set_profile);
  REG(graph_begin); REG(graph_end); REG(graph_abort); REG(graph_launch); REG(graph_destroy);
  REG(gemm); REG(rms_norm_forward); REG(rms_norm_backward); REG(rope_forward); REG(glu_forward); REG(glu_backward);
  REG(embedding_forward); REG(embedding_backward); REG(binary); REG(scale); REG(sum_rows); REG(copy2d); REG(adamw);
  REG(sum_squares); REG(attention_forward); REG(attention_backward); REG(lm_logp_forward); REG(lm_logp_backward); REG(grpo_loss);
  REG(sample_rows); REG(convert); REG(scatter_rows); REG(copy_rows); REG(dropout_mask); REG(softcap); REG(repetition_penalty);
  REG(add_rms_norm); REG(glu_lora); REG(qkv_rope_cache); REG(qkv_attention_decode);
  REG(q4_gemm); REG(q4_dequantize); REG(offload_to_host); REG(offload_wait); REG(offload_to_device); REG(offload_release);
  return exports;
}
}  // namespace

NODE_API_MODULE(aha_cuda, Init)
