// Helpers shared by the op files: output allocation on the inputs' backend, and argument checks.
import { Tensor, empty, zeros } from "../tensor.ts";
import { DTYPE_CODE, type DType } from "../dtype.ts";

/** An uninitialised output on t's backend, for kernels that write every element. */
export function like(t: Tensor, shape: number[] = t.shape, dtype: DType = "f32"): Tensor {
  return empty(shape, dtype, t.backend);
}

/** A zero-filled output on t's backend, for kernels that accumulate (+=) into it. */
export function likeZero(t: Tensor, shape: number[] = t.shape, dtype: DType = "f32"): Tensor {
  return zeros(shape, dtype, t.backend);
}

export function assertF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    t.check();
    if (t.dtype !== "f32") throw new Error(`${op}: ${t.describe()} must be f32`);
  }
}

export function sameBackend(op: string, ...ts: Tensor[]): void {
  const b = ts[0].backend;
  for (const t of ts) if (t.backend !== b) throw new Error(`${op}: tensors on different devices (${ts.map((x) => x.device)})`);
}

/** The native kernels' dtype code of an f32/bf16/f16/i32 buffer (4-bit weights go through q4 kernels: ops/weight-gemm.ts). */
export function dtypeCode(d: DType): number {
  if (d === "q4" || d === "u8") throw new Error(`a ${d} buffer given to a kernel that reads f32/bf16/f16/i32 (4-bit weights multiply through q4_gemm)`);
  return DTYPE_CODE[d];
}
