// Linear + LoRA for projections that read the same input (q/k/v, gate/up): y_i = x W_iᵀ + b_i + s_i · (x A_iᵀ) B_iᵀ,
// as loraLinear computes each, with the work they share done once. Needs the A's adjacent rows of one flat buffer
// (a LoRA adapter's storage, A's in module order), so that A_g = [A_1; A_2; …] [Σr, in] is one matrix:
//   forward:  tᵀ = A_g xᵀ [Σr, N] (one GEMM for all parts), then the B products s_i t_i B_iᵀ (t_i = rows of tᵀ) and
//             the base products x W_iᵀ + b_i added to them: one strided-batched GEMM each for a run of parts of one
//             shape whose weights are packed side by side (k and v, gate and up: runsOf), else one GEMM per part
//   backward: uᵀ_i = s_i B_iᵀ dy_iᵀ (rows of uᵀ [Σr, N]),  dx = uᵀᵀ A_g (one GEMM) + Σ dy_i W_i,
//             dA_g = uᵀ x (one GEMM, into the adapter's gradient buffer),  dB_i = s_i dy_iᵀ t_i
// One autograd node for all outputs (recordMulti), so x gets one gradient instead of one per part plus the adds.
// No dropout (each part would need its own masked input): the model uses loraLinear per part then.
import { Tensor } from "../tensor.ts";
import { gradSink, isGradEnabled, recordMulti } from "../autograd.ts";
import { assertF32, dtypeCode, like, likeZero, sameBackend } from "./util.ts";
import { packedOf } from "../packed.ts";
import { gemmTakes16 } from "../backend.ts";
import { gemmDtypeOf } from "../quant4.ts";
import { weightProduct, weightProductT } from "./weight-gemm.ts";

export interface LinearPart {
  /** [out, in] */
  W: Tensor;
  bias: Tensor | null;
}

export interface LoraPart extends LinearPart {
  /** [r, in] */
  A: Tensor;
  /** [out, r] */
  B: Tensor;
  scale: number;
}

/** True when the parts' A's are adjacent rows of one flat buffer and read `inF` features (loraLinearGroup can run). */
export function groupable(parts: LoraPart[], inF: number): boolean {
  const f = parts[0]?.A.flat;
  if (!f || parts.length < 2) return false;
  let off = f.offset;
  for (const p of parts) {
    if (p.A.flat?.params !== f.params || p.A.flat.offset !== off || p.A.shape[1] !== inF || p.W.shape[1] !== inF) return false;
    off += p.A.numel;
  }
  return true;
}

/**
 * Consecutive parts with the same out-features (k and v; gate and up) share one output buffer, and one
 * strided-batched GEMM makes their base products where their weights are packed at one stride, and their biases
 * too if they have any (wStride, biasStride: engine/packed.ts), and one their LoRA products where their B's lie at
 * one stride in the adapter's storage with one rank and scale (bStride). 0: one GEMM per part.
 */
interface Run { first: number; count: number; wStride: number; biasStride: number; bStride: number }
const runCache = new WeakMap<LinearPart[], Run[]>();
function runsOf(parts: (LinearPart & Partial<LoraPart>)[]): Run[] {
  let runs = runCache.get(parts);
  if (runs) return runs;
  runs = [];
  for (let i = 0; i < parts.length;) {
    let n = 1;
    while (i + n < parts.length && parts[i + n].W.shape[0] === parts[i].W.shape[0]) n++;
    const ps = parts.slice(i, i + n);
    const uniform = (off: (p: (typeof ps)[number]) => number | undefined) => {
      const o = ps.map(off);
      if (n < 2 || o.some((v) => v === undefined)) return 0;
      const d = o[1]! - o[0]!;
      return d > 0 && o.every((v, j) => v === o[0]! + j * d) ? d : 0;
    };
    const store = packedOf(ps[0].W)?.storage, flat = ps[0].B?.flat?.params;
    const bstore = ps[0].bias && packedOf(ps[0].bias)?.storage;
    const biasStride = bstore && ps.every((p) => p.bias && packedOf(p.bias)?.storage === bstore) ? uniform((p) => packedOf(p.bias!)?.offset) : 0;
    const wStride = ps.every((p) => p.W.dtype === ps[0].W.dtype && packedOf(p.W)?.storage === store) && (biasStride || ps.every((p) => !p.bias))
      ? uniform((p) => packedOf(p.W)?.offset) : 0;
    const bStride = flat && ps.every((p) => p.B?.flat?.params === flat && p.B.shape[1] === ps[0].B!.shape[1] && p.scale === ps[0].scale)
      ? uniform((p) => p.B?.flat?.offset) : 0;
    runs.push({ first: i, count: n, wStride, biasStride, bStride });
    i += n;
  }
  runCache.set(parts, runs);
  return runs;
}

