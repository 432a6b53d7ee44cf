// Neural-network ops of the llama family: RMSNorm, rotary embeddings, gated MLP activations, embedding gather.
import { Tensor, empty } from "../tensor.ts";
import { record, recordMulti } from "../autograd.ts";
import type { DType } from "../dtype.ts";
import { assertF32, dtypeCode, like, likeZero } from "./util.ts";

/** RMSNorm over the last dim: x * rsqrt(mean(x²) + eps) * (w + offset). offset 1 = Gemma's (1 + w). */
export function rmsNorm(x: Tensor, w: Tensor | null, eps: number, offset = 0): Tensor {
  return rmsNormAnd16(x, w, eps, offset, null)[0];
}

/**
 * rmsNorm, and its output rounded to dt16 (bf16/f16) by the same kernel, without autograd: the input of GEMMs that
 * take 16-bit activations (loraLinear's `x16`), so that they need no conversion of their own.
 */
export function rmsNorm16(x: Tensor, w: Tensor | null, eps: number, offset: number, dt16: DType): [Tensor, Tensor] {
  return rmsNormAnd16(x, w, eps, offset, dt16) as [Tensor, Tensor];
}

function rmsNormAnd16(x: Tensor, w: Tensor | null, eps: number, offset: number, dt16: DType | null): [Tensor, Tensor | null] {
  assertF32("rmsNorm", x, ...(w ? [w] : []));
  const C = x.shape[x.shape.length - 1], N = x.numel / C;
  if (w && w.numel !== C) throw new Error(`rmsNorm: ${w.describe()} for ${C} features`);
  const out = like(x), rstd = like(x, [N]); // rstd [N]
  const out16 = dt16 ? like(x, x.shape, dt16) : null;
  const k = x.backend.k;
  k.rms_norm_forward(out.buf, rstd.buf, x.buf, w?.buf ?? null, N, C, eps, offset, out16?.buf ?? null, dt16 ? dtypeCode(dt16) : 1);
  const inputs = w ? [x, w] : [x];
  return [record(out, "rms_norm", inputs, (g) => {
    const dx = x.requiresGrad ? likeZero(x) : null;
    const dw = w && w.requiresGrad ? likeZero(w) : null;
    k.rms_norm_backward(dx?.buf ?? null, dw?.buf ?? null, g.buf, x.buf, rstd.buf, w?.buf ?? null, N, C, offset);
    return w ? [dx, dw] : [dx];
  }), out16];
}

/**
 * Rotary embedding (HF rotate_half convention) on x [N, H, D] (or [B, T, H, D]) with per-row tables
 * cos/sin [N, rot/2]; dims >= rot pass through (partial rotary).
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, rot: number): Tensor {
  assertF32("rope", x, cos, sin);
  const D = x.shape[x.shape.length - 1], H = x.shape[x.shape.length - 2], N = x.numel / (H * D);
  if (cos.numel !== N * (rot / 2)) throw new Error(`rope: cos table [${cos.shape}] for ${N} rows of rot ${rot}`);
  const out = like(x);
  const k = x.backend.k;
  k.rope_forward(out.buf, x.buf, cos.buf, sin.buf, N, H, D, rot, false);
  return record(out, "rope", [x], (g) => {
    const dx = like(x);
    k.rope_forward(dx.buf, g.buf, cos.buf, sin.buf, N, H, D, rot, true);
    return [dx];
  });
}

/** rope of queries q [N, Hq, D] and keys k [N, Hk, D] with the same tables: one kernel forward and backward. */
export function ropePair(q: Tensor, k: Tensor, cos: Tensor, sin: Tensor, rot: number): [Tensor, Tensor] {
  assertF32("rope", q, k, cos, sin);
  const D = q.shape[q.shape.length - 1], Hq = q.shape[q.shape.length - 2], N = q.numel / (Hq * D);
  const Hk = k.shape[k.shape.length - 2];
  if (k.shape[k.shape.length - 1] !== D || k.numel !== N * Hk * D) throw new Error(`ropePair: keys [${k.shape}] do not match queries [${q.shape}]`);
  if (cos.numel !== N * (rot / 2)) throw new Error(`rope: cos table [${cos.shape}] for ${N} rows of rot ${rot}`);
  const qo = like(q), ko = like(k), kk = q.backend.k;
  kk.rope_forward(qo.buf, q.buf, cos.buf, sin.buf, N, Hq, D, rot, false, ko.buf, k.buf, Hk);
  return recordMulti([qo, ko], "rope_pair", [q, k], ([gq, gk]) => {
    const dq = gq && q.requiresGrad ? like(q) : null, dk = gk && k.requiresGrad ? like(k) : null;
    if (dq && dk) kk.rope_forward(dq.buf, gq!.buf, cos.buf, sin.buf, N, Hq, D, rot, true, dk.buf, gk!.buf, Hk);
    else if (dq) kk.rope_forward(dq.buf, gq!.buf, cos.buf, sin.buf, N, Hq, D, rot, true);
    else if (dk) kk.rope_forward(dk.buf, gk!.buf, cos.buf, sin.buf, N, Hk, D, rot, true);
    return [dq, dk];
  }) as [Tensor, Tensor];
}

