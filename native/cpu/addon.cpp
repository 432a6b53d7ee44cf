// N-API binding of the CPU kernels: each export takes typed arrays (or null) and sizes, in the kernel's own
// argument order (kernels.h), and runs synchronously on the calling thread plus the kernel thread pool.
#include <napi.h>
#include "kernels.h"
#include "q4.h"
#include "threadpool.h"
#include "../common/grpo_loss_napi.h"
#include <vector>

using namespace aha;

namespace {
template <class T = float> T* ptr(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!v.IsTypedArray()) {
    Napi::TypeError::New(v.Env(), "expected a typed array").ThrowAsJavaScriptException();
    return nullptr;
  }
  auto ta = v.As<Napi::TypedArray>();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}
long L(const Napi::Value& v) { return (long)v.As<Napi::Number>().Int64Value(); }
float F(const Napi::Value& v) { return v.As<Napi::Number>().FloatValue(); }
bool Bo(const Napi::Value& v) { return v.ToBoolean().Value(); }

#define FN(name) Napi::Value name##_js(const Napi::CallbackInfo& a)

FN(gemm) {
  // a[18] (fast) only matters on CUDA. a[19] is A's dtype: a 16-bit A is widened to f32 first (exact, as the
  // kernel's f32 arithmetic then is). a[20] is a bias [N] added to every row of C afterwards (CUDA folds it into the
  // GEMM), for dense rows of C (ldc = N); a[21]: elements between the biases of consecutive batches (0: one bias).
  const long batch = L(a[4]), M = L(a[5]), N = L(a[6]), K = L(a[7]), lda = L(a[10]), ldc = L(a[12]), sA = L(a[13]);
  const int dtA = a.Length() > 19 && a[19].IsNumber() ? (int)L(a[19]) : F32;
  const float* bias = a.Length() > 20 ? ptr(a[20]) : nullptr;
  const long biasStride = a.Length() > 21 && a[21].IsNumber() ? L(a[21]) : 0;
  if (bias && ldc != N) {
    Napi::Error::New(a.Env(), "aha cpu gemm: a bias needs dense rows of C (ldc = N)").ThrowAsJavaScriptException();
    return a.Env().Undefined();
  }
  const float* A = ptr(a[1]);
  std::vector<float> wide;
  if (dtA != F32) {
    const bool tA = Bo(a[8]);
    const long n = (sA ? batch - 1 : 0) * sA + ((tA ? K : M) - 1) * lda + (tA ? M : K);  // elements spanned by A
    wide.resize(n);
    convert_row(wide.data(), ptr<void>(a[1]), dtA, 0, n);
    A = wide.data();
  }
  gemm(ptr(a[0]), A, ptr<void>(a[2]), (int)L(a[3]), batch, M, N, K, Bo(a[8]), Bo(a[9]), lda, L(a[11]), ldc, sA, L(a[14]), L(a[15]),
       F(a[16]), F(a[17]));
  const long sC = L(a[15]);
  if (bias) for (long b = 0; b < batch; b++) binary(ptr(a[0]) + b * sC, ptr(a[0]) + b * sC, bias + b * biasStride, M * N, N, 0);
  return a.Env().Undefined();
}
FN(copy_rows) {
  const int es = (int)L(a[5]);
  if (es != 2 && es != 4) {
    Napi::Error::New(a.Env(), "aha cpu copy_rows: elements of 2 or 4 bytes").ThrowAsJavaScriptException();
    return a.Env().Undefined();
  }
  copy_rows(ptr<void>(a[0]), ptr<void>(a[1]), ptr<int32_t>(a[2]), L(a[3]), L(a[4]), es, a.Length() > 6 ? ptr<void>(a[6]) : nullptr,
            a.Length() > 7 ? ptr<void>(a[7]) : nullptr);
  return a.Env().Undefined();
}
FN(scatter_rows) {
  const int dt = a.Length() > 7 && a[7].IsNumber() ? (int)L(a[7]) : F32;
  if (dt != F32 && dt != BF16) {
    Napi::Error::New(a.Env(), "aha cpu scatter_rows: the destination must be f32 or bf16").ThrowAsJavaScriptException();
    return a.Env().Undefined();
  }
  scatter_rows(ptr<void>(a[0]), ptr(a[1]), ptr<int32_t>(a[2]), L(a[3]), L(a[4]), a.Length() > 5 ? ptr<void>(a[5]) : nullptr,
               a.Length() > 6 ? ptr(a[6]) : nullptr, dt);
  return a.Env().Undefined();
}
FN(repetition_penalty) {
  repetition_penalty(ptr(a[0]), ptr<int32_t>(a[1]), L(a[2]), L(a[3]), L(a[4]), F(a[5]));
  return a.Env().Undefined();
}
FN(softcap) {
  softcap(ptr(a[0]), ptr(a[1]), F(a[2]), L(a[3]));
  return a.Env().Undefined();
}
FN(dropout_mask) {
  dropout_mask(ptr(a[0]), ptr<int32_t>(a[1]), (uint32_t)L(a[2]), L(a[3]), F(a[4]), F(a[5]));
  return a.Env().Undefined();
}
FN(convert) {
  if (L(a[1]) != F32 && L(a[1]) != BF16) {
    Napi::Error::New(a.Env(), "aha cpu convert: the target must be f32 or bf16").ThrowAsJavaScriptException();
    return a.Env().Undefined();
  }
  convert(ptr<void>(a[0]), (int)L(a[1]), ptr<void>(a[2]), (int)L(a[3]), L(a[4]));
  return a.Env().Undefined();
}
// a 16-bit copy of an output (optional trailing arguments: buffer, dtype): bf16 only on the CPU
bool cpu16(const Napi::CallbackInfo& a, size_t i) {
  if (a.Length() <= i || a[i].IsNull() || a[i].IsUndefined()) return false;
  if (a.Length() > i + 1 && L(a[i + 1]) != BF16) {
    Napi::Error::New(a.Env(), "aha cpu: 16-bit copies of outputs are bf16 on the CPU").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}
FN(rms_norm_forward) {
  const bool c16 = cpu16(a, 8);
  if (a.Env().IsExceptionPending()) return a.Env().Undefined();
  rms_norm_forward(ptr(a[0]), ptr(a[1]), ptr(a[2]), ptr(a[3]), L(a[4]), L(a[5]), F(a[6]), F(a[7]), c16 ? ptr<uint16_t>(a[8]) : nullptr);
  return a.Env().Undefined();
}
FN(rms_norm_backward) {
  rms_norm_backward(ptr(a[0]), ptr(a[1]), ptr(a[2]), ptr(a[3]), ptr(a[4]), ptr(a[5]), L(a[6]), L(a[7]), F(a[8]));
  return a.Env().Undefined();
}
FN(rope_forward) {
  const bool two = a.Length() > 11 && !a[9].IsNull() && !a[9].IsUndefined();
  rope_forward(ptr(a[0]), ptr(a[1]), ptr(a[2]), ptr(a[3]), L(a[4]), L(a[5]), L(a[6]), L(a[7]), Bo(a[8]), two ? ptr(a[9]) : nullptr,
               two ? ptr(a[10]) : nullptr, two ? L(a[11]) : 0);
  return a.Env().Undefined();
}
FN(glu_forward) {
  const bool c16 = cpu16(a, 5);
  if (a.Env().IsExceptionPending()) return a.Env().Undefined();
  glu_forward(ptr(a[0]), ptr(a[1]), ptr(a[2]), L(a[3]), (int)L(a[4]), c16 ? ptr<uint16_t>(a[5]) : nullptr);
  return a.Env().Undefined();
}
FN(glu_backward) {
  glu_backward(ptr(a[0]), ptr(a[1]), ptr(a[2]), ptr(a[3]), ptr(a[4]), L(a[5]), (int)L(a[6]));
  return a.Env().Undefined();
}
FN(embedding_forward) {
  embedding_forward(ptr(a[0]), ptr<int32_t>(a[1]), ptr<void>(a[2]), (int)L(a[3]), L(a[4]), L(a[5]), L(a[6]));
  return a.Env().Undefined();
}
FN(embedding_backward) {
  embedding_backward(ptr(a[0]), ptr(a[1]), ptr<int32_t>(a[2]), L(a[3]), L(a[4]));
  return a.Env().Undefined();
}
FN(binary) {
  binary(ptr(a[0]), ptr(a[1]), ptr(a[2]), L(a[3]), L(a[4]), (int)L(a[5]));
  return a.Env().Undefined();
}
FN(scale) {
  scale(ptr(a[0]), ptr(a[1]), F(a[2]), L(a[3]));
  return a.Env().Undefined();
}
FN(sum_rows) {
  sum_rows(ptr(a[0]), ptr(a[1]), L(a[2]), L(a[3]), Bo(a[4]));
  return a.Env().Undefined();
}
FN(copy2d) {
  copy2d(ptr(a[0]), ptr(a[1]), L(a[2]), L(a[3]), L(a[4]), L(a[5]), Bo(a[6]));
  return a.Env().Undefined();
}
FN(adamw) {
  adamw(ptr(a[0]), ptr(a[1]), ptr(a[2]), ptr(a[3]), L(a[4]), F(a[5]), F(a[6]), F(a[7]), F(a[8]), F(a[9]), L(a[10]));
  return a.Env().Undefined();
}
FN(sum_squares) { return Napi::Number::New(a.Env(), sum_squares(ptr(a[0]), L(a[1]))); }
FN(attention_forward) {
  // a[16] (lowp) only matters on CUDA; a[17], a[18]: a 16-bit copy of o and its dtype; a[19]: k and v's dtype
  const bool c16 = cpu16(a, 17);
  if (a.Env().IsExceptionPending()) return a.Env().Undefined();
  const int dtKV = a.Length() > 19 && a[19].IsNumber() ? (int)L(a[19]) : F32;
  attention_forward(ptr(a[0]), ptr(a[1]), ptr(a[2]), ptr<const float>(a[3]), ptr<const float>(a[4]), ptr<int32_t>(a[5]), L(a[6]), L(a[7]), L(a[8]),
                    L(a[9]), L(a[10]), L(a[11]), L(a[12]), F(a[13]), L(a[14]), F(a[15]), c16 ? ptr<uint16_t>(a[17]) : nullptr, dtKV);
  return a.Env().Undefined();
}
FN(attention_backward) {
  attention_backward(ptr(a[0]), ptr(a[1]), ptr(a[2]), ptr(a[3]), ptr(a[4]), ptr(a[5]), ptr(a[6]), ptr(a[7]), ptr(a[8]),
                     ptr<int32_t>(a[9]), L(a[10]), L(a[11]), L(a[12]), L(a[13]), L(a[14]), L(a[15]), F(a[16]), L(a[17]), F(a[18]));
  return a.Env().Undefined();
}
FN(lm_logp_forward) {
  lm_logp_forward(ptr(a[0]), ptr(a[1]), ptr(a[2]), ptr(a[3]), ptr<void>(a[4]), (int)L(a[5]), ptr<int32_t>(a[6]), L(a[7]),
                  L(a[8]), L(a[9]), F(a[10]), F(a[11]));
  return a.Env().Undefined();
}
FN(lm_logp_backward) {
  lm_logp_backward(ptr(a[0]), ptr(a[1]), ptr(a[2]), ptr(a[3]), ptr(a[4]), ptr<void>(a[5]), (int)L(a[6]), ptr<int32_t>(a[7]),
                   L(a[8]), L(a[9]), L(a[10]), F(a[11]), F(a[12]));
  return a.Env().Undefined();
}
// grpo_loss(dlogp, logp, old, ref, adv, w, entropy, rows, T, variant, gout, out)
FN(grpo_loss) {
  return Napi::Number::New(a.Env(), grpo_loss(ptr(a[0]), ptr(a[1]), ptr(a[2]), ptr(a[3]), ptr(a[4]), ptr(a[5]), ptr(a[6]), L(a[7]),
                                              L(a[8]), aha_common::grpo_variant(a[9]), F(a[10]), ptr(a[11])));
}
FN(sample_rows) {
  sample_rows(ptr<int32_t>(a[0]), ptr(a[1]), ptr(a[2]), ptr(a[3]), L(a[4]), L(a[5]), F(a[6]), L(a[7]), F(a[8]), F(a[9]));
  return a.Env().Undefined();
}
// the decode path's fused kernels (decode.cpp): a LoRA term is five arguments (t, B, ldt, r, scale; B null: none)
LoraUp lora_up(const Napi::CallbackInfo& a, size_t i) {
  return LoraUp{ptr(a[i]), ptr(a[i + 1]), L(a[i + 2]), L(a[i + 3]), F(a[i + 4])};
}
FN(add_rms_norm) {
  const bool c16 = cpu16(a, 1);
  if (a.Env().IsExceptionPending()) return a.Env().Undefined();
  add_rms_norm(ptr(a[0]), c16 ? ptr<uint16_t>(a[1]) : nullptr, ptr(a[3]), ptr(a[4]), L(a[5]), lora_up(a, 6), ptr(a[11]), L(a[12]), ptr(a[13]),
               L(a[14]), ptr(a[15]), L(a[16]), L(a[17]), F(a[18]), F(a[19]), ptr(a[20]), ptr(a[21]), L(a[22]), L(a[23]));
  return a.Env().Undefined();
}
FN(glu_lora) {
  const bool c16 = cpu16(a, 1);
  if (a.Env().IsExceptionPending()) return a.Env().Undefined();
  glu_lora(ptr(a[0]), c16 ? ptr<uint16_t>(a[1]) : nullptr, ptr(a[3]), ptr(a[4]), L(a[5]), lora_up(a, 6), lora_up(a, 11), L(a[16]),
           L(a[17]), (int)L(a[18]), ptr(a[19]), ptr(a[20]), L(a[21]));
  return a.Env().Undefined();
}
FN(qkv_rope_cache) {
  qkv_rope_cache(ptr(a[0]), ptr<void>(a[1]), ptr<void>(a[2]), (int)L(a[3]), ptr<int32_t>(a[4]), ptr(a[5]), L(a[6]), ptr(a[7]),
                 ptr(a[8]), L(a[9]), lora_up(a, 10), lora_up(a, 15), lora_up(a, 20), ptr(a[25]), ptr(a[26]), F(a[27]), F(a[28]),
                 ptr(a[29]), ptr(a[30]), L(a[31]), L(a[32]), L(a[33]), L(a[34]), L(a[35]));
  return a.Env().Undefined();
}
FN(qkv_attention_decode) {
  const bool c16 = cpu16(a, 1);
  if (a.Env().IsExceptionPending()) return a.Env().Undefined();
  qkv_attention_decode(ptr(a[0]), c16 ? ptr<uint16_t>(a[1]) : nullptr, ptr<void>(a[3]), ptr<void>(a[4]), (int)L(a[5]), ptr<int32_t>(a[6]), ptr(a[7]),
                       L(a[8]), ptr(a[9]), ptr(a[10]), L(a[11]), lora_up(a, 12), lora_up(a, 17), lora_up(a, 22), ptr(a[27]), ptr(a[28]), F(a[29]),
                       F(a[30]), ptr(a[31]), ptr(a[32]), L(a[33]), L(a[34]), L(a[35]), L(a[36]), L(a[37]), ptr<int32_t>(a[38]), L(a[39]), L(a[40]),
                       F(a[41]), L(a[42]), F(a[43]));
  return a.Env().Undefined();
}
// bitsandbytes 4-bit weights (q4.cpp): a weight is seven arguments from i (packed, absmax, nested, code, ncode, offset, dtype)
Q4 q4_arg(const Napi::CallbackInfo& a, size_t i) {
  return Q4{ptr<uint8_t>(a[i]), ptr<void>(a[i + 1]), ptr(a[i + 2]), ptr(a[i + 3]), ptr(a[i + 4]), F(a[i + 5]), (int)L(a[i + 6])};
}
FN(q4_gemm) {  // (C, A, dtA, weight…, M, R, K, trans, alpha, beta, bias, dtCompute): A f32 on the CPU, the compute dtype only matters on CUDA
  if (L(a[2]) != F32) {
    Napi::Error::New(a.Env(), "aha cpu q4_gemm: A must be f32").ThrowAsJavaScriptException();
    return a.Env().Undefined();
  }
  q4_gemm(ptr(a[0]), ptr(a[1]), q4_arg(a, 3), L(a[10]), L(a[11]), L(a[12]), Bo(a[13]), F(a[14]), F(a[15]), ptr(a[16]));
  return a.Env().Undefined();
}
FN(q4_dequantize) {  // (out, dtOut, weight…, i0, count): out f32 or bf16
  const int dt = (int)L(a[1]);
  const long i0 = L(a[9]), n = L(a[10]);
  if (dt == F32) q4_dequantize(ptr(a[0]), q4_arg(a, 2), i0, n);
  else {
    std::vector<float> tmp(n);
    q4_dequantize(tmp.data(), q4_arg(a, 2), i0, n);
    convert(ptr<void>(a[0]), dt, tmp.data(), F32, n);
  }
  return a.Env().Undefined();
}
FN(q4_quantize) {
  q4_quantize(ptr<uint8_t>(a[0]), ptr(a[1]), ptr<void>(a[2]), (int)L(a[3]), L(a[4]), (int)L(a[5]));
  return a.Env().Undefined();
}
FN(q8_quantize_blockwise) {
  q8_quantize_blockwise(ptr<uint8_t>(a[0]), ptr(a[1]), ptr(a[2]), L(a[3]), L(a[4]), ptr(a[5]));
  return a.Env().Undefined();
}
FN(num_threads) { return Napi::Number::New(a.Env(), ThreadPool::get().size()); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#define REG(name) exports.Set(#name, Napi::Function::New(env, name##_js, #name))
  REG(gemm); REG(rms_norm_forward); REG(rms_norm_backward); REG(rope_forward); REG(glu_forward); REG(glu_backward);
  REG(embedding_forward); REG(embedding_backward); REG(binary); REG(scale); REG(sum_rows); REG(copy2d); REG(adamw);
  REG(sum_squares); REG(attention_forward); REG(attention_backward); REG(lm_logp_forward); REG(lm_logp_backward);
  REG(grpo_loss); REG(sample_rows); REG(num_threads); REG(convert); REG(scatter_rows); REG(copy_rows); REG(dropout_mask); REG(softcap); REG(repetition_penalty);
  REG(add_rms_norm); REG(glu_lora); REG(qkv_rope_cache); REG(qkv_attention_decode);
  REG(q4_gemm); REG(q4_dequantize); REG(q4_quantize); REG(q8_quantize_blockwise);
  return exports;
}
}  // namespace

NODE_API_MODULE(aha_cpu, Init)