/**
 * What the parts' GEMMs read for x: where they round x to the weights' 16-bit type anyway (CUDA's default) x16 when
 * the caller has it, else x converted once (xw, for the caller to dispose); otherwise x. dtX: the kernels' A dtype.
 */
function gemmInput(x: Tensor, parts: LinearPart[], x16: Tensor | null): { xb: unknown; dtX: number; xw: Tensor | null } {
  const dtW = gemmDtypeOf(parts[0].W);
  const low = gemmTakes16(x.backend, dtW) && parts.every((p) => gemmDtypeOf(p.W) === dtW);
  if (!low) return { xb: x.buf, dtX: 0, xw: null };
  if (x16?.dtype === dtW) return { xb: x16.buf, dtX: dtypeCode(dtW), xw: null };
  const xw = like(x, x.shape, dtW);
  x.backend.k.convert(xw.buf, dtypeCode(dtW), x.buf, 0, x.numel);
  return { xb: xw.buf, dtX: dtypeCode(dtW), xw };
}

/**
 * Without autograd: the parts' outputs side by side in one [N, Σ out] made by one GEMM, where their weights are
 * adjacent rows of one packed buffer (q/k/v of the usual shapes: engine/packed.ts) and so are their biases, if they
 * have any; null otherwise. x16 as in loraLinearGroup.
 */
export function linearConcat(x: Tensor, parts: LinearPart[], x16: Tensor | null = null): Tensor | null {
  assertF32("linearConcat", x);
  const inF = x.shape[x.shape.length - 1], N = x.numel / inF, be = x.backend;
  const c = concatOf(parts, inF);
  if (!c) return null;
  if (isGradEnabled() && [x, ...parts.flatMap((p) => (p.bias ? [p.W, p.bias] : [p.W]))].some((t) => t.requiresGrad))
    throw new Error("linearConcat: only without autograd");
  const Y = like(x, [...x.shape.slice(0, -1), c.out]);
  const { xb, dtX, xw } = gemmInput(x, parts, x16);
  be.k.gemm(Y.buf, xb, c.W, dtypeCode(parts[0].W.dtype), 1, N, c.out, inF, false, true, inF, inF, c.out, 0, 0, 0, 1, 0, false, dtX, c.bias);
  xw?.dispose();
  return Y;
}
/** linearConcat's weights [Σ out, in] and biases [Σ out] as views of the packed buffers, or null: worked out once per parts array. */
const concatCache = new WeakMap<LinearPart[], { W: unknown; bias: unknown; out: number } | null>();
function concatOf(parts: LinearPart[], inF: number): { W: unknown; bias: unknown; out: number } | null {
  if (concatCache.has(parts)) return concatCache.get(parts)!;
  const pk = parts.map((p) => packedOf(p.W)), pb = parts.map((p) => (p.bias ? packedOf(p.bias) : undefined));
  const adjacent = (ps: (ReturnType<typeof packedOf>)[], n: (i: number) => number) =>
    ps.every((p, i) => p && p.storage === ps[0]!.storage && (i === 0 || p.offset === ps[i - 1]!.offset + n(i - 1)));
  const withBias = parts.every((p) => p.bias), out = parts.reduce((s, p) => s + p.W.shape[0], 0), dtW = parts[0].W.dtype, be = parts[0].W.backend;
  const ok = adjacent(pk, (i) => parts[i].W.numel) && parts.every((p) => p.W.shape[1] === inF && p.W.dtype === dtW)
    && (withBias ? adjacent(pb, (i) => parts[i].bias!.numel) : parts.every((p) => !p.bias));
  const c = ok ? { W: be.view(pk[0]!.storage.buf, dtW, pk[0]!.offset, out * inF), bias: withBias ? be.view(pb[0]!.storage.buf, "f32", pb[0]!.offset, out) : null, out } : null;
  concatCache.set(parts, c);
  return c;
}

