// Reference quantisers for the 256-element K-quant super-blocks Q4_K, Q5_K, Q6_K (FORMATS.md §5.4–5.6), plus
// dequantisers for tests.
// Is: a scalar port of ggml's `quantize_row_q{4,5,6}_K_ref` (no imatrix), float32 arithmetic emulated with
// Math.fround after every operation and in the C loops' order, so the bytes match llama-quantize's.
// Is not: the imatrix (`*_impl`) variants; not fast (≈ a few MB/s), acceptable for a one-off export.
// Hand-written: no npm package produces ggml K-quant blocks.
import { halfToFloat } from "../models/safetensors.js";
import { fp16 } from "./quant-legacy.js";

const f = Math.fround;
const GROUP_MAX_EPS = f(1e-15);
const F01 = f(0.1);

/** ggml nearest_int: float32 round-half-to-even via the 1.5·2^23 trick */
function nearestInt(v: number): number {
  return f(v + 12582912) - 12582912;
}

/** Weighted affine fit x ≈ scale·L + min (min ≤ 0) over n values; returns [scale, -min]. L receives 0..nmax. */
function makeQkx2(n: number, nmax: number, x: Float32Array, o: number, w: Float32Array, L: Uint8Array, lo: number,
  Laux: Uint8Array, rmin: number, rdelta: number, nstep: number): [number, number] {
  let min = x[o], max = x[o];
  let sumW = w[0];
  let sumX = f(sumW * x[o]);
  for (let i = 1; i < n; i++) {
    const xi = x[o + i];
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    sumW = f(sumW + w[i]);
    sumX = f(sumX + f(w[i] * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return [0, -min];
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(x[o + i] - min)))));
    L[lo + i] = l;
    const diff = f(f(f(scale * l) + min) - x[o + i]);
    bestError = f(bestError + f(w[i] * f(diff * diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(x[o + i] - min)))));
      Laux[i] = l;
      const wl = f(w[i] * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * x[o + i]));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (D > 0) {
      let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
      let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f(sumXL / sumL2);
      }
      let cur = 0;
      for (let i = 0; i < n; i++) {
        const diff = f(f(f(thisScale * Laux[i]) + thisMin) - x[o + i]);
        cur = f(cur + f(w[i] * f(diff * diff)));
      }
      if (cur < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i];
        bestError = cur;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/** Signed symmetric fit with weights x² (rmse_type 1); L receives l+nmax in 0..2·nmax-1. Returns the scale. */
