// A one-value-at-a-time TypeScript reading of bitsandbytes' 4-bit format (../shared/FORMATS.md §9; FP4 as
// bitsandbytes' CUDA kernel decides it): the tests' independent reference for the native quantiser and dequantiser
// (test/quant4.test.ts) and for the dequantised weights of 4-bit models (test/qlora.test.ts). Written for clarity:
// linear scans, one value at a time.
import { NF4_CODE, type Q4Parts, type Q4Type } from "../src/engine/quant4.ts";
import { f32ToBf16, bf16ToF32, f32ToF16, f16ToF32 } from "../src/models/safetensors.ts";

const f = Math.fround;
export const FP4_THRESHOLDS = [0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333].map(f);
const FP4_BY_MAGNITUDE = [0, 1, 6, 7, 4, 5, 2, 3]; // the codes of 0, 0.0052, 0.1667, 0.25, 0.333, 0.5, 0.667, 1
export function refCode(s: number, type: Q4Type): number {
  if (type === "fp4") {
    let m = 0;
    for (const t of FP4_THRESHOLDS) if (Math.abs(s) > t) m++;
    return FP4_BY_MAGNITUDE[m] + (s < 0 ? 8 : 0);
  }
  let i = 0; // the number of f32 midpoints below s: a value on a midpoint goes to the lower code
  for (let j = 0; j < 15; j++) if (f((NF4_CODE[j] + NF4_CODE[j + 1]) / 2) < s) i++;
  return i;
}
export function refQuantize(x: Float32Array, type: Q4Type): { packed: Uint8Array; absmax: Float32Array } {
  const n = x.length, nb = Math.ceil(n / 64), codes = new Uint8Array(n + (n % 2)), absmax = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    let am = 0;
    for (let i = b * 64; i < Math.min(n, b * 64 + 64); i++) am = Math.max(am, Math.abs(x[i]));
    absmax[b] = am;
    const inv = f(1 / Math.max(am, f(1e-38)));
    for (let i = b * 64; i < Math.min(n, b * 64 + 64); i++) codes[i] = refCode(Math.min(1, Math.max(-1, f(x[i] * inv))), type);
  }
  if (n % 2) codes[n] = refCode(0, type);
  const packed = new Uint8Array(codes.length / 2);
  for (let i = 0; i < packed.length; i++) packed[i] = (codes[2 * i] << 4) | codes[2 * i + 1];
  return { packed, absmax };
}
export function refDoubleQuant(absmax: Float32Array, map: Float32Array, offset: number): { q: Uint8Array; nested: Float32Array } {
  const q = new Uint8Array(absmax.length), nested = new Float32Array(Math.ceil(absmax.length / 256));
  for (let b = 0; b < nested.length; b++) {
    const vals = Array.from(absmax.subarray(b * 256, b * 256 + 256), (a) => f(a - offset));
    nested[b] = Math.max(...vals.map(Math.abs));
    const inv = f(1 / Math.max(nested[b], f(1e-38)));
    vals.forEach((v, j) => {
      const s = Math.min(1, Math.max(-1, f(v * inv)));
      let i = 0;
      for (let k = 0; k < 255; k++) if (f((map[k] + map[k + 1]) / 2) < s) i++;
      q[b * 256 + j] = i;
    });
  }
  return { q, nested };
}
export function refDequantize(p: Q4Parts): Float32Array {
  const n = p.shape[0] * p.shape[1], out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const b = Math.floor(i / 64), nib = i % 2 ? p.packed[i >> 1] & 15 : p.packed[i >> 1] >> 4;
    const am = p.nested ? f(f(p.nested.code[p.absmax[b]] * p.nested.absmax[Math.floor(b / 256)]) + p.nested.offset) : p.absmax[b];
    out[i] = f(p.code[nib] * am);
  }
  return p.dtype === "bf16" ? bf16ToF32(f32ToBf16(out)) : p.dtype === "f16" ? f16ToF32(f32ToF16(out)) : out;
}

