// The CPU's per-instruction-set kernels (native/cpu/isa/kernels.inc, picked at run time: avx512bf16, avx512, avx2,
// base on x86-64; neon, base on arm64) against independent references, on EVERY kernel set this CPU runs (the addon's
// set_cpu_isa forces each lower one in turn; AHA_CPU_ISA does the same for a whole process):
//   - 4-bit dequantisation (bitsandbytes NF4/FP4, f32/bf16/f16 weights, with and without double quantisation, whole
//     blocks and ragged edges): bit for bit the one-value-at-a-time reading of test/q4-reference.ts;
//   - 4-bit products (the register-decoding matrix-vector kernel for ≤ 16 rows of A, the dequantised-panel GEMM above),
//     dense GEMMs (f32, bf16, f16 weights, either orientation; the exact mode, and the bf16 mode whose activations are
//     rounded to bf16 first) and causal attention rows (f32 and bf16 KV): f64 sums of the same operands, within
//     2^-20 · Σ|terms| (sixteen f32 ulps of the sum of magnitudes: the kernels sum in f32, in their own fixed order).
// Shapes are small and awkward (K not a multiple of the vector width, rows that leave partial micro-tiles). What this
// is not: a speed test (bench/cpu-vs-llamacpp.ts, bench/gemm.ts).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { cpuAddon } from "../src/engine/native.ts";
import { quantize4, type Q4Parts } from "../src/engine/quant4.ts";
import { f32ToBf16, bf16ToF32, f32ToF16, f16ToF32 } from "../src/models/safetensors.ts";
import { refDequantize } from "./q4-reference.ts";

const k = cpuAddon();
const ISAS = k.cpu_isas(), FIRST = k.cpu_isa();
const DT = { f32: 0, bf16: 1, f16: 2 } as const;
const TOL = 2 ** -20;
after(() => { k.set_cpu_isa(FIRST); k.set_gemm_mode(0); });

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}
/** x as a buffer of dtype dt stores it: the words to hand the kernel, and their values */
function asDtype(x: Float32Array, dt: keyof typeof DT): { buf: Float32Array | Uint16Array; values: Float32Array } {
  if (dt === "f32") return { buf: x, values: x };
  const w = dt === "bf16" ? f32ToBf16(x) : f32ToF16(x);
  return { buf: w, values: dt === "bf16" ? bf16ToF32(w) : f16ToF32(w) };
}
/** got[i] against want[i] within TOL · mag[i] (f64 sums of the same terms and of their magnitudes) */
function close(got: Float32Array, want: Float64Array, mag: Float64Array, what: string): void {
  for (let i = 0; i < want.length; i++)
    assert.ok(Math.abs(got[i] - want[i]) <= TOL * mag[i] + 1e-30, `${what}: [${i}] = ${got[i]}, want ${want[i]} (± ${TOL * mag[i]})`);
}
const useIsa = (isa: string) => assert.ok(k.set_cpu_isa(isa), `set_cpu_isa(${isa})`);
const q4Args = (p: Q4Parts) => [p.packed, p.absmax, p.nested?.absmax ?? null, p.code, p.nested?.code ?? null, p.nested?.offset ?? 0, DT[p.dtype]] as const;

test(`the kernel sets this CPU runs (${ISAS.join(", ")}): the widest is the default, each can be chosen, an unknown one is refused`, () => {
  assert.ok(ISAS.includes("base"), `every CPU runs the base set: ${ISAS}`);
  assert.equal(FIRST, process.env.AHA_CPU_ISA && ISAS.includes(process.env.AHA_CPU_ISA) ? process.env.AHA_CPU_ISA : ISAS[0]);
  for (const isa of ISAS) { useIsa(isa); assert.equal(k.cpu_isa(), isa); }
  assert.equal(k.set_cpu_isa("sse9"), false);
  useIsa(FIRST);
});

