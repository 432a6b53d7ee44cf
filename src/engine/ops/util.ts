// Helpers shared by the op files: output allocation on the inputs' backend, and argument checks.
import { Tensor, empty, zeros } from "../tensor.ts";
import type { DType } from "../dtype.ts";

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

export const dtypeCode = (d: DType): number => ({ f32: 0, bf16: 1, f16: 2, i32: 3 })[d];
