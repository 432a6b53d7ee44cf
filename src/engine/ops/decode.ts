// The decode path's fused ops (models/fused-layers.ts): forward only, no autograd. Each folds LoRA branches'
// up-projections into the kernel that reads the projections' outputs: the residual add and the next RMS norm
// (addRmsNorm, which can make the down-projections t = x Aᵀ on either side of it too), the gated activation
// (gluLora, which can make the next projection's, in partial sums), and q/k/v's QK-norm, rotary and KV-cache write
// (qkvRopeCache; in a decode step with attention too: qkvRopeAttention). Kernels: native/cpu/decode.cpp,
// native/cuda/decode.cu.
import { Tensor } from "../tensor.ts";
import type { DType } from "../dtype.ts";
import { isGradEnabled } from "../autograd.ts";
import { assertF32, dtypeCode, like } from "./util.ts";
import type { GluAct } from "./nn.ts";

/**
 * A LoRA branch's up-projection, added as scale · t Bᵀ: t [M, ldt] holds the branch's x Aᵀ in columns col..col+r
 * (one GEMM may make the t's of several branches side by side), B [out, r].
 */
export interface LoraUp {
  t: Tensor;
  col: number;
  B: Tensor;
  scale: number;
  /** t holds this many partial sums of x Aᵀ side by side from col, r columns each, to be added up (gluLora's; only
   *  addRmsNorm takes them). Default 1. */
  parts?: number;
}

/** A LoRA branch whose down-projection addRmsNorm computes too: t = src Aᵀ (src [M, in], A [r, in]), then as LoraUp. */
export interface LoraFromSource {
  src: Tensor;
  A: Tensor;
  B: Tensor;
  scale: number;
}

/** The kernels' five arguments of a term (t at its column, B, ldt, r, scale), or of none. */
function upArgs(lo: LoraUp | null, M: number, out: number, op: string, partsOk = false): unknown[] {
  if (!lo) return [null, null, 0, 0, 0];
  const { t, B } = lo, r = B.shape[1], ldt = t.shape[t.shape.length - 1], parts = lo.parts ?? 1;
  assertF32(op, t, B);
  if (parts !== 1 && !partsOk) throw new Error(`${op}: a LoRA term in ${parts} partial sums (only addRmsNorm adds them up)`);
  if (t.numel !== M * ldt || lo.col < 0 || !(parts >= 1) || lo.col + parts * r > ldt || B.shape[0] !== out)
    throw new Error(`${op}: LoRA term t ${t.describe()} (columns ${lo.col}..${lo.col + parts * r}) / B ${B.describe()} do not fit [${M}, ${out}]`);
  return [t.backend.view(t.buf, "f32", lo.col, t.numel - lo.col), B.buf, ldt, r, lo.scale];
}

function noAutograd(op: string, ...ts: Tensor[]): void {
  if (isGradEnabled() && ts.some((t) => t.requiresGrad)) throw new Error(`${op}: forward only (generation under noGrad)`);
}

/**
 * In place on the residual stream h [M, C]: h += add (a projection's output [M, ldAdd], its first C columns; null:
 * none) + the LoRA term (its t given, or computed here from its source); returns y = rms_norm(h) · (w + offset)
 * [M, C], with dt16 its 16-bit copy, and with `down` (the next projections' A's [R, C], adjacent rows) t = y downᵀ
 * [M, R], their down-projections.
 */
export function addRmsNorm(h: Tensor, add: Tensor | null, lora: LoraUp | LoraFromSource | null, w: Tensor | null, eps: number, offset: number,
  dt16: DType | null, down: Tensor | null = null): [Tensor, Tensor | null, Tensor | null] {
  assertF32("addRmsNorm", h, ...(add ? [add] : []), ...(w ? [w] : []), ...(down ? [down] : []));
  noAutograd("addRmsNorm", h);
  const C = h.shape[h.shape.length - 1], M = h.numel / C, ldAdd = add ? add.shape[add.shape.length - 1] : 0;
  if (add && (add.numel !== M * ldAdd || ldAdd < C)) throw new Error(`addRmsNorm: ${add.describe()} cannot be added to ${h.describe()}`);
  if (w && w.numel !== C) throw new Error(`addRmsNorm: ${w.describe()} for ${C} features`);
  if (down && down.shape[1] !== C) throw new Error(`addRmsNorm: down-projections ${down.describe()} for ${C} features`);
  let up: unknown[] = upArgs(null, M, C, "addRmsNorm"), src: unknown[] = [null, 0, null, 0], parts = 1;
  if (lora && "t" in lora) [up, parts] = [upArgs(lora, M, C, "addRmsNorm", true), lora.parts ?? 1];
  else if (lora) {
    const { src: x, A, B } = lora, inF = x.shape[x.shape.length - 1];
    assertF32("addRmsNorm", x, A, B);
    if (x.numel !== M * inF || A.shape[1] !== inF || B.shape[1] !== A.shape[0] || B.shape[0] !== C)
      throw new Error(`addRmsNorm: LoRA source ${x.describe()}, A ${A.describe()}, B ${B.describe()} do not fit [${M}, ${C}]`);
    up = [null, B.buf, 0, B.shape[1], lora.scale];
    src = [x.buf, inF, A.buf, inF];
  }
  const y = like(h), y16 = dt16 ? like(h, h.shape, dt16) : null, t = down ? like(h, [M, down.shape[0]]) : null;
  h.backend.k.add_rms_norm(y.buf, y16?.buf ?? null, dt16 ? dtypeCode(dt16) : 1, h.buf, add?.buf ?? null, ldAdd, ...up, ...src,
    w?.buf ?? null, M, C, eps, offset, t?.buf ?? null, down?.buf ?? null, down ? down.shape[0] : 0, parts);
  return [y, y16, t];
}

