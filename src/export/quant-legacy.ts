// Reference quantisers for the 32-element ggml blocks Q8_0, Q4_0, Q5_0, Q5_1 (FORMATS.md §5.2, §5.3; Q5_0/Q5_1 are
// the shape fallbacks of the K-quant mixes, §6.6), plus their dequantisers for tests.
// Is: a scalar port of ggml's `quantize_row_*_ref` with every intermediate rounded to float32 (Math.fround), so the
// bytes equal llama-quantize's (checked against libggml-base in test/export-quant.test.ts).
// Is not: the imatrix-weighted variants, nor fast: one pass per element in JS (fine for export, not for training).
// Hand-written: no npm package quantises to ggml block formats.
import { f32ToF16, halfToFloat } from "../models/safetensors.js";

const f = Math.fround;
const half = new Float32Array(1);
/** fp32 → fp16 bits (round to nearest even), as GGML_FP32_TO_FP16 */
export function fp16(x: number): number {
  half[0] = x;
  return f32ToF16(half)[0];
}

function absMaxSigned(x: Float32Array, o: number, n: number): { amax: number; max: number } {
  let amax = 0, max = 0;
  for (let j = 0; j < n; j++) {
    const v = x[o + j];
    if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
  }
  return { amax, max };
}

function minMax(x: Float32Array, o: number, n: number): { min: number; max: number } {
  let min = Infinity, max = -Infinity;
  for (let j = 0; j < n; j++) {
    const v = x[o + j];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/** C roundf: half away from zero */
function roundf(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

/** Q8_0: per block fp16 d | int8 qs[32] (34 bytes). x.length must be a multiple of 32. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < nb; i++) {
    const o = i * 32;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[o + j]));
    const d = f(amax / 127);
    const id = d ? f(1 / d) : 0;
    dv.setUint16(i * 34, fp16(d), true);
    for (let j = 0; j < 32; j++) dv.setInt8(i * 34 + 2 + j, roundf(f(x[o + j] * id)));
  }
  return out;
}

/** Q4_0: fp16 d | qs[16], element j in the low nibble of byte j, element j+16 in the high nibble. */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 18);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < nb; i++) {
    const o = i * 32;
    const { max } = absMaxSigned(x, o, 32);
    const d = f(max / -8);
    const id = d ? f(1 / d) : 0;
    dv.setUint16(i * 18, fp16(d), true);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(f(f(x[o + j] * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(f(f(x[o + 16 + j] * id) + 8.5)));
      out[i * 18 + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

/** Q5_0: fp16 d | u32 qh (bit 4 of element j at bit j) | qs[16] as in Q4_0. */
export function quantizeQ5_0(x: Float32Array): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 22);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < nb; i++) {
    const o = i * 32, b = i * 22;
    const { max } = absMaxSigned(x, o, 32);
    const d = f(max / -16);
    const id = d ? f(1 / d) : 0;
    dv.setUint16(b, fp16(d), true);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(31, Math.trunc(f(f(x[o + j] * id) + 16.5)));
      const q1 = Math.min(31, Math.trunc(f(f(x[o + 16 + j] * id) + 16.5)));
      out[b + 6 + j] = (q0 & 15) | ((q1 & 15) << 4);
      qh |= ((q0 & 0x10) >> 4) << j;
      qh |= ((q1 & 0x10) >> 4) << (j + 16);
    }
    dv.setUint32(b + 2, qh >>> 0, true);
  }
  return out;
}

/** Q5_1: fp16 d | fp16 m | u32 qh | qs[16]; x ≈ d·q + m. */
export function quantizeQ5_1(x: Float32Array): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 24);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < nb; i++) {
    const o = i * 32, b = i * 24;
    const { min, max } = minMax(x, o, 32);
    const d = f(f(max - min) / 31);
    const id = d ? f(1 / d) : 0;
    dv.setUint16(b, fp16(d), true);
    dv.setUint16(b + 2, fp16(min), true);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.trunc(f(f(f(x[o + j] - min) * id) + 0.5)) & 0xff;
      const q1 = Math.trunc(f(f(f(x[o + 16 + j] - min) * id) + 0.5)) & 0xff;
      out[b + 8 + j] = (q0 & 15) | ((q1 & 15) << 4);
      qh |= ((q0 & 0x10) >> 4) << j;
      qh |= ((q1 & 0x10) >> 4) << (j + 16);
    }
    dv.setUint32(b + 4, qh >>> 0, true);
  }
  return out;
}

export function dequantizeQ8_0(q: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let i = 0; i < n / 32; i++) {
    const d = halfToFloat(dv.getUint16(i * 34, true));
    for (let j = 0; j < 32; j++) out[i * 32 + j] = dv.getInt8(i * 34 + 2 + j) * d;
  }
  return out;
}

export function dequantizeQ4_0(q: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let i = 0; i < n / 32; i++) {
    const d = halfToFloat(dv.getUint16(i * 18, true));
    for (let j = 0; j < 16; j++) {
      const byte = q[i * 18 + 2 + j];
      out[i * 32 + j] = ((byte & 15) - 8) * d;
      out[i * 32 + 16 + j] = ((byte >> 4) - 8) * d;
    }
  }
  return out;
}

export function dequantizeQ5_0(q: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let i = 0; i < n / 32; i++) {
    const b = i * 22;
    const d = halfToFloat(dv.getUint16(b, true));
    const qh = dv.getUint32(b + 2, true);
    for (let j = 0; j < 16; j++) {
      const byte = q[b + 6 + j];
      out[i * 32 + j] = (((byte & 15) | (((qh >>> j) & 1) << 4)) - 16) * d;
      out[i * 32 + 16 + j] = (((byte >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * d;
    }
  }
  return out;
}

export function dequantizeQ5_1(q: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let i = 0; i < n / 32; i++) {
    const b = i * 24;
    const d = halfToFloat(dv.getUint16(b, true));
    const m = halfToFloat(dv.getUint16(b + 2, true));
    const qh = dv.getUint32(b + 4, true);
    for (let j = 0; j < 16; j++) {
      const byte = q[b + 8 + j];
      out[i * 32 + j] = ((byte & 15) | (((qh >>> j) & 1) << 4)) * d + m;
      out[i * 32 + 16 + j] = ((byte >> 4) | (((qh >>> (j + 16)) & 1) << 4)) * d + m;
    }
  }
  return out;
}
