// The layers' forward without autograd through a KV cache (generation: the prompt prefill and every decode step) in
// fewer kernels than CausalLM's general block. A decode step is mostly kernel count, so here a LoRA branch's
// up-projection is added by the kernel that reads the projection's output (engine/ops/decode.ts), its down-projection
// t = x Aᵀ is made by the kernel next to it where it can be (decode steps, `fold`: q/k/v's, o's and gate/up's by the
// norm kernel; down's by gluLora, in partial sums over column blocks that the next norm adds up, since its input is
// 5–10 K wide), and the o and down projections add into the residual stream in their GEMMs.
// Per layer: norm (adding the previous layer's down term; making q/k/v's t), the q/k/v GEMM (one where their weights
// are adjacent rows, or Phi-3's qkv_proj), qkvRopeCache (LoRA terms, QK-norm, rotary, cache write) and attention (one
// kernel in a decode step: qkvRopeAttention), o GEMM, norm (making and adding o's term; making gate/up's t), gate/up
// GEMM, gluLora (making down's t), down GEMM: 8 kernels per layer of a decode step for the Qwen2.5 shapes (12 with fold
// off, 20 in the general block; bench/host-overhead.ts counts them). Gemma's
// sandwich norms add one norm kernel after o and one after down. fusedPlan() says when it runs (LoRA ranks within the
// kernels' limits); test/fused-layers.test.ts checks it against the general block.
import { addRmsNorm, gluLora, qkvRopeCache, qkvRopeAttention, linearGroup, linearConcat, loraLinear, type Cols, attention, attention16, empty, scope, reshape, rowsView,
  Tensor, type LoraUp, type LoraFromSource, type LinearPart, type AttentionOpts, type DType } from "../engine/index.ts";
import type { ModelConfig } from "./config.ts";
import type { LoraAdapter, LoraPair } from "./lora.ts";
import type { KVCache } from "./kvcache.ts";
import type { Layer } from "./model.ts";

/** The kernels stage a row's t in shared memory: ranks up to 1024, gate + up ranks up to 768 (decode.cu). */
const MAX_RANK = 1024, MAX_GLU_RANKS = 768;
/** gluLora makes down's t where its shared memory holds it too: 16 rows' gate/up t's, and 16 outputs and down's R rows
 *  of A, 129 floats each, within 48 KiB (decode.cu's glu_lora) */
const gluTakesDown = (gluRanks: number, R: number) => 16 * gluRanks + 129 * (16 + R) <= 12 * 1024;
/** The norm kernel makes down-projections for forwards of at most this many rows (decode steps). It reads each A once
 *  per row, so a prefill of thousands of rows makes them by GEMM, which reads A once. */
const FOLD_MAX_ROWS = 128;

const Q = "self_attn.q_proj", K = "self_attn.k_proj", V = "self_attn.v_proj", QKV = "self_attn.qkv_proj", O = "self_attn.o_proj";
const G = "mlp.gate_proj", U = "mlp.up_proj", GU = "mlp.gate_up_proj", DOWN = "mlp.down_proj";

interface Part extends LinearPart { name: string; lora: LoraPair | null }

/** One layer's projections as fusedLayers reads them (fixed for a model's weights and an adapter: FusedPlan). */
interface LayerPlan {
  /** q, k, v (or Phi-3's qkv_proj alone), o, gate and up (or gate_up_proj alone), down */
  qkv: Part[];
  o: Part[];
  gu: Part[];
  down: Part[];
  /** gluLora can make down's t (with fold) */
  downInGlu: boolean;
}
/** What fusedLayers runs for a model and an adapter, from fusedPlan. */
export interface FusedPlan { layers: LayerPlan[] }

const NO_ADAPTER = {};
const plans = new WeakMap<object, WeakMap<Layer[], FusedPlan | null>>();

/**
 * The plan of these layers with this adapter (null: none or switched off), or null when fusedLayers cannot run them
 * (a LoRA rank beyond the kernels' limits). Worked out once per layers and adapter, and again only if a weight or a
 * LoRA pair was replaced (full fine-tuning moves the weights).
 */
