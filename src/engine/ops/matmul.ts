// Matrix products. matmul(a, b): a [..., M, K] (f32), b [K, N] or [..., K, N] (b may be a bf16/f16 weight);
// transA / transB read the stored operand transposed. (x Wᵀ for HF's [out, in] weights, with LoRA: lora-linear.ts.)
import { Tensor } from "../tensor.ts";
import { record } from "../autograd.ts";
import { assertF32, dtypeCode, like, sameBackend } from "./util.ts";

export interface MatmulOpts {
  transA?: boolean;
  transB?: boolean;
}

export function matmul(a: Tensor, b: Tensor, opts: MatmulOpts = {}): Tensor {
  assertF32("matmul", a);
  sameBackend("matmul", a, b);
  const tA = !!opts.transA, tB = !!opts.transB;
  const ar = a.shape.length, br = b.shape.length;
  if (ar < 2 || br < 2) throw new Error(`matmul: operands need 2+ dims ([${a.shape}], [${b.shape}])`);
  const [aR, aC] = a.shape.slice(-2), [bR, bC] = b.shape.slice(-2);
  const M = tA ? aC : aR, K = tA ? aR : aC;
  const Kb = tB ? bC : bR, N = tB ? bR : bC;
  if (K !== Kb) throw new Error(`matmul: inner sizes differ ([${a.shape}]${tA ? "ᵀ" : ""} x [${b.shape}]${tB ? "ᵀ" : ""})`);
  const batchA = a.numel / (aR * aC), batchB = b.numel / (bR * bC);
  if (batchB !== 1 && batchB !== batchA) throw new Error(`matmul: batch sizes differ ([${a.shape}] x [${b.shape}])`);
  const batch = batchA;
  const out = like(a, [...a.shape.slice(0, -2), M, N]);
  const k = a.backend.k;
  k.gemm(out.buf, a.buf, b.buf, dtypeCode(b.dtype), batch, M, N, K, tA, tB, aC, bC, N, aR * aC, batchB === 1 ? 0 : bR * bC, M * N, 1, 0);
  return record(out, "matmul", [a, b], (g) => {
    // C = op(A) op(B): dop(A) = G op(B)^T, dop(B) = op(A)^T G
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (a.requiresGrad) {
      ga = like(a);
      if (!tA) k.gemm(ga.buf, g.buf, b.buf, dtypeCode(b.dtype), batch, M, K, N, false, !tB, N, bC, K, M * N, batchB === 1 ? 0 : bR * bC, M * K, 1, 0);
      else k.gemm(ga.buf, b.buf, g.buf, 0, batch, K, M, N, tB, true, bC, N, M, batchB === 1 ? 0 : bR * bC, M * N, M * K, 1, 0);
    }
    if (b.requiresGrad) {
      if (b.dtype !== "f32") throw new Error(`matmul backward: ${b.describe()} needs a gradient but is ${b.dtype}`);
      gb = like(b);
      // per batch: dB (K x N, or N x K when transB) accumulated over batches when b is broadcast
      const acc = batchB === 1 && batch > 1;
      for (let i = 0; i < (acc ? batch : 1); i++) {
        const aOff = acc ? i * aR * aC : 0, gOff = acc ? i * M * N : 0;
        const nb = acc ? 1 : batch;
        const av = acc ? a.backend.view(a.buf, "f32", aOff, aR * aC) : a.buf;
        const gv = acc ? a.backend.view(g.buf, "f32", gOff, M * N) : g.buf;
        const beta = acc && i > 0 ? 1 : 0;
        if (!tB) k.gemm(gb.buf, av, gv, 0, nb, K, N, M, !tA, false, aC, N, N, aR * aC, M * N, K * N, 1, beta);
        else k.gemm(gb.buf, gv, av, 0, nb, N, K, M, true, tA, N, aC, K, M * N, aR * aC, N * K, 1, beta);
      }
    }
    return [ga, gb];
  });
}
