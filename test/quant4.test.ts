// bitsandbytes 4-bit quantisation (engine/quant4.ts, native/cpu/q4.cpp) against two independent references:
//   - golden bytes made by bitsandbytes' own algorithm run by real PyTorch (test/data/bnb4/make_golden.py: the
//     default backend's quantize_4bit / quantize_blockwise / dequantize code, copied from bitsandbytes);
//   - a one-value-at-a-time TypeScript reading of ../shared/FORMATS.md §9 (below), on random weights of awkward
//     shapes (blocks spanning rows, odd counts, bf16 inputs, all-zero blocks);
// and the 4-bit products (q4_gemm: the GEMV and panel paths, forward and backward to the input) against f64
// products by the dequantised weight, on every device (CPU; CUDA, or the emulator in `npm run test:cuda-emu`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { quantize4, dequantize4, dynamicMap, quantizeAbsmax, NF4_CODE, FP4_CODE, Q4Weight, type Q4Parts, type Q4Type } from "../src/engine/quant4.ts";
import { fromHost, getBackend, scope } from "../src/engine/index.ts";
import { weightProduct, weightProductT } from "../src/engine/ops/weight-gemm.ts";
import { f32ToBf16, bf16ToF32 } from "../src/models/safetensors.ts";
import { availableDevices, useDevice } from "./devices.ts";
import { FP4_THRESHOLDS, refDequantize, refDoubleQuant, refQuantize } from "./q4-reference.ts";

const DATA = join(import.meta.dirname, "data", "bnb4");
const f = Math.fround;

// ---- golden data from bitsandbytes' code run by PyTorch
const golden = JSON.parse(readFileSync(join(DATA, "golden.json"), "utf8")) as {
  inputs: { case: string; start: number; n: number; quant_type: Q4Type; offset: number; layout: Record<string, [number, number]> }[];
};
const readF32 = (name: string) => { const b = readFileSync(join(DATA, name)); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); };
const input = readF32("input.f32"), goldenMap = readF32("dynamic_map.f32");
/** Whether x's s = x / absmax lies between one of bitsandbytes' CUDA FP4 thresholds and the exact f32 midpoint it stands for. */
function betweenFp4Thresholds(x: number, absmax: number): boolean {
  const s = Math.abs(f(x * f(1 / Math.max(absmax, f(1e-38))))), mags = [0, 1, 6, 7, 4, 5, 2, 3].map((c) => FP4_CODE[c]);
  return FP4_THRESHOLDS.some((t, k) => { const mid = f((mags[k] + mags[k + 1]) / 2); return s >= Math.min(t, mid) && s <= Math.max(t, mid); });
}

for (const g of golden.inputs) {
  test(`golden ${g.case}: packed codes, absmax, double quantisation and dequantised values as bitsandbytes'`, () => {
    const bin = readFileSync(join(DATA, `${g.case}.bin`));
    const bytes = (k: string) => new Uint8Array(bin.subarray(g.layout[k][0], g.layout[k][0] + g.layout[k][1]));
    const f32 = (k: string) => new Float32Array(bytes(k).buffer);
    const x = input.slice(g.start, g.start + g.n);
    const p = quantize4(x, "f32", [1, g.n], { type: g.quant_type, doubleQuant: false });
    assert.deepEqual(p.code, f32("code"), "code table (quant_map)");
    assert.deepEqual(p.absmax, f32("absmax"), "absmax");
    const deq = dequantize4(p), want = f32("dequant");
    if (g.quant_type === "nf4") {
      assert.deepEqual(p.packed, bytes("packed"), "packed nibbles");
      assert.deepEqual(deq, want, "dequantised values");
    } else {
      // FP4 follows bitsandbytes' CUDA kernel (thresholds written as rounded decimals, ties to the smaller magnitude)
      // where its torch backend uses exact f32 midpoints (ties to the lower value): the values agree except where |s|
      // lies between a threshold and its midpoint, ends included
      for (let i = 0; i < g.n; i++) if (deq[i] !== want[i]) assert.ok(betweenFp4Thresholds(x[i], p.absmax[Math.floor(i / 64)]), `value ${i}: ${deq[i]} vs ${want[i]}`);
    }
    // double quantisation: the same codes and nested absmax given torch's map and mean (both stored in a checkpoint)
    const dq = quantizeAbsmax(p.absmax as Float32Array, goldenMap, g.offset);
    assert.deepEqual(dq.absmax, bytes("absmax_codes"), "absmax codes");
    assert.deepEqual(dq.nested.absmax, f32("nested_absmax"), "nested absmax");
    const deq2 = dequantize4({ ...p, absmax: dq.absmax, nested: dq.nested }), want2 = f32("dequant_dq");
    for (let i = 0; i < g.n; i++) if (g.quant_type === "nf4" || deq[i] === want[i]) assert.equal(deq2[i], want2[i], `value ${i}`);
  });
}

test("the dynamic map: 256 sorted values from −0.99297 to 1, each within 2 ulps of torch's", () => {
  const m = dynamicMap();
  assert.equal(m.length, 256);
  assert.equal(new Set(m).size, 256);
  for (let i = 1; i < 256; i++) assert.ok(m[i] > m[i - 1]);
  assert.equal(m[255], 1);
  assert.equal(m[0], goldenMap[0]);
  const bits = new Int32Array(new Float32Array([...m, ...goldenMap]).buffer);
  for (let i = 0; i < 256; i++) assert.ok(Math.abs(bits[i] - bits[256 + i]) <= 2, `entry ${i}: ${m[i]} vs torch's ${goldenMap[i]}`);
});

// ---- the native quantiser against the reference on random weights
function randomWeight(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const x = Float32Array.from({ length: n }, () => (r() - 0.5) * 0.08 * (r() < 0.01 ? 20 : 1));
  x.fill(0, 128, 192); // an all-zero block
  return x;
}