export function fusedPlan(cfg: ModelConfig, layers: Layer[], adapter: LoraAdapter | null): FusedPlan | null {
  let byLayers = plans.get(adapter ?? NO_ADAPTER);
  if (!byLayers) plans.set(adapter ?? NO_ADAPTER, (byLayers = new WeakMap()));
  const cached = byLayers.get(layers);
  if (cached !== undefined && (!cached || stillValid(cached, layers, adapter))) return cached;
  const plan = makePlan(cfg, layers, adapter);
  byLayers.set(layers, plan);
  return plan;
}
function makePlan(cfg: ModelConfig, layers: Layer[], adapter: LoraAdapter | null): FusedPlan | null {
  const out: LayerPlan[] = [];
  for (let l = 0; l < layers.length; l++) {
    const L = layers[l], p = `model.layers.${l}`;
    const part = (m: string): Part => { const name = `${p}.${m}`, { W, b } = L.linears.get(name)!; return { name, W, bias: b ?? null, lora: adapter?.get(name) ?? null }; };
    const parts = { qkv: cfg.fused ? [part(QKV)] : [part(Q), part(K), part(V)], o: [part(O)], gu: cfg.fused ? [part(GU)] : [part(G), part(U)], down: [part(DOWN)] };
    const r = (ps: Part[]) => ps.map((x) => x.lora?.A.shape[0] ?? 0);
    const all = [...parts.qkv, ...parts.o, ...parts.gu, ...parts.down];
    const glu = cfg.fused ? 2 * r(parts.gu)[0] : r(parts.gu)[0] + r(parts.gu)[1];
    if (r(all).some((x) => x > MAX_RANK) || glu > MAX_GLU_RANKS) return null;
    out.push({ ...parts, downInGlu: !!parts.down[0].lora && gluTakesDown(glu, r(parts.down)[0]) });
  }
  return { layers: out };
}
function stillValid(plan: FusedPlan, layers: Layer[], adapter: LoraAdapter | null): boolean {
  // (plain loops: this runs at every forward)
  for (let l = 0; l < plan.layers.length; l++) {
    const lp = plan.layers[l];
    for (const ps of [lp.qkv, lp.o, lp.gu, lp.down])
      for (const p of ps) {
        const cur = layers[l].linears.get(p.name);
        if (cur?.W !== p.W || (cur.b ?? null) !== p.bias || (adapter?.get(p.name) ?? null) !== p.lora) return false;
      }
  }
  return true;
}

/**
 * The down-projections t = x Aᵀ of the parts that have a LoRA pair, side by side in one [M, Σr] (one GEMM where their
 * A's are adjacent rows of one buffer, as the adapter stores q/k/v's and gate/up's), and each part's term (or null).
 */
function loraDown(x: Tensor, parts: Part[]): (LoraUp | null)[] {
  const inF = x.shape[x.shape.length - 1], M = x.numel / inF, be = x.backend;
  const g = downGroupOf(parts);
  if (!g) return parts.map(() => null);
  const fast = parts[0].W.dtype !== "f32"; // (TF32 on CUDA, as loraLinear's LoRA GEMMs of a 16-bit model)
  const t = empty([M, g.R], "f32", be); // [M, Σr]
  if (g.Ag) be.k.gemm(t.buf, x.buf, g.Ag.buf, 0, 1, M, g.R, inF, false, true, inF, inF, g.R, 0, 0, 0, 1, 0, fast);
  else parts.forEach((p, i) => {
    const col = g.cols[i];
    if (p.lora) be.k.gemm(be.view(t.buf, "f32", col, t.numel - col), x.buf, p.lora.A.buf, 0, 1, M, p.lora.A.shape[0], inF, false, true, inF, inF, g.R, 0, 0, 0, 1, 0, fast);
  });
  return termsOf(t, parts);
}
/** The parts' LoRA terms from t [M, Σr] (their down-projections side by side, as loraDown makes them). */
function termsOf(t: Tensor, parts: Part[]): (LoraUp | null)[] {
  const g = downGroupOf(parts)!;
  return parts.map((p, i) => (p.lora ? { t, col: g.cols[i], B: p.lora.B, scale: p.lora.scale } : null));
}
/** loraDown's layout for a parts array: Σr, each part's first column in t, and A_g [Σr, in] where the A's are adjacent rows of one buffer. */
const downGroups = new WeakMap<Part[], { R: number; cols: number[]; Ag: Tensor | null } | null>();
function downGroupOf(parts: Part[]): { R: number; cols: number[]; Ag: Tensor | null } | null {
  if (downGroups.has(parts)) return downGroups.get(parts)!;
  const As = parts.flatMap((p) => (p.lora ? [p.lora.A] : []));
  let g: { R: number; cols: number[]; Ag: Tensor | null } | null = null;
  if (As.length) {
    const R = As.reduce((s, A) => s + A.shape[0], 0), f = As[0].flat, inF = As[0].shape[1], be = As[0].backend;
    let end = f?.offset ?? 0, col = 0;
    const adjacent = !!f && As.every((A) => { const ok = A.flat?.params === f.params && A.flat.offset === end; end += A.numel; return ok; });
    const cols = parts.map((p) => { const c = col; col += p.lora?.A.shape[0] ?? 0; return c; });
    g = { R, cols, Ag: adjacent ? new Tensor([R, inF], "f32", be.view(f.params.data.buf, "f32", f.offset, R * inF), be, false).keep() : null }; // (a view: kept out of the scope that made it)
  }
  downGroups.set(parts, g);
  return g;
}
/** A's [Σr, in] of the parts when every part has a LoRA pair and their A's are adjacent rows (addRmsNorm can then make t), else null. */
function adjacentAs(parts: Part[]): Tensor | null {
  return parts.every((p) => p.lora) ? (downGroupOf(parts)?.Ag ?? null) : null;
}