function makeQx(n: number, nmax: number, x: Float32Array, o: number, L: Int8Array, lo: number): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[o + i]);
    if (ax > amax) { amax = ax; max = x[o + i]; }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return 0;
  }
  let iscale = f(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[o + i];
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))));
    L[lo + i] = l + nmax;
    const w = f(xi * xi);
    sumlx = f(sumlx + f(f(w * xi) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  let scale = suml2 ? f(sumlx / suml2) : 0;
  let best = f(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(F01 * is)) / max);
    sumlx = 0; suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[o + i];
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))));
      const w = f(xi * xi);
      sumlx = f(sumlx + f(f(w * xi) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      for (let i = 0; i < n; i++) {
        const l = nearestInt(f(iscale * x[o + i]));
        L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
      }
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

/** Unpack the 6-bit (scale, min) pair j from the 12-byte K-quant scales field at q[o..o+12). */
function scaleMinK4(j: number, q: Uint8Array, o: number): [number, number] {
  if (j < 4) return [q[o + j] & 63, q[o + j + 4] & 63];
  return [(q[o + j + 4] & 0xf) | ((q[o + j - 4] >> 6) << 4), (q[o + j + 4] >> 4) | ((q[o + j] >> 6) << 4)];
}

/** Shared body of Q4_K (nmax 15) and Q5_K (nmax 31): fills d, dmin, scales and returns L[256] per block. */
function quantizeAffineK(x: Float32Array, o: number, out: Uint8Array, b: number, nmax: number, rmin: number,
  nstep: number, L: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset);
  const w = new Float32Array(32), Laux = new Uint8Array(32);
  const scales = new Float32Array(8), mins = new Float32Array(8);
  let maxScale = 0, maxMin = 0;
  for (let j = 0; j < 8; j++) {
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(x[o + 32 * j + l] * x[o + 32 * j + l]));
    const avX = f(Math.sqrt(f(sumX2 / 32)));
    for (let l = 0; l < 32; l++) w[l] = f(avX + Math.abs(x[o + 32 * j + l]));
    const [s, m] = makeQkx2(32, nmax, x, o + 32 * j, w, L, 32 * j, Laux, rmin, F01, nstep);
    scales[j] = s; mins[j] = m;
    if (s > maxScale) maxScale = s;
    if (m > maxMin) maxMin = m;
  }
  const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
  const sc = b + 4;
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(f(invScale * scales[j])) & 0xff);
    const lm = Math.min(63, nearestInt(f(invMin * mins[j])) & 0xff);
    if (j < 4) {
      out[sc + j] = ls;
      out[sc + j + 4] = lm;
    } else {
      out[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      out[sc + j - 4] |= (ls >> 4) << 6;
      out[sc + j] |= (lm >> 4) << 6;
    }
  }
  const dBits = fp16(f(maxScale / 63)), mBits = fp16(f(maxMin / 63));
  dv.setUint16(b, dBits, true);
  dv.setUint16(b + 2, mBits, true);
  const dd = halfToFloat(dBits), dm0 = halfToFloat(mBits);
  for (let j = 0; j < 8; j++) {
    const [s, m] = scaleMinK4(j, out, sc);
    const d = f(dd * s);
    if (!d) continue;
    const dm = f(dm0 * m);
    for (let ii = 0; ii < 32; ii++) {
      L[32 * j + ii] = Math.max(0, Math.min(nmax, nearestInt(f(f(x[o + 32 * j + ii] + dm) / d))));
    }
  }
}

/** Q4_K: d | dmin | scales[12] | qs[128] (144 bytes per 256). */
export function quantizeQ4_K(x: Float32Array): Uint8Array {
  const nb = x.length / 256;
  const out = new Uint8Array(nb * 144);
  const L = new Uint8Array(256);
  for (let i = 0; i < nb; i++) {
    const b = i * 144;
    quantizeAffineK(x, i * 256, out, b, 15, -1, 20, L);
    let q = b + 16;
    for (let j = 0; j < 256; j += 64) {
      for (let l = 0; l < 32; l++) out[q + l] = L[j + l] | (L[j + l + 32] << 4);
      q += 32;
    }
  }
  return out;
}

/** Q5_K: d | dmin | scales[12] | qh[32] | qs[128] (176 bytes per 256). */
export function quantizeQ5_K(x: Float32Array): Uint8Array {
  const nb = x.length / 256;
  const out = new Uint8Array(nb * 176);
  const L = new Uint8Array(256);
  for (let i = 0; i < nb; i++) {
    const b = i * 176;
    quantizeAffineK(x, i * 256, out, b, 31, -0.5, 15, L);
    const qh = b + 16;
    let ql = b + 48;
    let m1 = 1, m2 = 2;
    for (let n = 0; n < 256; n += 64) {
      for (let j = 0; j < 32; j++) {
        let l1 = L[n + j];
        if (l1 > 15) { l1 -= 16; out[qh + j] |= m1; }
        let l2 = L[n + j + 32];
        if (l2 > 15) { l2 -= 16; out[qh + j] |= m2; }
        out[ql + j] = l1 | (l2 << 4);
      }
      m1 <<= 2; m2 <<= 2;
      ql += 32;
    }
  }
  return out;
}

