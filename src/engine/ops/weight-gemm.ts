// The two products of a projection's weight W [out, in] that the linear ops make: y = x Wᵀ (forward) and dx = dy W
// (backward to the input), by the generic GEMM for a dense W (f32, bf16, f16) or by q4_gemm for a 4-bit W, which
// reads the codes directly (engine/quant4.ts). The ops call these instead of `gemm` wherever W may be 4-bit.
import type { Tensor } from "../tensor.ts";
import type { Buf } from "../backend.ts";
import { DTYPE_CODE } from "../dtype.ts";
import { isQ4 } from "../quant4.ts";
import { dtypeCode } from "./util.ts";

/**
 * y [N, out] = alpha · x Wᵀ + beta · y (+ bias [out]). x: N rows of `in` f32, or (dtX a 16-bit code) the rows rounded to
 * the type the GEMM computes in (gemmDtypeOf(W): a 16-bit x16 copy).
 */
export function weightProduct(W: Tensor, y: Buf, x: Buf, dtX: number, N: number, alpha: number, beta: number, bias: Buf | null): void {
  const [outF, inF] = W.shape, k = W.backend.k;
  if (isQ4(W)) k.q4_gemm(y, x, dtX, ...W.kernelArgs(), N, outF, inF, true, alpha, beta, bias, DTYPE_CODE[W.computeDtype]);
  else k.gemm(y, x, W.buf, dtypeCode(W.dtype), 1, N, outF, inF, false, true, inF, inF, outF, 0, 0, 0, alpha, beta, false, dtX, bias);
}

/** dx [N, in] = dy [N, out] · W + beta · dx (dy f32). */
export function weightProductT(W: Tensor, dx: Buf, dy: Buf, N: number, beta: number): void {
  const [outF, inF] = W.shape, k = W.backend.k;
  if (isQ4(W)) k.q4_gemm(dx, dy, 0, ...W.kernelArgs(), N, outF, inF, false, 1, beta, null, DTYPE_CODE[W.computeDtype]);
  else k.gemm(dx, dy, W.buf, dtypeCode(W.dtype), 1, N, inF, outF, false, false, outF, inF, inF, 0, 0, 0, 1, beta);
}
