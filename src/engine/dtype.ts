// Element types of tensors. Activations are f32; weights may be stored as bf16/f16 and converted in kernels.
export type DType = "f32" | "bf16" | "f16" | "i32";

/** Codes shared with the native kernels (native/cpu/kernels.h `DType`). */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, bf16: 1, f16: 2, i32: 3 };

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, i32: 4 };

export type HostArray = Float32Array | Uint16Array | Int32Array;

export function hostArray(dtype: DType, n: number): HostArray {
  return dtype === "f32" ? new Float32Array(n) : dtype === "i32" ? new Int32Array(n) : new Uint16Array(n);
}