/** Columns col..col+width of t [M, ld] (an op's input that is a column block of a wider output, or all of t). */
export interface Cols {
  t: Tensor;
  col: number;
}

/** gluLora's outgoing down-projection comes in partial sums over blocks of this many columns (the kernels' kGluPartCols). */
const GLU_PART_COLS = 128;

/**
 * act(g + term_g) · (u + term_u) for g and u, column blocks I wide of [M, ·] at one row stride (two outputs, or one
 * gate_up output); with dt16 also the result's 16-bit copy. Returns [M, I]; with `down` (the next projection's A
 * [R, I]) also its down-projection out · downᵀ as partial sums [M, nb·R] over nb = ⌈I / GLU_PART_COLS⌉ column blocks,
 * for addRmsNorm (a LoraUp with parts nb).
 */
export function gluLora(g: Cols, u: Cols, I: number, lg: LoraUp | null, lu: LoraUp | null, act: GluAct, dt16: DType | null,
  down: Tensor | null = null): [Tensor, Tensor | null, Tensor | null] {
  assertF32("gluLora", g.t, u.t);
  noAutograd("gluLora", g.t, u.t);
  const ld = g.t.shape[g.t.shape.length - 1], M = g.t.numel / ld;
  for (const c of [g, u])
    if (c.t.shape[c.t.shape.length - 1] !== ld || c.t.numel !== M * ld || c.col < 0 || c.col + I > ld)
      throw new Error(`gluLora: columns ${c.col}..${c.col + I} of ${c.t.describe()} (gate ${g.t.describe()}: ${M} rows at stride ${ld})`);
  const be = g.t.backend, at = (c: Cols) => be.view(c.t.buf, "f32", c.col, c.t.numel - c.col);
  if (down) {
    assertF32("gluLora", down);
    if (down.shape.length !== 2 || down.shape[1] !== I) throw new Error(`gluLora: down-projection ${down.describe()} for ${I} features`);
  }
  const out = like(g.t, [M, I]), out16 = dt16 ? like(g.t, [M, I], dt16) : null;
  const R = down ? down.shape[0] : 0, t = down ? like(g.t, [M, Math.ceil(I / GLU_PART_COLS) * R]) : null;
  be.k.glu_lora(out.buf, out16?.buf ?? null, dt16 ? dtypeCode(dt16) : 1, at(g), at(u), ld,
    ...upArgs(lg, M, I, "gluLora"), ...upArgs(lu, M, I, "gluLora"), M, I, act === "silu" ? 0 : 1, t?.buf ?? null, down?.buf ?? null, R);
  return [out, out16, t];
}

export interface QkvRopeCacheOpts {
  Hq: number;
  Hkv: number;
  D: number;
  /** per-head RMS-norm weights [D] of q and k (Qwen3's QK-norm), or null */
  qNorm: Tensor | null;
  kNorm: Tensor | null;
  eps: number;
  offset: number;
  /** rotary tables [M, rot/2] */
  cos: Tensor;
  sin: Tensor;
  rot: number;
  /** the layer's caches [*, Hkv·D] (f32 or bf16) and the rows [M] i32 this step's keys and values go to */
  kCache: Tensor;
  vCache: Tensor;
  rows: Tensor;
}

/**
 * The q, k, v projections' outputs (column blocks of [M, ·]: q Hq·D wide, k and v Hkv·D wide at one row stride;
 * separate tensors or one [M, (Hq + 2 Hkv)·D]) with their LoRA terms, QK-norm and rotary applied: returns q
 * [M, Hq, D]; k and v go to the cache rows.
 */
export function qkvRopeCache(q: Cols, k: Cols, v: Cols, loras: [LoraUp | null, LoraUp | null, LoraUp | null], o: QkvRopeCacheOpts): Tensor {
  const args = qkvArgs("qkvRopeCache", q, k, v, loras, o), { Hq, D } = o, M = o.rows.numel;
  const out = like(q.t, [M, Hq, D]);
  q.t.backend.k.qkv_rope_cache(out.buf, ...args);
  return out;
}