/** Q6_K: ql[128] | qh[64] | scales[16] (int8) | d (210 bytes per 256). */
export function quantizeQ6_K(x: Float32Array): Uint8Array {
  const nb = x.length / 256;
  const out = new Uint8Array(nb * 210);
  const dv = new DataView(out.buffer);
  const L = new Int8Array(256);
  const scales = new Float32Array(16);
  for (let i = 0; i < nb; i++) {
    const o = i * 256, b = i * 210;
    let maxScale = 0, maxAbs = 0;
    for (let ib = 0; ib < 16; ib++) {
      const s = makeQx(16, 32, x, o + 16 * ib, L, 16 * ib);
      scales[ib] = s;
      if (Math.abs(s) > maxAbs) { maxAbs = Math.abs(s); maxScale = s; }
    }
    if (maxAbs < GROUP_MAX_EPS) continue; // whole block stays zero
    const iscale = f(-128 / maxScale);
    const dBits = fp16(f(1 / iscale));
    dv.setUint16(b + 208, dBits, true);
    const dd = halfToFloat(dBits);
    for (let ib = 0; ib < 16; ib++) dv.setInt8(b + 192 + ib, Math.min(127, nearestInt(f(iscale * scales[ib]))));
    for (let j = 0; j < 16; j++) {
      const d = f(dd * dv.getInt8(b + 192 + j));
      if (!d) continue;
      for (let ii = 0; ii < 16; ii++) {
        L[16 * j + ii] = Math.max(-32, Math.min(31, nearestInt(f(x[o + 16 * j + ii] / d)))) + 32;
      }
    }
    let ql = b, qh = b + 128;
    for (let j = 0; j < 256; j += 128) {
      for (let l = 0; l < 32; l++) {
        const q1 = L[j + l] & 0xf, q2 = L[j + l + 32] & 0xf, q3 = L[j + l + 64] & 0xf, q4 = L[j + l + 96] & 0xf;
        out[ql + l] = q1 | (q3 << 4);
        out[ql + l + 32] = q2 | (q4 << 4);
        out[qh + l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6);
      }
      ql += 64; qh += 32;
    }
  }
  return out;
}

export function dequantizeQ4_K(q: Uint8Array, n: number): Float32Array {
  return dequantAffineK(q, n, 144, false);
}

export function dequantizeQ5_K(q: Uint8Array, n: number): Float32Array {
  return dequantAffineK(q, n, 176, true);
}

function dequantAffineK(q: Uint8Array, n: number, bs: number, five: boolean): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let i = 0; i < n / 256; i++) {
    const b = i * bs;
    const d = halfToFloat(dv.getUint16(b, true)), dmin = halfToFloat(dv.getUint16(b + 2, true));
    let ql = b + (five ? 48 : 16);
    const qh = b + 16;
    let y = i * 256, is = 0, u1 = 1, u2 = 2;
    for (let j = 0; j < 256; j += 64) {
      const [s1, m1] = scaleMinK4(is, q, b + 4), [s2, m2] = scaleMinK4(is + 1, q, b + 4);
      for (let l = 0; l < 32; l++) out[y++] = d * s1 * ((q[ql + l] & 0xf) + (five && q[qh + l] & u1 ? 16 : 0)) - dmin * m1;
      for (let l = 0; l < 32; l++) out[y++] = d * s2 * ((q[ql + l] >> 4) + (five && q[qh + l] & u2 ? 16 : 0)) - dmin * m2;
      ql += 32; is += 2; u1 <<= 2; u2 <<= 2;
    }
  }
  return out;
}

export function dequantizeQ6_K(q: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(q.buffer, q.byteOffset, q.byteLength);
  for (let i = 0; i < n / 256; i++) {
    const b = i * 210;
    const d = halfToFloat(dv.getUint16(b + 208, true));
    let ql = b, qh = b + 128, sc = b + 192, y = i * 256;
    for (let nn = 0; nn < 256; nn += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const q1 = ((q[ql + l] & 0xf) | (((q[qh + l] >> 0) & 3) << 4)) - 32;
        const q2 = ((q[ql + l + 32] & 0xf) | (((q[qh + l] >> 2) & 3) << 4)) - 32;
        const q3 = ((q[ql + l] >> 4) | (((q[qh + l] >> 4) & 3) << 4)) - 32;
        const q4 = ((q[ql + l + 32] >> 4) | (((q[qh + l] >> 6) & 3) << 4)) - 32;
        out[y + l] = d * dv.getInt8(sc + is) * q1;
        out[y + l + 32] = d * dv.getInt8(sc + is + 2) * q2;
        out[y + l + 64] = d * dv.getInt8(sc + is + 4) * q3;
        out[y + l + 96] = d * dv.getInt8(sc + is + 6) * q4;
      }
      y += 128; ql += 64; qh += 32; sc += 8;
    }
  }
  return out;
}