export interface FusedStep {
  cfg: ModelConfig;
  /** the 16-bit type the projections' GEMMs take (bf16 copies made by the kernels), or null */
  low: DType | null;
  B: number;
  T: number;
  /** key positions attention covers */
  S: number;
  cache: KVCache;
  /** [B·T] i32: the cache rows of this step's keys and values */
  rows: Tensor;
  /** the LoRA down-projections of q/k/v, o and gate/up made by the norm kernels (addRmsNorm) and down's by gluLora
   *  instead of GEMMs, for forwards of at most FOLD_MAX_ROWS rows */
  fold: boolean;
  rope(l: number): { cos: Tensor; sin: Tensor };
  keys(l: number): { mask: Tensor | null; window: number };
  lowPrecision: false | "bf16" | "f16";
}

/** The rows [r0, r0 + n) of a LoRA term's output (its B's rows): one section of a fused projection. */
function section(lo: LoraUp | null, r0: number, n: number): LoraUp | null {
  return lo && { ...lo, B: rowsView(lo.B, r0, n) };
}

/**
 * Every layer on the residual stream x [B·T, C] (updated in place), then the final norm: the hidden states. What a
 * layer leaves for the next one's norm to add into x: its down-projection's LoRA term, or (Gemma) its normed output.
 */