for (const isa of ISAS) {
  test(`${isa}: 4-bit dequantisation equals the one-value-at-a-time reference bit for bit (nf4/fp4, f32/bf16/f16, double quantisation, ragged edges)`, () => {
    useIsa(isa);
    for (const type of ["nf4", "fp4"] as const)
      for (const dt of ["f32", "bf16", "f16"] as const)
        for (const [rows, cols] of [[40, 128], [7, 90], [300, 64]]) {
          const x = asDtype(random(rows * cols, rows * 7 + cols).map((v, i) => v * (1 + (i % 97))), dt).buf;
          for (const dq of [false, true]) {
            const p = quantize4(x, dt, [rows, cols], { type, doubleQuant: dq });
            const want = new Uint32Array(refDequantize(p).buffer), n = rows * cols;
            for (const [i0, count] of [[0, n], [37, n - 100], [64, 128], [5, 50]]) {
              const out = new Float32Array(count);
              k.q4_dequantize(out, DT.f32, ...q4Args(p), i0, count);
              const got = new Uint32Array(out.buffer);
              for (let i = 0; i < count; i++)
                if (got[i] !== want[i0 + i]) assert.fail(`${type} ${dt} [${rows}, ${cols}]${dq ? " dq" : ""} from ${i0}: value ${i0 + i} is ${out[i]}, want ${new Float32Array(want.buffer)[i0 + i]}`);
            }
          }
        }
  });

  test(`${isa}: 4-bit products A Wᵀ (1 to 24 rows of A: the register-decoding kernel and the panel GEMM) and dy W equal f64 sums by the dequantised weight`, () => {
    useIsa(isa);
    for (const dt of ["f32", "bf16", "f16"] as const)
      for (const [M, R, K] of [[1, 70, 256], [3, 33, 128], [5, 16, 192], [16, 40, 64], [17, 24, 128], [2, 9, 90]]) {
        const p = quantize4(asDtype(random(R * K, M + R + K), dt).buf, dt, [R, K], { type: "nf4", doubleQuant: M % 2 === 1 });
        const W = refDequantize(p), A = random(M * K, 3), C0 = random(M * R, 5), bias = random(R, 7), alpha = 0.75, beta = 0.5;
        const C = C0.slice();
        k.q4_gemm(C, A, DT.f32, ...q4Args(p), M, R, K, true, alpha, beta, bias, DT.f32);
        const want = new Float64Array(M * R), mag = new Float64Array(M * R);
        for (let m = 0; m < M; m++) for (let r = 0; r < R; r++) {
          let s = 0, a = 0;
          for (let j = 0; j < K; j++) { s += A[m * K + j] * W[r * K + j]; a += Math.abs(A[m * K + j] * W[r * K + j]); }
          want[m * R + r] = alpha * s + beta * C0[m * R + r] + bias[r];
          mag[m * R + r] = alpha * a + Math.abs(beta * C0[m * R + r]) + Math.abs(bias[r]);
        }
        close(C, want, mag, `${dt} A Wᵀ M=${M} [${R}, ${K}]`);
        // dx = dy W (the backward to the input), accumulated into D0
        const dy = random(M * R, 11), D0 = random(M * K, 13), D = D0.slice();
        k.q4_gemm(D, dy, DT.f32, ...q4Args(p), M, R, K, false, 1, 1, null, DT.f32);
        const wantD = new Float64Array(M * K), magD = new Float64Array(M * K);
        for (let m = 0; m < M; m++) for (let j = 0; j < K; j++) {
          let s = D0[m * K + j], a = Math.abs(s);
          for (let r = 0; r < R; r++) { s += dy[m * R + r] * W[r * K + j]; a += Math.abs(dy[m * R + r] * W[r * K + j]); }
          wantD[m * K + j] = s;
          magD[m * K + j] = a;
        }
        close(D, wantD, magD, `${dt} dy W M=${M} [${R}, ${K}]`);
      }
  });

  test(`${isa}: dense GEMMs (f32/bf16/f16 weights, either orientation, 1 to 70 rows; exact and bf16 modes) equal f64 sums`, () => {
    useIsa(isa);
    for (const mode of [1, 0]) {
      k.set_gemm_mode(mode);
      for (const dt of ["f32", "bf16", "f16"] as const)
        for (const transB of [true, false])
          for (const [M, N, K] of [[1, 37, 300], [4, 50, 64], [16, 19, 70], [17, 100, 33], [70, 45, 260]]) {
            const A = random(M * K, M * 3 + K), B = asDtype(random(N * K, N + K * 5), dt), C0 = random(M * N, 17);
            // the bf16 mode rounds f32 activations to bf16 for bf16 weights (as CUDA's default mode and llama.cpp do)
            const Av = mode === 0 && dt === "bf16" ? bf16ToF32(f32ToBf16(A)) : A;
            const C = C0.slice(), alpha = 1.25, beta = 0.5;
            k.gemm(C, A, B.buf, DT[dt], 1, M, N, K, false, transB, K, transB ? K : N, N, 0, 0, 0, alpha, beta);
            const want = new Float64Array(M * N), mag = new Float64Array(M * N);
            for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
              let s = 0, a = 0;
              for (let j = 0; j < K; j++) {
                const t = Av[m * K + j] * B.values[transB ? n * K + j : j * N + n];
                s += t;
                a += Math.abs(t);
              }
              want[m * N + n] = alpha * s + beta * C0[m * N + n];
              mag[m * N + n] = alpha * a + Math.abs(beta * C0[m * N + n]);
            }
            close(C, want, mag, `mode ${mode ? "exact" : "bf16"} ${dt} ${transB ? "A Bᵀ" : "A B"} [${M}, ${N}, ${K}]`);
          }
    }
    k.set_gemm_mode(0);
  });

  test(`${isa}: causal GQA attention rows (f32 and bf16 KV, D 64 and 72, prefill and one decode row, soft cap) equal f64 softmax sums`, () => {
    useIsa(isa);
    for (const dtKV of ["f32", "bf16"] as const)
      for (const [T, S, D, softcap] of [[6, 6, 64, 0], [1, 45, 72, 0], [3, 20, 64, 30]]) {
        const Hq = 4, Hkv = 2, scale = 1 / Math.sqrt(D);
        const q = random(T * Hq * D, T + D), kv = asDtype(random(S * Hkv * D, S), dtKV), vv = asDtype(random(S * Hkv * D, S + 1), dtKV);
        const o = new Float32Array(T * Hq * D), lse = new Float32Array(Hq * T);
        k.attention_forward(o, lse, q, kv.buf, vv.buf, null, 1, T, S, Hq, Hkv, D, S * Hkv * D, scale, 0, softcap, false, null, 0, DT[dtKV]);
        const want = new Float64Array(o.length), mag = new Float64Array(o.length), K = kv.values, V = vv.values;
        for (let t = 0; t < T; t++) for (let h = 0; h < Hq; h++) {
          const g = Math.floor(h / (Hq / Hkv)), last = t + S - T, s: number[] = [];
          for (let j = 0; j <= last; j++) {
            let d = 0;
            for (let e = 0; e < D; e++) d += q[(t * Hq + h) * D + e] * K[(j * Hkv + g) * D + e];
            d *= scale;
            s.push(softcap > 0 ? softcap * Math.tanh(d / softcap) : d);
          }
          const mx = Math.max(...s), z = s.reduce((a, x) => a + Math.exp(x - mx), 0);
          for (let e = 0; e < D; e++) {
            let acc = 0, a = 0;
            for (let j = 0; j <= last; j++) { const p = Math.exp(s[j] - mx) / z, x = p * V[(j * Hkv + g) * D + e]; acc += x; a += Math.abs(x); }
            want[(t * Hq + h) * D + e] = acc;
            mag[(t * Hq + h) * D + e] = a;
          }
          assert.ok(Math.abs(lse[h * T + t] - (mx + Math.log(z))) <= 1e-5 * (1 + Math.abs(mx)), `${dtKV} lse [${h}, ${t}] ${lse[h * T + t]}, want ${mx + Math.log(z)}`);
        }
        close(o, want, mag, `${dtKV} attention T=${T} S=${S} D=${D}${softcap ? " softcap" : ""}`);
      }
  });
}
