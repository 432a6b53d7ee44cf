// Fused linear + LoRA: y = x Wᵀ + b + s · (drop(x) Aᵀ) Bᵀ in one output buffer (the LoRA term written first, the base
// product added to it by its GEMM), with a hand-written backward, so a projection keeps only y [N, out] and
// t = drop(x) Aᵀ [N, r] alive instead of four [N, out] intermediates.
//   backward (u = dy B [N, r]):  dx = s · (u A) ⊙ mask + dy W,   dA = s · uᵀ drop(x),   dB = s · dyᵀ t
//   (dW = dyᵀ x and db = Σ dy when the base weights are trained).
// W may be bf16/f16 (converted in the GEMM) or 4-bit (ops/weight-gemm.ts); everything else is f32. With 16-bit (or
// 4-bit) W the LoRA GEMMs are marked `fast` (CUDA runs them on TF32 tensor cores, 10-bit mantissa, like the bf16 base
// GEMM they add to; the CPU ignores it).
import { Tensor } from "../tensor.ts";
import { gradSink, isGradEnabled, record } from "../autograd.ts";
import { gemmTakes16 } from "../backend.ts";
import { assertF32, dtypeCode, like, likeZero, sameBackend } from "./util.ts";
import { weightProduct, weightProductT } from "./weight-gemm.ts";
import { gemmDtypeOf } from "../quant4.ts";

export interface LoraBranch {
  /** [r, in] */
  A: Tensor;
  /** [out, r] */
  B: Tensor;
  scale: number;
  /** [N, in] dropout multipliers (0 or 1/(1-p)) for the LoRA input, or null */
  mask?: Tensor | null;
}

/**
 * x [N, in] → [N, out]. `into` [N, out]: add the result to it instead (no autograd: a residual stream) and return it.
 * x16: x already rounded to W's 16-bit type (rmsNorm16, attention16, glu16): the base GEMM takes it where it would
 * round x anyway.
 */
export function loraLinear(x: Tensor, W: Tensor, bias: Tensor | null, lora: LoraBranch | null, into?: Tensor, x16?: Tensor | null): Tensor {
  assertF32("loraLinear", x);
  sameBackend("loraLinear", x, W);
  const inF = x.shape[x.shape.length - 1], N = x.numel / inF, outF = W.shape[0];
  if (W.shape[1] !== inF) throw new Error(`linear: input has ${inF} features, ${W.describe()} expects ${W.shape[1]}`);
  const k = x.backend.k, cdt = gemmDtypeOf(W);
  // the LoRA GEMMs of a model with 16-bit (or 4-bit) weights may use faster, less exact arithmetic (CUDA: TF32 tensor cores)
  const fast = cdt !== "f32";
  if (into) {
    if (isGradEnabled()) throw new Error("loraLinear: adding into a tensor is only for code without autograd (noGrad)");
    assertF32("loraLinear", into);
    if (into.numel !== N * outF) throw new Error(`loraLinear: cannot add [${N}, ${outF}] into ${into.describe()}`);
  }
  const y = into ?? like(x, [...x.shape.slice(0, -1), outF]);
  const low = x16?.dtype === cdt && gemmTakes16(x.backend, cdt);
  let xd: Tensor | null = null, t: Tensor | null = null, r = 0;
  if (lora) {
    r = lora.A.shape[0];
    if (lora.A.shape[1] !== inF || lora.B.shape[0] !== outF || lora.B.shape[1] !== r)
      throw new Error(`loraLinear: A [${lora.A.shape}] / B [${lora.B.shape}] do not fit [${inF} → ${outF}]`);
    xd = x;
    if (lora.mask) { xd = like(x); k.binary(xd.buf, x.buf, lora.mask.buf, x.numel, x.numel, 2); }
    t = like(x, [N, r]);
    k.gemm(t.buf, xd.buf, lora.A.buf, 0, 1, N, r, inF, false, true, inF, inF, r, 0, 0, 0, 1, 0, fast);
    // the LoRA product first (written, unless adding into a residual stream), then the base product added to it: the
    // output's extra read and write go to the base GEMM's epilogue, not to a rank-r GEMM that only streams them
    k.gemm(y.buf, t.buf, lora.B.buf, 0, 1, N, outF, r, false, true, r, r, outF, 0, 0, 0, lora.scale, into ? 1 : 0, fast);
  }
  weightProduct(W, y.buf, low ? x16!.buf : x.buf, low ? dtypeCode(cdt) : 0, N, 1, into || lora ? 1 : 0, bias?.buf ?? null);
  const inputs = [x, W, ...(bias ? [bias] : []), ...(lora ? [lora.A, lora.B] : [])];
  return record(y, "lora_linear", inputs, (dy) => {
    const grads: (Tensor | null)[] = inputs.map(() => null);
    let u: Tensor | null = null;
    if (lora && (x.requiresGrad || lora.A.requiresGrad)) {
      u = like(x, [N, r]); // dy B
      k.gemm(u.buf, dy.buf, lora.B.buf, 0, 1, N, r, outF, false, false, outF, r, r, 0, 0, 0, 1, 0, fast);
    }
    if (x.requiresGrad) {
      const dx = like(x);
      // (as forward: the rank-r term written first, s · (u A) ⊙ mask, then dy W added to it by the base GEMM)
      if (lora && u) {
        k.gemm(dx.buf, u.buf, lora.A.buf, 0, 1, N, inF, r, false, false, r, inF, inF, 0, 0, 0, lora.scale, 0, fast);
        if (lora.mask) k.binary(dx.buf, dx.buf, lora.mask.buf, x.numel, x.numel, 2);
      }
      weightProductT(W, dx.buf, dy.buf, N, lora && u ? 1 : 0);
      grads[0] = dx;
    }
    if (W.requiresGrad) {
      if (W.dtype !== "f32") throw new Error(`linear backward: ${W.describe()} needs a gradient but is ${W.dtype}`);
      const sink = gradSink(W), dW = sink ? null : like(W);
      k.gemm(sink?.buf ?? dW!.buf, dy.buf, x.buf, 0, 1, outF, inF, N, true, false, outF, inF, inF, 0, 0, 0, 1, sink?.beta ?? 0);
      grads[1] = dW;
    }
    let i = 2;
    if (bias) {
      if (bias.requiresGrad) {
        const sink = gradSink(bias), db = sink ? null : likeZero(bias);
        k.sum_rows(sink?.buf ?? db!.buf, dy.buf, N, outF, sink?.beta === 1);
        grads[i] = db;
      }
      i++;
    }
    if (lora) {
      // A and B in flat storage take their gradient in place (beta 1 adds to what earlier micro-batches left)
      if (lora.A.requiresGrad && u) {
        const sink = gradSink(lora.A), dA = sink ? null : like(lora.A);
        k.gemm(sink?.buf ?? dA!.buf, u.buf, xd!.buf, 0, 1, r, inF, N, true, false, r, inF, inF, 0, 0, 0, lora.scale, sink?.beta ?? 0, fast);
        grads[i] = dA;
      }
      if (lora.B.requiresGrad) {
        const sink = gradSink(lora.B), dB = sink ? null : like(lora.B);
        k.gemm(sink?.buf ?? dB!.buf, dy.buf, t!.buf, 0, 1, outF, r, N, true, false, outF, r, r, 0, 0, 0, lora.scale, sink?.beta ?? 0, fast);
        grads[i + 1] = dB;
      }
    }
    u?.dispose();
    return grads;
  });
}
