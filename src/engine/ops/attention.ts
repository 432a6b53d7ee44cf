// Causal grouped-query attention over [B, T, H, D] tensors, with key padding mask, sliding window, soft-capping
// and a KV cache (keys/values in a larger buffer with S valid positions). Never builds the T × S matrix.
import { Tensor } from "../tensor.ts";
import { isGradEnabled, record } from "../autograd.ts";
import { assertF32, dtypeCode, like, likeZero } from "./util.ts";
import type { DType } from "../dtype.ts";

export interface AttentionOpts {
  B: number; T: number; Hq: number; Hkv: number; D: number;
  /** valid key positions (T without a cache; past + T with one) */
  S?: number;
  /** elements between batch rows of k/v (default S * Hkv * D; the cache capacity stride with a cache) */
  kvStrideB?: number;
  scale: number;
  /** 0 = no window; else query p sees keys j with p - j < window */
  window?: number;
  softcap?: number;
  /** [B, S] i32, 1 = real token */
  keyMask?: Tensor | null;
  /**
   * Allow 16-bit tensor-core arithmetic in this type (CUDA: Q, K, V, P rounded to it with f32 accumulation, as 16-bit
   * training does; true: bf16) where the backend has it; set to the weights' type for models with 16-bit weights. The
   * CPU backend is always f32.
   */
  lowPrecision?: boolean | "bf16" | "f16";
}

export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOpts): Tensor {
  return attentionAnd16(q, k, v, o, null)[0];
}

/** attention, and its output rounded to dt16 by the same kernel, without autograd: the o projection's x16. */
export function attention16(q: Tensor, k: Tensor, v: Tensor, o: AttentionOpts, dt16: DType): [Tensor, Tensor] {
  return attentionAnd16(q, k, v, o, dt16) as [Tensor, Tensor];
}

function attentionAnd16(q: Tensor, k: Tensor, v: Tensor, o: AttentionOpts, dt16: DType | null): [Tensor, Tensor | null] {
  // keys and values may be bf16 or f16 (a KV cache of 16-bit values: no gradient flows into it)
  assertF32("attention", q);
  if (k.dtype !== v.dtype || k.dtype === "i32") throw new Error(`attention: keys ${k.describe()} and values ${v.describe()} must both be f32, bf16 or f16`);
  // (no backward reads 16-bit keys: a recorded forward over them would pass them to a kernel that reads f32)
  if (k.dtype !== "f32" && (k.requiresGrad || v.requiresGrad || (q.requiresGrad && isGradEnabled())))
    throw new Error(`attention: ${k.dtype} keys/values are for a KV cache, without gradients`);
  const S = o.S ?? o.T;
  const kvStrideB = o.kvStrideB ?? S * o.Hkv * o.D;
  if (q.numel !== o.B * o.T * o.Hq * o.D) throw new Error(`attention: q [${q.shape}] is not [${o.B},${o.T},${o.Hq},${o.D}]`);
  if (o.Hq % o.Hkv !== 0) throw new Error(`attention: ${o.Hq} query heads not a multiple of ${o.Hkv} kv heads`);
  const out = like(q), lse = like(q, [o.B, o.Hq, o.T]), out16 = dt16 ? like(q, q.shape, dt16) : null;
  const kk = q.backend.k;
  const mask = o.keyMask?.buf ?? null;
  const lowp = o.lowPrecision === true ? dtypeCode("bf16") : o.lowPrecision ? dtypeCode(o.lowPrecision) : 0;
  kk.attention_forward(out.buf, lse.buf, q.buf, k.buf, v.buf, mask, o.B, o.T, S, o.Hq, o.Hkv, o.D, kvStrideB, o.scale, o.window ?? 0, o.softcap ?? 0,
    lowp, out16?.buf ?? null, dt16 ? dtypeCode(dt16) : 1, dtypeCode(k.dtype));
  return [record(out, "attention", [q, k, v], (g) => {
    if (kvStrideB !== S * o.Hkv * o.D) throw new Error("attention backward through a KV cache is not supported");
    const dq = likeZero(q), dk = likeZero(k), dv = likeZero(v);
    kk.attention_backward(dq.buf, dk.buf, dv.buf, g.buf, out.buf, lse.buf, q.buf, k.buf, v.buf, mask, o.B, o.T, S, o.Hq, o.Hkv, o.D, o.scale, o.window ?? 0, o.softcap ?? 0, lowp);
    return [dq, dk, dv];
  }), out16];
}