export function fusedLayers(x: Tensor, layers: Layer[], plan: FusedPlan, finalNorm: Tensor, s: FusedStep): Tensor {
  const { cfg, low, B, T, S, cache } = s;
  const { headDim: D, heads: Hq, kvHeads: Hkv, intermediate: I } = cfg, N = B * T, eps = cfg.eps, off = cfg.normOffset;
  const fold = s.fold && N <= FOLD_MAX_ROWS;
  let pending: { add: Tensor | null; lora: LoraUp | null } = { add: null, lora: null };
  // (the inputs make their rope tables and key masks on first use: outside the layers' scopes, which free what they made)
  const ropes = layers.map((_, l) => s.rope(l)), keyss = layers.map((_, l) => s.keys(l));
  for (let l = 0; l < layers.length; l++) {
    const L = layers[l], lp = plan.layers[l];
    const prev = pending;
    pending = scope(() => {
      // the norm, and q/k/v's down-projections with it where their A's are adjacent (fold), else by GEMM
      const qkvAs = fold ? adjacentAs(lp.qkv) : null;
      const [h, h16, tqkv] = addRmsNorm(x, prev.add, prev.lora, L.ln1, eps, off, low, qkvAs);
      prev.add?.dispose();
      prev.lora?.t.dispose();
      const qkvTerms = tqkv ? termsOf(tqkv, lp.qkv) : loraDown(h, lp.qkv);
      // q, k, v: column blocks of one GEMM's output (Phi-3's qkv_proj, or q/k/v weights that are adjacent rows), else
      // one output per run of one shape; their LoRA terms (a fused projection's: one t, its B's rows by section)
      let q: Cols, k: Cols, v: Cols, lq: LoraUp | null, lk: LoraUp | null, lv: LoraUp | null;
      if (cfg.fused) {
        const [qkv] = lp.qkv, Y = loraLinear(h, qkv.W, qkv.bias, null, undefined, h16), [lo] = qkvTerms;
        [q, k, v] = [0, Hq * D, (Hq + Hkv) * D].map((col) => ({ t: Y, col }));
        [lq, lk, lv] = [section(lo, 0, Hq * D), section(lo, Hq * D, Hkv * D), section(lo, (Hq + Hkv) * D, Hkv * D)];
      } else {
        const Y = linearConcat(h, lp.qkv, h16);
        [q, k, v] = Y ? [0, Hq * D, (Hq + Hkv) * D].map((col) => ({ t: Y, col })) : linearGroup(h, lp.qkv, h16).map((t) => ({ t, col: 0 }));
        [lq, lk, lv] = qkvTerms;
      }
      const { cos, sin } = ropes[l], keys = keyss[l];
      const qkvOpts = { Hq, Hkv, D, qNorm: L.qNorm ?? null, kNorm: L.kNorm ?? null, eps, offset: off, cos, sin, rot: cfg.rotaryDim,
        kCache: cache.k[l], vCache: cache.v[l], rows: s.rows };
      let a: Tensor, a16: Tensor | null;
      if (T === 1) // a decode step: q/k/v's kernel and attention in one
        [a, a16] = qkvRopeAttention(q, k, v, [lq, lk, lv], qkvOpts, { S, kvStrideB: cache.strideB, keyMask: keys.mask, scale: cfg.attnScale,
          window: keys.window, softcap: cfg.attnSoftcap }, low);
      else {
        const qr = qkvRopeCache(q, k, v, [lq, lk, lv], qkvOpts);
        const opts: AttentionOpts = { B, T, Hq, Hkv, D, scale: cfg.attnScale, window: keys.window, softcap: cfg.attnSoftcap, keyMask: keys.mask,
          lowPrecision: s.lowPrecision, S, kvStrideB: cache.strideB };
        [a, a16] = low ? attention16(qr, cache.k[l], cache.v[l], opts, low) : [attention(qr, cache.k[l], cache.v[l], opts), null];
      }
      // o's LoRA term: its down-projection made by the next norm kernel (fold), else by GEMM; gate/up's made there too
      const a2 = reshape(a, [N, Hq * D]), [o] = lp.o;
      const lo: LoraUp | LoraFromSource | null = !o.lora ? null : fold ? { src: a2, A: o.lora.A, B: o.lora.B, scale: o.lora.scale } : loraDown(a2, lp.o)[0];
      const guAs = fold ? adjacentAs(lp.gu) : null;
      let h2: Tensor, h216: Tensor | null, tgu: Tensor | null;
      if (L.postAttn) { // Gemma: x += norm(a Woᵀ + term), then the pre-feedforward norm
        const y = loraLinear(a2, o.W, o.bias, null, undefined, a16);
        const [yn] = addRmsNorm(y, null, lo, L.postAttn, eps, off, null);
        [h2, h216, tgu] = addRmsNorm(x, yn, null, L.ln2, eps, off, low, guAs);
      } else {
        loraLinear(a2, o.W, o.bias, null, x, a16); // x += a Woᵀ + b
        [h2, h216, tgu] = addRmsNorm(x, null, lo, L.ln2, eps, off, low, guAs);
      }
      const guTerms = tgu ? termsOf(tgu, lp.gu) : loraDown(h2, lp.gu);
      // gate and up: column blocks of Phi-3's gate_up_proj output, else the outputs of one batched GEMM
      let g: Cols, u: Cols, lg: LoraUp | null, lu: LoraUp | null;
      if (cfg.fused) {
        const [gu] = lp.gu, Y = loraLinear(h2, gu.W, gu.bias, null, undefined, h216), [lgu] = guTerms;
        [g, u, lg, lu] = [{ t: Y, col: 0 }, { t: Y, col: I }, section(lgu, 0, I), section(lgu, I, I)];
      } else {
        const [yg, yu] = linearGroup(h2, lp.gu, h216);
        [g, u] = [{ t: yg, col: 0 }, { t: yu, col: 0 }];
        [lg, lu] = guTerms;
      }
      // down's LoRA down-projection: made by gluLora in partial sums that the next norm adds up (fold), else by GEMM
      const [down] = lp.down, foldDown = fold && lp.downInGlu;
      const [act, act16, tdown] = gluLora(g, u, I, lg, lu, cfg.act, low, foldDown ? down.lora!.A : null);
      const ld: LoraUp | null = tdown ? { t: tdown, col: 0, B: down.lora!.B, scale: down.lora!.scale, parts: tdown.shape[1] / down.lora!.A.shape[0] }
        : loraDown(act, lp.down)[0];
      if (L.postFf) { // Gemma: the next norm adds norm(act Wdᵀ + term)
        const y = loraLinear(act, down.W, down.bias, null, undefined, act16);
        return { add: addRmsNorm(y, null, ld, L.postFf, eps, off, null)[0], lora: null };
      }
      loraLinear(act, down.W, down.bias, null, x, act16); // x += act Wdᵀ + b
      return { add: null, lora: ld };
    });
  }
  const out = addRmsNorm(x, pending.add, pending.lora, finalNorm, eps, off, null)[0];
  pending.add?.dispose();
  pending.lora?.t.dispose();
  return out;
}
