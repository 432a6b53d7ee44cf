// Which ggml type each GGUF tensor gets for an export type (FORMATS.md §4.1 dtypes, §6 the K-quant mixes), and the
// dispatch from a ggml type to its encoder.
// Is: llama-quantize's choice for f32/f16/bf16/q8_0/q4_0/q4_k_m/q5_k_m/q6_k without overrides or imatrix, as in the
// llama.cpp bundled with node-llama-cpp 3.22.1 (attn_qkv counts as "attn_v-like"; shape fallbacks Q4_K→Q5_0,
// Q5_K→Q5_1, Q6_K→Q8_0, then F16).
// Is not: the IQ/Q2/Q3 mixes, MoE/Falcon/70B special cases (no supported architecture here triggers them).
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../models/safetensors.js";
import { GGML, GGML_BLOCK, type GgmlType, type GgufExportType } from "./gguf-types.js";
import * as L from "./quant-legacy.js";
import * as K from "./quant-k.js";

export interface MixContext {
  /** number of transformer blocks */
  nLayer: number;
  /** true when the file has no output.weight (token_embd doubles as the lm head) */
  tiedOutput: boolean;
}

const DEFAULT: Record<GgufExportType, GgmlType> = {
  f32: GGML.F32, f16: GGML.F16, bf16: GGML.BF16, q8_0: GGML.Q8_0, q4_0: GGML.Q4_0,
  q4_k_m: GGML.Q4_K, q5_k_m: GGML.Q5_K, q6_k: GGML.Q6_K,
};

function useMoreBits(i: number, n: number): boolean {
  return i < Math.floor(n / 8) || i >= Math.floor((7 * n) / 8) || (i - Math.floor(n / 8)) % 3 === 2;
}

function fallback(t: GgmlType, ne0: number): GgmlType {
  if (ne0 % GGML_BLOCK[t].elems === 0) return t;
  const next: GgmlType = t === GGML.Q4_K ? GGML.Q5_0 : t === GGML.Q5_K ? GGML.Q5_1 : t === GGML.Q6_K ? GGML.Q8_0 : t;
  return ne0 % GGML_BLOCK[next].elems === 0 ? next : GGML.F16;
}

/** The ggml type for GGUF tensor `name` with ggml dims `ne` under export type `type`. */
export function chooseGgmlType(type: GgufExportType, name: string, ne: number[], ctx: MixContext): GgmlType {
  // 1-D tensors, norms, biases and generated tensors (rope_freqs) stay F32, as the converter writes them
  if (ne.length < 2 || !name.endsWith(".weight") || name.includes("_norm.") || name.startsWith("rope_")) return GGML.F32;
  const def = DEFAULT[type];
  if (def === GGML.F32 || def === GGML.F16 || def === GGML.BF16) return def;
  let t: GgmlType = def;
  const layer = /^blk\.(\d+)\./.exec(name);
  const i = layer ? Number(layer[1]) : -1;
  if (name === "output.weight" || (ctx.tiedOutput && name === "token_embd.weight")) {
    if (ne[0] % GGML_BLOCK[def].elems !== 0) t = GGML.Q8_0;
    else if (def !== GGML.Q8_0) t = GGML.Q6_K;
  } else if ((type === "q4_k_m" || type === "q5_k_m") && /attn_(v|qkv)\.weight$/.test(name)) {
    if (useMoreBits(i, ctx.nLayer)) t = GGML.Q6_K;
  } else if ((type === "q4_k_m" || type === "q5_k_m") && name.includes("ffn_down")) {
    if (useMoreBits(i, ctx.nLayer)) t = GGML.Q6_K;
  }
  return fallback(t, ne[0]);
}

/** Encode float32 values (row-major, rows of ne[0]) as ggml type `t`. */
export function encodeGgml(t: GgmlType, x: Float32Array): Uint8Array {
  switch (t) {
    case GGML.F32: return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    case GGML.F16: { const h = f32ToF16(x); return new Uint8Array(h.buffer); }
    case GGML.BF16: { const h = f32ToBf16(x); return new Uint8Array(h.buffer); }
    case GGML.Q8_0: return L.quantizeQ8_0(x);
    case GGML.Q4_0: return L.quantizeQ4_0(x);
    case GGML.Q5_0: return L.quantizeQ5_0(x);
    case GGML.Q5_1: return L.quantizeQ5_1(x);
    case GGML.Q4_K: return K.quantizeQ4_K(x);
    case GGML.Q5_K: return K.quantizeQ5_K(x);
    case GGML.Q6_K: return K.quantizeQ6_K(x);
    default: throw new Error(`no encoder for ggml type ${GGML_BLOCK[t]?.name ?? t}`);
  }
}

/** Decode `n` values of ggml type `t` back to float32 (tests and round-trip checks). */
export function decodeGgml(t: GgmlType, b: Uint8Array, n: number): Float32Array {
  const copy = b.slice();
  switch (t) {
    case GGML.F32: return new Float32Array(copy.buffer, 0, n);
    case GGML.F16: return f16ToF32(new Uint16Array(copy.buffer, 0, n));
    case GGML.BF16: return bf16ToF32(new Uint16Array(copy.buffer, 0, n));
    case GGML.Q8_0: return L.dequantizeQ8_0(b, n);
    case GGML.Q4_0: return L.dequantizeQ4_0(b, n);
    case GGML.Q5_0: return L.dequantizeQ5_0(b, n);
    case GGML.Q5_1: return L.dequantizeQ5_1(b, n);
    case GGML.Q4_K: return K.dequantizeQ4_K(b, n);
    case GGML.Q5_K: return K.dequantizeQ5_K(b, n);
    case GGML.Q6_K: return K.dequantizeQ6_K(b, n);
    default: throw new Error(`no decoder for ggml type ${GGML_BLOCK[t]?.name ?? t}`);
  }
}