export type GluAct = "silu" | "gelu_tanh";

/** act(g) * u, elementwise (SwiGLU with silu, GeGLU with tanh-GELU). */
export function glu(g: Tensor, u: Tensor, act: GluAct): Tensor {
  return gluAnd16(g, u, act, null)[0];
}

/** glu, and its output rounded to dt16 (bf16/f16) by the same kernel, without autograd (see rmsNorm16). */
export function glu16(g: Tensor, u: Tensor, act: GluAct, dt16: DType): [Tensor, Tensor] {
  return gluAnd16(g, u, act, dt16) as [Tensor, Tensor];
}

function gluAnd16(g: Tensor, u: Tensor, act: GluAct, dt16: DType | null): [Tensor, Tensor | null] {
  assertF32("glu", g, u);
  if (g.numel !== u.numel) throw new Error(`glu: gate [${g.shape}] and up [${u.shape}] differ`);
  const a = act === "silu" ? 0 : 1;
  const out = like(g), out16 = dt16 ? like(g, g.shape, dt16) : null;
  const k = g.backend.k;
  k.glu_forward(out.buf, g.buf, u.buf, g.numel, a, out16?.buf ?? null, dt16 ? dtypeCode(dt16) : 1);
  return [record(out, "glu", [g, u], (d) => {
    const dg = g.requiresGrad ? likeZero(g) : null, du = u.requiresGrad ? likeZero(u) : null;
    k.glu_backward(dg?.buf ?? null, du?.buf ?? null, d.buf, g.buf, u.buf, g.numel, a);
    return [dg, du];
  }), out16];
}

/**
 * A LoRA dropout mask of `shape`: each element 1/(1-p) with probability 1-p, else 0, drawn from (seed, salt, index)
 * by a counter-based hash (the same masks on every backend; native/cpu/kernels.h). seed [1] i32 lives on the device,
 * so a replayed graph draws new masks when a new seed is written; salt tells the masks of one forward apart.
 */
export function dropoutMask(seed: Tensor, salt: number, shape: number[], p: number): Tensor {
  if (seed.dtype !== "i32" || seed.numel !== 1) throw new Error(`dropoutMask: the seed must be one i32, not ${seed.describe()}`);
  if (!(p > 0 && p < 1)) throw new Error(`dropoutMask: p must be in (0, 1), got ${p}`);
  const out = empty(shape, "f32", seed.backend);
  seed.backend.k.dropout_mask(out.buf, seed.buf, salt >>> 0, out.numel, 1 - p, 1 / (1 - p));
  return out;
}

/** table[ids] → [N, C]; table [V, C] may be bf16/f16; ids i32 [N]. */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  if (ids.dtype !== "i32") throw new Error(`embedding: ids must be i32, got ${ids.dtype}`);
  const [V, C] = table.shape, N = ids.numel;
  const out = like(table, [N, C]);
  const k = table.backend.k;
  k.embedding_forward(out.buf, ids.buf, table.buf, dtypeCode(table.dtype), N, C, V);
  return record(out, "embedding", [table], (g) => {
    const dt = likeZero(table, table.shape, "f32");
    k.embedding_backward(dt.buf, g.buf, ids.buf, N, C);
    return [dt];
  });
}
