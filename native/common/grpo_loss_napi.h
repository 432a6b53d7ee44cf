// The GRPO loss variant (native/common/grpo_loss.h) read from its JS object (GrpoLossParams in
// src/engine/ops/logprobs.ts): one reader for the CPU and CUDA bindings. Include after napi.h.
#pragma once
#include "grpo_loss.h"

namespace aha_common {
inline GrpoVariant grpo_variant(const Napi::Value& v) {
  GrpoVariant p;
  if (!v.IsObject()) return p;
  auto o = v.As<Napi::Object>();
  auto f = [&](const char* k, float d) { auto x = o.Get(k); return x.IsNumber() ? x.As<Napi::Number>().FloatValue() : d; };
  p.kind = (int)f("kind", 0);
  p.seq = (int)f("seq", 0);
  p.eps_low = f("epsilonLow", 0.2f);
  p.eps_high = f("epsilonHigh", 0.2f);
  p.delta = f("delta", 0);
  p.beta = f("beta", 0);
  p.bias_kl = (int)f("biasKl", 0);
  p.sapo_pos = f("sapoPos", 1);
  p.sapo_neg = f("sapoNeg", 1.05f);
  p.off_policy = (int)f("offPolicy", 0);
  p.off_threshold = f("offThreshold", 0);
  p.entropy_q = f("entropyQuantile", 1);
  return p;
}
}  // namespace aha_common
