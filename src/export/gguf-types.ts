// ggml tensor types and llama.cpp file types used by the GGUF exporter (FORMATS.md §2.3).
// Is: the ids, block sizes and byte sizes of the types we write, and the user-facing export type names.
// Is not: a registry of every ggml type (IQ*, TQ*, MXFP4 are neither written nor read here).
// Simplifies: only types with a reference quantiser in quant-legacy.ts / quant-k.ts are listed.

export const GGML = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q4_K: 12, Q5_K: 13, Q6_K: 14, BF16: 30,
} as const;
export type GgmlType = (typeof GGML)[keyof typeof GGML];

/** elements per block and bytes per block, per ggml type */
export const GGML_BLOCK: Record<GgmlType, { elems: number; bytes: number; name: string }> = {
  0: { elems: 1, bytes: 4, name: "F32" },
  1: { elems: 1, bytes: 2, name: "F16" },
  2: { elems: 32, bytes: 18, name: "Q4_0" },
  3: { elems: 32, bytes: 20, name: "Q4_1" },
  6: { elems: 32, bytes: 22, name: "Q5_0" },
  7: { elems: 32, bytes: 24, name: "Q5_1" },
  8: { elems: 32, bytes: 34, name: "Q8_0" },
  12: { elems: 256, bytes: 144, name: "Q4_K" },
  13: { elems: 256, bytes: 176, name: "Q5_K" },
  14: { elems: 256, bytes: 210, name: "Q6_K" },
  30: { elems: 1, bytes: 2, name: "BF16" },
};

/** Bytes of a tensor with ggml dims `ne` (ne[0] fastest) stored as `type`. */
export function ggmlNbytes(type: GgmlType, ne: number[]): number {
  const b = GGML_BLOCK[type];
  if (ne[0] % b.elems !== 0) throw new Error(`${b.name}: row length ${ne[0]} is not a multiple of the block size ${b.elems}`);
  return (ne[0] / b.elems) * b.bytes * ne.slice(1).reduce((a, c) => a * c, 1);
}

/** The export type names `exportModel({format:'gguf', type})` accepts. */
export type GgufExportType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "q4_k_m" | "q5_k_m" | "q6_k";
export const GGUF_EXPORT_TYPES: GgufExportType[] = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"];

/** general.file_type (LlamaFileType) for each export type. */
export const FILE_TYPE: Record<GgufExportType, number> = {
  f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k_m: 15, q5_k_m: 17, q6_k: 18, bf16: 32,
};