/** The kernels' arguments from the cache through the head counts (qkv_rope_cache's after qOut), checked. */
function qkvArgs(op: string, q: Cols, k: Cols, v: Cols, loras: [LoraUp | null, LoraUp | null, LoraUp | null], o: QkvRopeCacheOpts): unknown[] {
  assertF32(op, q.t, k.t, v.t, o.cos, o.sin);
  noAutograd(op, q.t, k.t, v.t);
  const { Hq, Hkv, D } = o, M = o.rows.numel, half = o.rot / 2;
  const ld = (c: Cols, width: number) => {
    const n = c.t.shape[c.t.shape.length - 1];
    if (c.t.numel !== M * n || c.col < 0 || c.col + width > n) throw new Error(`${op}: columns ${c.col}..${c.col + width} of ${c.t.describe()} for ${M} rows`);
    return n;
  };
  const ldq = ld(q, Hq * D), ldk = ld(k, Hkv * D), ldv = ld(v, Hkv * D);
  if (ldk !== ldv) throw new Error(`${op}: k and v rows at different strides (${ldk}, ${ldv})`);
  if (o.cos.numel !== M * half || o.sin.numel !== M * half || o.rot > D || o.rot % 2) throw new Error(`${op}: rotary tables ${o.cos.describe()} for ${M} rows, rot ${o.rot}`);
  if (o.kCache.dtype !== o.vCache.dtype || o.kCache.numel % (Hkv * D)) throw new Error(`${op}: caches ${o.kCache.describe()} / ${o.vCache.describe()}`);
  for (const n of [o.qNorm, o.kNorm]) if (n && n.numel !== D) throw new Error(`${op}: QK-norm ${n.describe()} for head dim ${D}`);
  const be = q.t.backend, at = (c: Cols) => be.view(c.t.buf, "f32", c.col, c.t.numel - c.col);
  return [o.kCache.buf, o.vCache.buf, dtypeCode(o.kCache.dtype), o.rows.buf, at(q), ldq, at(k), at(v), ldk,
    ...upArgs(loras[0], M, Hq * D, op), ...upArgs(loras[1], M, Hkv * D, op), ...upArgs(loras[2], M, Hkv * D, op),
    o.qNorm?.buf ?? null, o.kNorm?.buf ?? null, o.eps, o.offset, o.cos.buf, o.sin.buf, o.rot, M, Hq, Hkv, D];
}

/** What attention needs beside qkvRopeCache's options, for a decode step (one query row per sequence). */
export interface DecodeAttentionOpts {
  /** key positions per sequence: the query, at position S - 1, sees keys 0 … S - 1 */
  S: number;
  /** elements between sequences in the caches (the cache's capacity · Hkv · D); rows[b] must be b · capacity + j, j < S */
  kvStrideB: number;
  /** [B, S] i32, 1 = a key to see (null: all) */
  keyMask: Tensor | null;
  scale: number;
  window: number;
  softcap: number;
}

/**
 * A decode step's qkvRopeCache and attention in one op (one kernel on CUDA): q/k/v as qkvRopeCache takes them for B
 * rows (one per sequence), the new keys and values written to the cache rows, and the attention output [B, Hq, D]
 * over each sequence's S keys, with its 16-bit copy when dt16 is given (the o projection's input).
 */
export function qkvRopeAttention(q: Cols, k: Cols, v: Cols, loras: [LoraUp | null, LoraUp | null, LoraUp | null], o: QkvRopeCacheOpts,
  a: DecodeAttentionOpts, dt16: DType | null): [Tensor, Tensor | null] {
  const args = qkvArgs("qkvRopeAttention", q, k, v, loras, o), { Hq, Hkv, D } = o, B = o.rows.numel;
  if (a.kvStrideB % (Hkv * D) || a.S > a.kvStrideB / (Hkv * D) || o.kCache.numel < B * a.kvStrideB)
    throw new Error(`qkvRopeAttention: ${B} sequences of ${a.S} keys at stride ${a.kvStrideB} in ${o.kCache.describe()}`);
  if (a.keyMask && (a.keyMask.dtype !== "i32" || a.keyMask.numel !== B * a.S)) throw new Error(`qkvRopeAttention: key mask ${a.keyMask.describe()} for [${B}, ${a.S}]`);
  const out = like(q.t, [B, Hq, D]), out16 = dt16 ? like(q.t, [B, Hq, D], dt16) : null;
  q.t.backend.k.qkv_attention_decode(out.buf, out16?.buf ?? null, dt16 ? dtypeCode(dt16) : 1, ...args,
    a.keyMask?.buf ?? null, a.S, a.kvStrideB, a.scale, a.window, a.softcap);
  return [out, out16];
}
