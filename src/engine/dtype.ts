// Element types of tensors. Activations are f32; weights may be stored as bf16/f16 and converted in kernels, or as
// bitsandbytes 4-bit codes ("q4": two per byte, the even element in the high nibble; engine/quant4.ts), whose block
// scales may be 8-bit codes themselves ("u8", double quantisation).
export type DType = "f32" | "bf16" | "f16" | "i32" | "q4" | "u8";

/** Codes shared with the native kernels (native/cpu/kernels.h `DType`); q4 and u8 never reach the generic kernels. */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, bf16: 1, f16: 2, i32: 3, q4: 4, u8: 5 };

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, i32: 4, q4: 0.5, u8: 1 };

/** Bytes of numel elements (a q4 buffer of an odd count ends in a padding nibble). */
export function byteSize(dtype: DType, numel: number): number {
  return Math.ceil(numel * DTYPE_BYTES[dtype]);
}

export type HostArray = Float32Array | Uint16Array | Int32Array | Uint8Array;

export function hostArray(dtype: DType, n: number): HostArray {
  if (dtype === "q4" || dtype === "u8") return new Uint8Array(byteSize(dtype, n));
  return dtype === "f32" ? new Float32Array(n) : dtype === "i32" ? new Int32Array(n) : new Uint16Array(n);
}