/** The parts' outputs, by runs: one buffer Ys[r] per run, the parts' outputs ys its views where a run has several. */
function outputsOf(x: Tensor, parts: LinearPart[], runs: Run[]): { ys: Tensor[]; Ys: Tensor[] } {
  const inF = x.shape[x.shape.length - 1], N = x.numel / inF, be = x.backend;
  const ys: Tensor[] = [], Ys: Tensor[] = [];
  const lead = x.shape.slice(0, -1);
  for (const p of parts) sameBackend("linear group", x, p.W);
  for (const run of runs) {
    const n = run.count, outF = parts[run.first].W.shape[0];
    const Y = like(x, n === 1 ? [...lead, outF] : [n, N, outF]);
    Ys.push(Y);
    if (n === 1) ys.push(Y);
    else for (let j = 0; j < n; j++) ys.push(new Tensor([...lead, outF], "f32", be.view(Y.buf, "f32", j * N * outF, N * outF), be, false));
  }
  return { ys, Ys };
}

/**
 * The base products y_i = x W_iᵀ + b_i of the parts into outputsOf's buffers (beta 0: written; 1: added to what they
 * hold, the LoRA products). Where the GEMMs round x to the weights' 16-bit type anyway (CUDA's default) they take x16
 * when the caller has it, else x converted once for all parts instead of once per GEMM.
 */
function baseProducts(x: Tensor, parts: LinearPart[], x16: Tensor | null, runs: Run[], ys: Tensor[], Ys: Tensor[], beta: 0 | 1): void {
  const inF = x.shape[x.shape.length - 1], N = x.numel / inF, be = x.backend, k = be.k;
  const dtW = parts[0].W.dtype;
  const { xb, dtX, xw } = gemmInput(x, parts, x16);
  for (let r = 0; r < runs.length; r++) {
    const run = runs[r], i0 = run.first, n = run.count, p0 = parts[i0], outF = p0.W.shape[0];
    if (run.wStride) { // one batched GEMM over views that span the n weights (and biases)
      const pk = packedOf(p0.W)!, Ws = be.view(pk.storage.buf, dtW, pk.offset, (n - 1) * run.wStride + p0.W.numel);
      const pb = p0.bias && packedOf(p0.bias), bs = pb ? be.view(pb.storage.buf, "f32", pb.offset, (n - 1) * run.biasStride + outF) : null;
      k.gemm(Ys[r].buf, xb, Ws, dtypeCode(dtW), n, N, outF, inF, false, true, inF, inF, outF, 0, run.wStride, N * outF, 1, beta, false, dtX, bs, run.biasStride);
    } else for (let j = 0; j < n; j++) {
      const p = parts[i0 + j];
      weightProduct(p.W, ys[i0 + j].buf, xb, dtX, N, 1, beta, p.bias?.buf ?? null);
    }
  }
  xw?.dispose();
}

/**
 * Projections of one input without LoRA and without autograd (generation, reference log-probs): y_i = x W_iᵀ + b_i,
 * parts of one shape with packed weights as one batched GEMM. x16 as in loraLinearGroup.
 */