for (const type of ["nf4", "fp4"] as const)
  for (const [rows, cols] of [[37, 64], [19, 90], [7, 13], [300, 128]]) {
    test(`${type} [${rows}, ${cols}]: native quantiser and dequantiser equal the one-at-a-time reference (f32 and bf16 weights)`, () => {
      const x = randomWeight(rows * cols, rows * 131 + cols);
      const ref = refQuantize(x, type);
      for (const dq of [false, true]) {
        const p = quantize4(x, "f32", [rows, cols], { type, doubleQuant: dq });
        assert.deepEqual(p.packed, ref.packed);
        if (!dq) assert.deepEqual(p.absmax, ref.absmax);
        else {
          const d = refDoubleQuant(ref.absmax, p.nested!.code, p.nested!.offset);
          assert.deepEqual(p.absmax, d.q);
          assert.deepEqual(p.nested!.absmax, d.nested);
          assert.deepEqual(p.nested!.code, dynamicMap());
        }
        assert.deepEqual(dequantize4(p), refDequantize(p));
      }
      // a bf16 weight: quantised from its bf16 values, dequantised values rounded to bf16
      const words = f32ToBf16(x);
      const pb = quantize4(words, "bf16", [rows, cols], { type, doubleQuant: true });
      const refb = refQuantize(bf16ToF32(words), type);
      assert.deepEqual(pb.packed, refb.packed);
      assert.deepEqual(dequantize4(pb), refDequantize(pb));
    });
  }

test("ties and thresholds: NF4 midpoints to the lower code, FP4 as bitsandbytes' CUDA kernel", () => {
  // a block whose absmax is 1 holds the values themselves as s
  const mids = Array.from({ length: 15 }, (_, j) => f((NF4_CODE[j] + NF4_CODE[j + 1]) / 2));
  const x = new Float32Array(64);
  x[0] = 1;
  mids.forEach((m, j) => { x[1 + j] = m; x[17 + j] = nextUp(m); });
  const p = quantize4(x, "f32", [1, 64], { type: "nf4", doubleQuant: false });
  const codes = Array.from({ length: 64 }, (_, i) => (i % 2 ? p.packed[i >> 1] & 15 : p.packed[i >> 1] >> 4));
  mids.forEach((_, j) => {
    assert.equal(codes[1 + j], j, `NF4 midpoint ${j} goes to the lower code`);
    assert.equal(codes[17 + j], j + 1, `just above NF4 midpoint ${j} goes to the upper code`);
  });
  const y = Float32Array.from([1, 0.29166667, -0.29166667, 0.583333, 0.5833333, -0.0001, 0.0001, 0]);
  const q = quantize4(y, "f32", [1, 8], { type: "fp4", doubleQuant: false });
  const fc = Array.from({ length: 8 }, (_, i) => (i % 2 ? q.packed[i >> 1] & 15 : q.packed[i >> 1] >> 4));
  assert.deepEqual(fc, [3, 7, 15, 5, 2, 8, 0, 0]); // 1; 0.25 both signs (a threshold: the smaller magnitude); 0.5; 0.667; −0; +0; 0
  assert.equal(FP4_CODE[8], 0);
});

function nextUp(v: number): number {
  const b = new Float32Array([v]), u = new Int32Array(b.buffer);
  u[0] += v >= 0 ? 1 : -1;
  return b[0];
}

// ---- the products, on every device
for (const device of availableDevices()) {
  for (const [M, R, K, dq] of [[1, 37, 64, true], [3, 19, 90, false], [8, 64, 128, true], [5, 7, 13, true], [24, 300, 128, true], [33, 65, 96, false]] as const) {
    test(`${device} q4 products M=${M} [${R}, ${K}]${dq ? " double-quantised" : ""}: A Wᵀ (+ bias, β) and dy W equal f64 products by the dequantised weight`, async () => {
      await useDevice(device);
      const be = getBackend(device);
      const x = randomWeight(R * K, M * 7 + R);
      const p = quantize4(x, "f32", [R, K], { type: "nf4", doubleQuant: dq });
      const Wd = refDequantize(p);
      const A = randomWeight(M * K, 3), dy = randomWeight(M * R, 5), bias = randomWeight(R, 9), C0 = randomWeight(M * R, 11), D0 = randomWeight(M * K, 13);
      scope(() => {
        const W = Q4Weight.fromParts(p, be, "f32");
        const c = fromHost(C0, [M, R], "f32", be), d = fromHost(D0, [M, K], "f32", be);
        weightProduct(W, c.buf, fromHost(A, [M, K], "f32", be).buf, 0, M, 0.5, 0.25, fromHost(bias, [R], "f32", be).buf);
        weightProductT(W, d.buf, fromHost(dy, [M, R], "f32", be).buf, M, 1);
        const got = c.f32(), gotD = d.f32();
        for (let m = 0; m < M; m++) for (let r = 0; r < R; r++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += A[m * K + k] * Wd[r * K + k];
          const want = 0.5 * s + 0.25 * C0[m * R + r] + bias[r];
          assert.ok(Math.abs(got[m * R + r] - want) <= 1e-5 * (1 + Math.abs(want)), `C[${m}, ${r}] = ${got[m * R + r]}, want ${want}`);
        }
        for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) {
          let s = D0[m * K + k];
          for (let r = 0; r < R; r++) s += dy[m * R + r] * Wd[r * K + k];
          assert.ok(Math.abs(gotD[m * K + k] - s) <= 1e-5 * (1 + Math.abs(s)), `dx[${m}, ${k}] = ${gotD[m * K + k]}, want ${s}`);
        }
        W.dispose();
      });
    });
  }
}