export function linearGroup(x: Tensor, parts: LinearPart[], x16: Tensor | null = null): Tensor[] {
  assertF32("linearGroup", x);
  if (isGradEnabled() && [x, ...parts.flatMap((p) => (p.bias ? [p.W, p.bias] : [p.W]))].some((t) => t.requiresGrad))
    throw new Error("linearGroup: only without autograd (use loraLinear per part)");
  const inF = x.shape[x.shape.length - 1];
  for (const p of parts) if (p.W.shape[1] !== inF) throw new Error(`linearGroup: input has ${inF} features, ${p.W.describe()} expects ${p.W.shape[1]}`);
  const runs = runsOf(parts), { ys, Ys } = outputsOf(x, parts, runs);
  baseProducts(x, parts, x16, runs, ys, Ys, 0);
  return ys;
}

/** x [N, in] → one [N, out_i] per part. x16: x already rounded to the weights' 16-bit type (rmsNorm16), or null. */
export function loraLinearGroup(x: Tensor, parts: LoraPart[], x16: Tensor | null = null): Tensor[] {
  assertF32("loraLinearGroup", x);
  const inF = x.shape[x.shape.length - 1], N = x.numel / inF;
  if (!groupable(parts, inF)) throw new Error("loraLinearGroup: the parts' A's are not adjacent rows of one flat buffer");
  const be = x.backend, k = be.k;
  const rs: number[] = [], row0: number[] = []; // rank and first row of each part in tᵀ / uᵀ / A_g
  let R = 0;
  for (const p of parts) { row0.push(R); rs.push(p.A.shape[0]); R += p.A.shape[0]; }
  const f = parts[0].A.flat!;
  const Ag = be.view(f.params.data.buf, "f32", f.offset, R * inF); // [Σr, in]
  const fast: boolean[] = [];
  for (const p of parts) fast.push(gemmDtypeOf(p.W) !== "f32");
  const rows = (t: Tensor, i: number) => be.view(t.buf, "f32", row0[i] * N, rs[i] * N); // part i's rows of a [Σr, N]
  const tT = like(x, [R, N]);
  k.gemm(tT.buf, Ag, x.buf, 0, 1, R, N, inF, false, true, inF, inF, N, 0, 0, 0, 1, 0, fast[0]);
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i], outF = p.W.shape[0];
    if (p.B.shape[0] !== outF || p.B.shape[1] !== rs[i]) throw new Error(`loraLinearGroup: B [${p.B.shape}] does not fit [${inF} → ${outF}], r ${rs[i]}`);
  }
  const runs = runsOf(parts);
  const { ys, Ys } = outputsOf(x, parts, runs);
  // the LoRA products first, written (beta 0), then the base products added to them: the outputs' extra read and
  // write go to the base GEMMs' epilogues (tensor-core bound) instead of to rank-r GEMMs that only stream them (the
  // gate/up outputs of an MLP: as many bytes as the base GEMM's work takes time)
  // (plain loops: this runs per layer and decode step, and every closure made here costs host time)
  for (let r = 0; r < runs.length; r++) {
    const run = runs[r], i0 = run.first, n = run.count, p0 = parts[i0], outF = p0.W.shape[0], Y = Ys[r];
    // (a batched GEMM reads views spanning all n B's / rows of tᵀ)
    if (run.bStride) {
      const fb = p0.B.flat!, Bs = be.view(fb.params.data.buf, "f32", fb.offset, (n - 1) * run.bStride + p0.B.numel);
      const ts = be.view(tT.buf, "f32", row0[i0] * N, n * rs[i0] * N);
      k.gemm(Y.buf, ts, Bs, 0, n, N, outF, rs[i0], true, true, N, rs[i0], outF, rs[i0] * N, run.bStride, N * outF, p0.scale, 0, fast[i0]);
    }
    else for (let j = i0; j < i0 + n; j++)
      k.gemm(ys[j].buf, rows(tT, j), parts[j].B.buf, 0, 1, N, outF, rs[j], true, true, N, rs[j], outF, 0, 0, 0, parts[j].scale, 0, fast[j]);
  }
  baseProducts(x, parts, x16, runs, ys, Ys, 1);
  if (!isGradEnabled()) return ys; // (what recordMulti would decide, without building the inputs list)
  const inputs = [x];
  for (const p of parts) { inputs.push(p.W); if (p.bias) inputs.push(p.bias); inputs.push(p.A, p.B); }
  return recordMulti(ys, "lora_linear_group", inputs, (gs) => {
    const grads = new Map<Tensor, Tensor | null>();
    const needA = parts.some((p) => p.A.requiresGrad);
    let uT: Tensor | null = null;
    if (x.requiresGrad || needA) {
      uT = gs.every((g) => g) ? like(x, [R, N]) : likeZero(x, [R, N]); // rows of parts without a gradient stay zero
      parts.forEach((p, i) => {
        if (gs[i]) k.gemm(rows(uT!, i), p.B.buf, gs[i]!.buf, 0, 1, rs[i], N, p.W.shape[0], true, true, rs[i], p.W.shape[0], N, 0, 0, 0, p.scale, 0, fast[i]);
      });
    }
    if (x.requiresGrad) {
      // (as forward: the rank-Σr term written first, then the base GEMMs add dy_i W_i to it)
      const dx = like(x);
      k.gemm(dx.buf, uT!.buf, Ag, 0, 1, N, inF, R, true, false, N, inF, inF, 0, 0, 0, 1, 0, fast[0]);
      parts.forEach((p, i) => {
        if (gs[i]) weightProductT(p.W, dx.buf, gs[i]!.buf, N, 1);
      });
      grads.set(x, dx);
    }
    if (needA) {
      // the A's gradients are adjacent in the adapter's gradient buffer like the A's: one GEMM when they all start
      // or all accumulate there, else one per part
      const sinks = parts.map((p) => (p.A.requiresGrad ? gradSink(p.A) : null));
      if (sinks.every((s) => s && s.beta === sinks[0]!.beta))
        k.gemm(be.view(f.params.grad.buf, "f32", f.offset, R * inF), uT!.buf, x.buf, 0, 1, R, inF, N, false, false, N, inF, inF, 0, 0, 0, 1, sinks[0]!.beta, fast[0]);
      else parts.forEach((p, i) => {
        if (sinks[i]) k.gemm(sinks[i]!.buf, rows(uT!, i), x.buf, 0, 1, rs[i], inF, N, false, false, N, inF, inF, 0, 0, 0, 1, sinks[i]!.beta, fast[i]);
      });
    }
    parts.forEach((p, i) => {
      const g = gs[i], outF = p.W.shape[0];
      if (!g) return;
      if (p.W.requiresGrad) {
        if (p.W.dtype !== "f32") throw new Error(`linear backward: ${p.W.describe()} needs a gradient but is ${p.W.dtype}`);
        const sink = gradSink(p.W), dW = sink ? null : like(p.W);
        k.gemm(sink?.buf ?? dW!.buf, g.buf, x.buf, 0, 1, outF, inF, N, true, false, outF, inF, inF, 0, 0, 0, 1, sink?.beta ?? 0);
        grads.set(p.W, dW);
      }
      if (p.bias?.requiresGrad) {
        const sink = gradSink(p.bias), db = sink ? null : likeZero(p.bias);
        k.sum_rows(sink?.buf ?? db!.buf, g.buf, N, outF, sink?.beta === 1);
        grads.set(p.bias, db);
      }
      if (p.B.requiresGrad) {
        const sink = gradSink(p.B), dB = sink ? null : like(p.B);
        k.gemm(sink?.buf ?? dB!.buf, g.buf, rows(tT, i), 0, 1, outF, rs[i], N, true, true, outF, N, rs[i], 0, 0, 0, p.scale, sink?.beta ?? 0, fast[i]);
        grads.set(p.B, dB);
      }
    });
    uT?.dispose();
    return inputs.map((t) => grads.get(t) ?? null);
  });
}
