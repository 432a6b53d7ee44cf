// CUDA kernels against the CPU kernels, op by op, forward and backward, on random inputs: each case runs the same
// kernel of both addons with the same arguments and compares max |cuda - cpu| / max |cpu|. Tolerance 1e-4 in f32
// (GEMMs in "exact" mode); bf16 tensor-core GEMMs round the f32 activations to bf16 (8 mantissa bits, relative
// error 2^-9 per operand), so those are held to 2e-2 of the output scale. Skips when there is no CUDA device.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpuAddon } from "../src/engine/native.ts";
import { cudaBackend, cudaEmulated } from "../src/engine/cuda.ts";
import { bf16ToF32, f32ToBf16, f32ToF16 } from "../src/models/safetensors.ts";
import type { HostArray } from "../src/engine/dtype.ts";
import { cudaSkip } from "./devices.ts";

const skip = cudaSkip();
const emulated = !skip && cudaEmulated();
const cpu = cpuAddon() as any; // eslint-disable-line @typescript-eslint/no-explicit-any
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => (rand() + rand() + rand() - 1.5) * 2 * s);
const randi = (n: number, hi: number) => Int32Array.from({ length: n }, () => Math.floor(rand() * hi));

/** Arguments are host arrays (copied to the GPU for the CUDA call), numbers, booleans or null. */
type Arg = HostArray | number | boolean | null | object;

/** minRel > 0: the worst output must also differ by at least that much (shows a rounding path really ran). */
function both(op: string, args: Arg[], outs: number[], tol = 1e-4, label = op, minRel = 0): (number | undefined)[] {
  const be = cudaBackend();
  const cpuArgs = args.map((a) => (ArrayBuffer.isView(a) ? (a as HostArray).slice() : a));
  const rc = cpu[op](...cpuArgs);
  const dev = args.map((a) => {
    if (!ArrayBuffer.isView(a)) return a;
    const h = a as HostArray;
    const p = be.alloc(h instanceof Float32Array ? "f32" : h instanceof Int32Array ? "i32" : "bf16", h.length);
    be.write(p, h);
    return p;
  });
  const rg = (be.k as any)[op](...dev); // eslint-disable-line @typescript-eslint/no-explicit-any
  let worst = 0;
  for (const i of outs) {
    // a 16-bit output (bf16 words) is compared as values, to one bf16 rounding step (the f32 values it rounds may
    // differ in their last bits)
    const w16 = cpuArgs[i] instanceof Uint16Array;
    const want = w16 ? bf16ToF32(cpuArgs[i] as Uint16Array) : (cpuArgs[i] as Float32Array);
    const got = w16 ? bf16ToF32(be.read(dev[i], "bf16", want.length) as Uint16Array) : (be.read(dev[i], "f32", want.length) as Float32Array);
    let scale = 0, err = 0;
    for (let j = 0; j < want.length; j++) {
      const w = want[j], g = got[j];
      if (Number.isNaN(w) || w === -Infinity) { assert.ok(Object.is(w, g) || (Number.isNaN(w) && Number.isNaN(g)), `${label}: out ${i}[${j}] ${g} vs ${w}`); continue; }
      scale = Math.max(scale, Math.abs(w));
      err = Math.max(err, Math.abs(w - g));
    }
    const rel = err / Math.max(scale, 1e-20);
    const lim = w16 ? Math.max(tol, 2 ** -8) : tol;
    assert.ok(rel <= lim, `${label}: output ${i} max error ${err} over scale ${scale} (${rel.toExponential(2)} > ${lim})`);
    worst = Math.max(worst, rel);
  }
  assert.ok(worst >= minRel, `${label}: worst error ${worst.toExponential(2)} < ${minRel}: the bf16 path did not run`);
  dev.forEach((p, i) => { if (ArrayBuffer.isView(args[i])) be.free(p, "f32", 0); });
  if (typeof rc === "number") {
    assert.ok(Math.abs(rc - rg) <= tol * Math.max(1, Math.abs(rc)), `${label}: value ${rg} vs ${rc}`);
    return [rc, rg];
  }
  return [];
}

test("cuda: gemm f32, all transposes, batched, broadcast, strided, alpha/beta", { skip }, () => {
  cudaBackend().setGemmMode("exact");
  for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    const batch = 3, M = 37, N = 29, K = 53, pad = 3;
    const aR = tA ? K : M, aC = tA ? M : K, bR = tB ? N : K, bC = tB ? K : N;
    const lda = aC + pad, ldb = bC + pad, ldc = N + pad;
    const A = randn(batch * aR * lda), B = randn(batch * bR * ldb), C = randn(batch * M * ldc);
    both("gemm", [C, A, B, 0, batch, M, N, K, tA, tB, lda, ldb, ldc, aR * lda, bR * ldb, M * ldc, 0.7, 0.3], [0], 1e-4, `gemm tA=${tA} tB=${tB}`);
    both("gemm", [C, A, B, 0, batch, M, N, K, tA, tB, lda, ldb, ldc, aR * lda, 0, M * ldc, 1, 0], [0], 1e-4, `gemm broadcast B tA=${tA} tB=${tB}`);
  }
  const M = 7, N = 5;
  both("gemm", [randn(M * N), randn(4), randn(4), 0, 1, M, N, 0, false, false, 1, N, N, 0, 0, 0, 1, 0.5], [0], 1e-4, "gemm K=0: C = beta C");
});

test("cuda: gemm with bf16/f16 weights (exact and bf16 tensor-core modes)", { skip }, () => {
  const be = cudaBackend();
  const M = 64, N = 96, K = 128;
  const A = randn(M * K), W = randn(N * K, 0.05);
  for (const [dt, words] of [[1, f32ToBf16(W)], [2, f32ToF16(W)]] as const) {
    for (const mode of ["exact", "bf16"] as const) {
      be.setGemmMode(mode);
      const tol = mode === "exact" ? 1e-4 : 2e-2;
      both("gemm", [new Float32Array(M * N), A, words, dt, 1, M, N, K, false, true, K, K, N, 0, 0, 0, 1, 0], [0], tol, `gemm x·Wᵀ dt=${dt} ${mode}`);
      both("gemm", [new Float32Array(M * K), randn(M * N), words, dt, 1, M, K, N, false, false, N, K, K, 0, 0, 0, 1, 0], [0], tol, `gemm g·W dt=${dt} ${mode}`);
    }
  }
  be.setGemmMode("exact");
});

test("cuda: gemm with a bias (cuBLASLt epilogue) and with 16-bit activations converted beforehand", { skip }, () => {
  const be = cudaBackend();
  for (const mode of ["exact", "bf16"] as const) {
    be.setGemmMode(mode);
    const M = 37, N = 29, K = 53, A = randn(M * K), B = randn(N * K), bias = randn(N);
    for (const beta of [0, 0.3])
      both("gemm", [randn(M * N), A, B, 0, 1, M, N, K, false, true, K, K, N, 0, 0, 0, 0.7, beta, false, 0, bias], [0], 1e-4, `gemm + bias beta=${beta} ${mode}`);
    // a strided batch with aligned strides (cuBLASLt's batched layouts), x the same for every batch (stride 0), as
    // loraLinearGroup runs packed k/v or gate/up weights
    const x = randn(64 * 64), Wp = randn(2 * 128 * 64, 0.1);
    for (const [dt, Wd] of [[0, Wp], [1, f32ToBf16(Wp)]] as const)
      both("gemm", [new Float32Array(2 * 64 * 128), x, Wd, dt, 2, 64, 128, 64, false, true, 64, 64, 128, 0, 128 * 64, 64 * 128, 1, 0], [0],
        mode === "exact" || dt === 0 ? 1e-4 : 2e-2, `gemm batched, x broadcast, dt=${dt} ${mode}`);
    // with one bias per batch (packed k/v biases: stride 128)
    both("gemm", [new Float32Array(2 * 64 * 128), x, Wp, 0, 2, 64, 128, 64, false, true, 64, 64, 128, 0, 128 * 64, 64 * 128, 1, 0, false, 0, randn(256), 128], [0],
      1e-4, `gemm batched + biases ${mode}`);
    // x and W both bf16 (x rounded by the convert kernel first, as loraLinearGroup does): no rounding left in the GEMM
    const x16 = f32ToBf16(randn(64 * 128)), W16 = f32ToBf16(randn(96 * 128, 0.05));
    both("gemm", [new Float32Array(64 * 96), x16, W16, 1, 1, 64, 96, 128, false, true, 128, 128, 96, 0, 0, 0, 1, 0, false, 1, randn(96)], [0], 1e-4, `gemm bf16·bf16ᵀ + bias ${mode}`);
  }
  const n = 1000, x = randn(n), y = new Uint16Array(n);
  x[0] = 1 + 2 ** -8; x[1] = 1 + 3 * 2 ** -8; // ties: to even
  cpu.convert(y, 1, x, 0, n);
  const dy = be.alloc("bf16", n), dx = be.alloc("f32", n);
  be.write(dx, x);
  be.k.convert(dy, 1, dx, 0, n);
  assert.deepEqual(be.read(dy, "bf16", n), y, "bf16 words equal the CPU's (round to nearest even)");
  be.free(dy, "bf16", n); be.free(dx, "f32", n);
  be.setGemmMode("exact");
});

test("cuda: the profile sums GPU time, FLOPs and bytes by op and GEMMs by shape (label, calls, FLOPs, bytes), only while it is on", { skip }, () => {
  const be = cudaBackend();
  be.setGemmMode("bf16");
  const B = 2, M = 37, N = 29, K = 53;
  const dev = (h: Float32Array | Uint16Array) => { const p = be.alloc(h instanceof Float32Array ? "f32" : "bf16", h.length); be.write(p, h); return p; };
  const C = dev(new Float32Array(B * M * N)), A = dev(randn(M * K)), W = dev(f32ToBf16(randn(B * N * K))), bias = dev(randn(N));
  // C[b] = A W[b]ᵀ: A shared by the batch (stride 0), accumulating (beta 0.5), with a bias
  const gemm = () => be.k.gemm(C, A, W, 1, B, M, N, K, false, true, K, K, N, 0, N * K, M * N, 1, 0.5, false, 0, bias);
  try {
    be.profile(); be.profileGemmShapes(); // (clears what an earlier case left)
    gemm();
    be.setProfiling(true);
    gemm(); gemm();
    be.k.scale(C, C, 2, B * M * N);
    be.setProfiling(false);
    gemm();
    const ops = be.profile(), shapes = be.profileGemmShapes(), s0 = () => shapes[0];
    assert.equal(ops["gemm 16-bit, skinny"]?.[1], 2, `two profiled GEMM calls under their category: ${JSON.stringify(ops)}`);
    assert.equal(ops["scale"]?.[1], 1);
    assert.deepEqual(ops["scale"].slice(2), [0, 8 * B * M * N], "scale's cost model: no FLOPs, its input read and output written");
    assert.deepEqual(ops["gemm 16-bit, skinny"].slice(2), [s0().flops, s0().bytes], "a GEMM category sums its calls' FLOPs and bytes");
    assert.equal(shapes.length, 1, JSON.stringify(shapes));
    const [s] = shapes;
    assert.equal(s.shape, `${B} × ${M}×${N}×${K}, A f32, Bᵀ bf16, β, bias`);
    assert.equal(s.calls, 2);
    assert.equal(s.flops, 2 * 2 * B * M * N * K);
    assert.equal(s.bytes, 2 * (M * K * 4 + B * N * K * 2 + B * M * N * 4 * 2), "A once for the batch, W per batch, C read and written");
    assert.ok(s.ms >= 0 && s.ms >= ops["gemm 16-bit, skinny"][0] - 1e-9 && s.ms <= ops["gemm 16-bit, skinny"][0] + 1e-9, "the shape's time is its calls' time");
    assert.deepEqual([Object.keys(be.profile()).length, be.profileGemmShapes().length], [0, 0], "taking the profile clears it");
  } finally {
    be.setProfiling(false);
    for (const p of [C, A, W, bias]) be.free(p, "f32", 0);
    be.setGemmMode("exact");
  }
});

test("cuda: gemm tuning (timed algorithms) keeps every result: accumulate, bias, strided batch", { skip }, () => {
  const be = cudaBackend();
  be.setGemmMode("exact");
  be.setGemmTuning(true);
  try {
    const before = be.gemmStats().tuned;
    // the timing runs write a scratch output: C is added to once (beta 1) whatever the number of algorithms timed
    const M = 64, N = 96, K = 128;
    both("gemm", [randn(M * N), randn(M * K), randn(N * K), 0, 1, M, N, K, false, true, K, K, N, 0, 0, 0, 1, 1], [0], 1e-4, "tuned gemm, beta 1");
    both("gemm", [randn(M * N), randn(M * K), randn(N * K), 0, 1, M, N, K, false, true, K, K, N, 0, 0, 0, 0.7, 0.3, false, 0, randn(N)], [0], 1e-4, "tuned gemm + bias");
    both("gemm", [randn(2 * M * N), randn(M * K), randn(2 * N * K), 0, 2, M, N, K, false, true, K, K, N, 0, N * K, M * N, 1, 1], [0], 1e-4, "tuned batched gemm");
    // the same shapes again: their plans are made, the tuned algorithm is used
    both("gemm", [randn(M * N), randn(M * K), randn(N * K), 0, 1, M, N, K, false, true, K, K, N, 0, 0, 0, 1, 1], [0], 1e-4, "tuned gemm, second call");
    const after = be.gemmStats();
    assert.ok(after.tuned >= before + 3, `three shapes timed (${before} → ${after.tuned})`);
    assert.ok(after.changed <= after.tuned);
  } finally {
    be.setGemmTuning(false);
  }
});

test("cuda: skinny GEMM kernel (≤ 64 rows × bf16 weights, K split over blocks) equals the CPU: bias, accumulate, batches", { skip }, () => {
  const be = cudaBackend();
  be.setGemmMode("bf16");
  be.setSkinnyGemm(true);
  try {
    const before = be.gemmStats().skinny;
    let calls = 0;
    // rows 1..64 (each m16 tile count), N not a multiple of the 128-column tile, K from one 32-step to several staged
    // chunks and not a multiple of 32 (a short last step), beta 0 / 1, a bias, alpha; 33 column tiles (f32 x rounded
    // to bf16 by a conversion first)
    for (const [M, N, K] of [[1, 8, 8], [7, 100, 40], [16, 64, 520], [33, 130, 264], [64, 200, 1096], [64, 72, 64], [8, 4200, 64]] as const) {
      const W = f32ToBf16(randn(N * K, 0.1)), x16 = f32ToBf16(randn(M * K)), xf = randn(M * K);
      for (const beta of [0, 1]) {
        both("gemm", [randn(M * N), x16, W, 1, 1, M, N, K, false, true, K, K, N, 0, 0, 0, 0.5, beta, false, 1, randn(N)], [0], 1e-4, `skinny ${M}×${N}×${K} bf16 x, beta ${beta}`);
        calls++;
      }
      // f32 activations: rounded to bf16 in the kernel, as cuBLAS's bf16 mode rounds them (2e-2 of the scale, as above)
      both("gemm", [new Float32Array(M * N), xf, W, 1, 1, M, N, K, false, true, K, K, N, 0, 0, 0, 1, 0], [0], 2e-2, `skinny ${M}×${N}×${K} f32 x`);
      calls++;
    }
    // packed projections: a strided batch of weights and biases, x the same for every batch (stride 0), as k/v and gate/up
    const M = 64, N = 96, K = 128, W = f32ToBf16(randn(2 * N * K, 0.1)), x16 = f32ToBf16(randn(M * K));
    both("gemm", [new Float32Array(2 * M * N), x16, W, 1, 2, M, N, K, false, true, K, K, N, 0, N * K, M * N, 1, 0, false, 1, randn(2 * N), N], [0], 1e-4, "skinny batched + biases");
    calls++;
    assert.equal(be.gemmStats().skinny - before, calls, "every call above ran the skinny kernel");
    // what it does not take goes to cuBLAS: 65 rows, W not transposed
    both("gemm", [new Float32Array(65 * 8), f32ToBf16(randn(65 * 16)), f32ToBf16(randn(16 * 8)), 1, 1, 65, 8, 16, false, true, 16, 16, 8, 0, 0, 0, 1, 0, false, 1], [0], 1e-4, "65 rows: cuBLAS");
    assert.equal(be.gemmStats().skinny - before, calls, "65 rows are not the skinny kernel's");
  } finally {
    be.setSkinnyGemm(false);
    be.setGemmMode("exact");
  }
});

test("cuda: rms_norm forward/backward", { skip }, () => {
  for (const [N, C, offset, withW] of [[33, 64, 0, true], [7, 896, 1, true], [19, 16, 0, false]] as const) {
    const x = randn(N * C), w = withW ? randn(C) : null, dy = randn(N * C);
    both("rms_norm_forward", [new Float32Array(N * C), new Float32Array(N), x, w, N, C, 1e-6, offset], [0, 1]);
    both("rms_norm_forward", [new Float32Array(N * C), new Float32Array(N), x, w, N, C, 1e-6, offset, new Uint16Array(N * C), 1], [0, 1, 8], 1e-4, "rms_norm_forward + bf16 copy");
    const rstd = new Float32Array(N);
    cpu.rms_norm_forward(new Float32Array(N * C), rstd, x, w, N, C, 1e-6, offset);
    both("rms_norm_backward", [randn(N * C), withW ? randn(C) : null, dy, x, rstd, w, N, C, offset], withW ? [0, 1] : [0]);
  }
});

test("cuda: rope forward and inverse, full and partial rotary", { skip }, () => {
  for (const [N, H, D, rot] of [[21, 4, 64, 64], [9, 3, 96, 32]] as const) {
    const x = randn(N * H * D), cs = randn(N * rot / 2), sn = randn(N * rot / 2);
    for (const inv of [false, true]) both("rope_forward", [new Float32Array(N * H * D), x, cs, sn, N, H, D, rot, inv], [0], 1e-4, `rope inverse=${inv}`);
    const x2 = randn(N * 2 * D); // keys beside the queries, one launch
    for (const inv of [false, true])
      both("rope_forward", [new Float32Array(N * H * D), x, cs, sn, N, H, D, rot, inv, new Float32Array(N * 2 * D), x2, 2], [0, 9], 1e-4, `rope pair inverse=${inv}`);
  }
});

test("cuda: glu forward/backward (silu, gelu_tanh)", { skip }, () => {
  const n = 10007;
  for (const act of [0, 1]) {
    const g = randn(n, 3), u = randn(n);
    both("glu_forward", [new Float32Array(n), g, u, n, act], [0]);
    both("glu_forward", [new Float32Array(n), g, u, n, act, new Uint16Array(n), 1], [0, 5], 1e-4, "glu_forward + bf16 copy");
    both("glu_backward", [randn(n), randn(n), randn(n), g, u, n, act], [0, 1]);
  }
});

test("cuda: the decode path's fused kernels (add_rms_norm, glu_lora, qkv_rope_cache) with LoRA terms and down-projections", { skip }, () => {
  // a LoRA term's five arguments: t (its columns first, rows at stride ldt), B [out, r], ldt, r, scale
  const term = (M: number, out: number, r: number, ldt: number, col: number, sc: number): Arg[] => {
    const t = randn(M * ldt);
    return [t.subarray(col), randn(out * r), ldt, r, sc];
  };
  const none: Arg[] = [null, null, 0, 0, 0];
  // add_rms_norm: the incoming term from its t, from a source row and A (t computed in the kernel), or none; the
  // outgoing t = y Aoutᵀ or none
  // (parts: the incoming t in that many partial sums side by side, as glu_lora makes them)
  for (const [M, C, r, ldt, col, ldAdd, offset, withW, Kin, Rout, parts] of [[5, 896, 16, 48, 16, 0, 0, true, 0, 48, 1], [3, 64, 3, 7, 2, 80, 1, true, 40, 0, 1],
    [2, 24, 0, 0, 0, 24, 0, false, 0, 5, 1], [4, 1536, 16, 0, 0, 0, 0, true, 1536, 32, 1], [6, 896, 16, 3 * 16 + 5, 5, 0, 0, true, 0, 0, 3],
    [3, 64, 5, 38 * 5, 0, 0, 0, true, 0, 16, 38]] as const) {
    const lo = !r ? none : Kin ? [null, randn(C * r), 0, r, 0.7] : term(M, C, r, ldt, col, 0.7);
    const src: Arg[] = r && Kin ? [randn(M * Kin), Kin, randn(r * Kin), Kin] : [null, 0, null, 0];
    const args: Arg[] = [new Float32Array(M * C), new Uint16Array(M * C), 1, randn(M * C), ldAdd ? randn(M * ldAdd) : null, ldAdd, ...lo, ...src,
      withW ? randn(C) : null, M, C, 1e-6, offset, Rout ? new Float32Array(M * Rout) : null, Rout ? randn(Rout * C, 0.1) : null, Rout, parts];
    both("add_rms_norm", args, Rout ? [0, 1, 3, 20] : [0, 1, 3], 1e-4, `add_rms_norm M=${M} C=${C} r=${r}${Kin ? " from its source" : ""} Rout=${Rout} parts=${parts}`);
  }
  // Rout: the outgoing down-projection in partial sums over blocks of 128 columns [M, ⌈I/128⌉, Rout] (300: 3 blocks,
  // the last partial; 37 rows: 3 blocks of 16 rows, the last partial)
  for (const act of [0, 1])
    for (const [M, I, r, withG, Rout] of [[37, 300, 16, true, 16], [5, 64, 5, false, 0], [20, 4864, 16, true, 7]] as const) {
      const t = randn(M * 2 * r), nb = Math.ceil(I / 128);
      const lg: Arg[] = withG ? [t, randn(I * r), 2 * r, r, 2] : none, lu: Arg[] = [t.subarray(r), randn(I * r), 2 * r, r, 0.5];
      both("glu_lora", [new Float32Array(M * I), new Uint16Array(M * I), 1, randn(M * I, 2), randn(M * I), I, ...lg, ...lu, M, I, act,
        Rout ? new Float32Array(M * nb * Rout) : null, Rout ? randn(Rout * I, 0.1) : null, Rout], Rout ? [0, 1, 19] : [0, 1], 1e-4,
        `glu_lora act=${act} M=${M} I=${I} Rout=${Rout}`);
    }
  for (const [M, Hq, Hkv, D, rot, bf16, norms, r] of [[6, 4, 2, 64, 64, false, true, 4], [3, 3, 1, 96, 32, true, false, 5], [4, 2, 2, 16, 16, false, true, 0]] as const) {
    const cap = 3 * M, rows = Int32Array.from({ length: M }, (_, i) => (i * 7 + 2) % cap), ldt = 3 * Math.max(r, 1);
    const cache = () => (bf16 ? new Uint16Array(cap * Hkv * D) : randn(cap * Hkv * D));
    const t = randn(M * ldt);
    const lq: Arg[] = r ? [t, randn(Hq * D * r), ldt, r, 1.5] : none, lk: Arg[] = r && norms ? [t.subarray(r), randn(Hkv * D * r), ldt, r, 1.5] : none;
    const lv: Arg[] = r ? [t.subarray(2 * r), randn(Hkv * D * r), ldt, r, 1.5] : none;
    both("qkv_rope_cache", [new Float32Array(M * Hq * D), cache(), cache(), bf16 ? 1 : 0, rows, randn(M * Hq * D), Hq * D, randn(M * Hkv * D),
      randn(M * Hkv * D), Hkv * D, ...lq, ...lk, ...lv, norms ? randn(D) : null, norms ? randn(D) : null, 1e-6, 0, randn(M * rot / 2),
      randn(M * rot / 2), rot, M, Hq, Hkv, D], [0, 1, 2], 1e-4, `qkv_rope_cache D=${D} rot=${rot} bf16=${bf16} norms=${norms} r=${r}`);
  }
});

// qkv_attention_decode (qkv_rope_cache + decode attention in one kernel on CUDA), with a block per query head and
// (setDecodeGroup) with a block per kv group: B sequences of S keys in caches of capacity cap; this step's key at
// position jnew (S - 1 as in an eager step, or inside S as in a DecodeStep, whose later slots are masked); some
// earlier keys masked; windows, softcap, bf16 caches, GQA groups of 1 … 8, head dims 16 … 128
test("cuda: qkv_attention_decode by query head and by kv group", { skip }, () => {
  const none: Arg[] = [null, null, 0, 0, 0];
  const be = cudaBackend();
  for (const group of [false, true]) {
    be.setDecodeGroup(group);
    try {
      for (const [B, Hq, Hkv, D, rot, bf16, norms, r, cap, S, jnew, window, softcap] of [[3, 4, 2, 64, 64, false, true, 4, 10, 7, 6, 0, 0],
        [2, 6, 2, 96, 32, true, false, 5, 9, 9, 5, 4, 30], [4, 2, 2, 16, 16, false, false, 0, 6, 5, 4, 0, 0], [2, 8, 1, 128, 128, true, true, 16, 40, 40, 33, 0, 0],
        [3, 3, 3, 40, 20, false, false, 3, 5, 5, 2, 2, 0], [2, 14, 2, 64, 64, true, false, 16, 300, 300, 250, 0, 0],
        [1, 12, 2, 128, 128, true, false, 16, 270, 270, 200, 0, 0]] as const) {
        const rows = Int32Array.from({ length: B }, (_, b) => b * cap + jnew), ldt = 3 * Math.max(r, 1);
        const cache = () => (bf16 ? f32ToBf16(randn(B * cap * Hkv * D)) : randn(B * cap * Hkv * D));
        const mask = Int32Array.from({ length: B * S }, (_, i) => { const j = i % S; return j > jnew ? 0 : j === jnew ? 1 : (i * 7) % 5 === 0 ? 0 : 1; });
        const t = randn(B * ldt);
        const lq: Arg[] = r ? [t, randn(Hq * D * r), ldt, r, 1.5] : none, lk: Arg[] = r ? [t.subarray(r), randn(Hkv * D * r), ldt, r, 1.5] : none;
        const lv: Arg[] = r ? [t.subarray(2 * r), randn(Hkv * D * r), ldt, r, 1.5] : none;
        both("qkv_attention_decode", [new Float32Array(B * Hq * D), new Uint16Array(B * Hq * D), 1, cache(), cache(), bf16 ? 1 : 0, rows,
          randn(B * Hq * D), Hq * D, randn(B * Hkv * D), randn(B * Hkv * D), Hkv * D, ...lq, ...lk, ...lv, norms ? randn(D) : null, norms ? randn(D) : null,
          1e-6, 0, randn(B * rot / 2), randn(B * rot / 2), rot, B, Hq, Hkv, D, mask, S, cap * Hkv * D, 1 / Math.sqrt(D), window, softcap],
        [0, 1, 3, 4], 1e-4, `qkv_attention_decode${group ? " by kv group" : ""} D=${D} Hq=${Hq} Hkv=${Hkv} bf16=${bf16} norms=${norms} r=${r} S=${S} jnew=${jnew} window=${window} softcap=${softcap}`);
      }
    } finally {
      be.setDecodeGroup(false);
    }
  }
});

test("cuda: embedding forward (f32/bf16/f16, bad ids → NaN) and backward (repeated ids), scatter_rows, copy_rows", { skip }, () => {
  const V = 50, C = 24, N = 40;
  const table = randn(V * C), ids = randi(N, V);
  ids[3] = V + 2;
  both("embedding_forward", [new Float32Array(N * C), ids, table, 0, N, C, V], [0]);
  both("embedding_forward", [new Float32Array(N * C), ids, f32ToBf16(table), 1, N, C, V], [0]);
  both("embedding_forward", [new Float32Array(N * C), ids, f32ToF16(table), 2, N, C, V], [0]);
  const ok = randi(N, 7);
  both("embedding_backward", [randn(V * C), randn(N * C), ok, N, C], [0]);
  // distinct rows (a KV cache's: one per sequence), one table and two
  const rows = Int32Array.from({ length: 9 }, (_, i) => (i * 5 + 3) % V);
  both("scatter_rows", [randn(V * C), randn(9 * C), rows, 9, C], [0], 0);
  both("scatter_rows", [randn(V * C), randn(9 * C), rows, 9, C, randn(V * C), randn(9 * C)], [0, 5], 0);
  both("scatter_rows", [new Uint16Array(V * C), randn(9 * C), rows, 9, C, new Uint16Array(V * C), randn(9 * C), 1], [0, 5], 0, "scatter_rows into bf16");
  // copy_rows: repeated and reordered source rows (a fan-out, a compaction), f32 and bf16 elements, one tensor and two
  const pairs = Int32Array.from({ length: 2 * 12 }, (_, i) => (i % 2 === 0 ? (i / 2) * 3 + 1 : [4, 4, 0, 9, 2, 2, 2, 7, 1, 5, 5, 3][(i - 1) / 2]));
  both("copy_rows", [randn(V * C), randn(10 * C), pairs, 12, C, 4], [0], 0, "copy_rows f32");
  both("copy_rows", [randn(V * C), randn(10 * C), pairs, 12, C, 4, randn(V * C), randn(10 * C)], [0, 6], 0, "copy_rows f32, two tensors");
  both("copy_rows", [f32ToBf16(randn(V * C)), f32ToBf16(randn(10 * C)), pairs, 12, C, 2, f32ToBf16(randn(V * C)), f32ToBf16(randn(10 * C))], [0, 6], 0,
    "copy_rows bf16, two tensors");
  both("softcap", [new Float32Array(4099), randn(4099, 20), 30, 4099], [0], 1e-5, "softcap");
  // repetition penalty in place: distinct tokens per row, -1 pads, both signs
  both("repetition_penalty", [randn(3 * 500), Int32Array.from([5, 7, 499, -1, 0, 3, -1, -1, 250, 251, 252, 1]), 3, 500, 4, 1.3], [0], 0, "repetition_penalty");
  // LoRA dropout masks: the same integer hash on both backends, so the very same masks
  for (const [sd, salt] of [[7, 5], [-123456789, 4099]]) both("dropout_mask", [new Float32Array(10007), Int32Array.of(sd), salt, 10007, 0.7, 1 / 0.7], [0], 0, `dropout_mask ${sd} ${salt}`);
});

test("cuda: binary, scale, sum_rows, copy2d", { skip }, () => {
  const n = 6000, nb = 40;
  for (const op of [0, 1, 2]) {
    both("binary", [new Float32Array(n), randn(n), randn(n), n, n, op], [0]);
    both("binary", [new Float32Array(n), randn(n), randn(nb), n, nb, op], [0], 1e-4, `binary broadcast op=${op}`);
  }
  both("scale", [new Float32Array(n), randn(n), -0.37, n], [0]);
  for (const acc of [false, true]) {
    both("sum_rows", [randn(nb), randn(n), n / nb, nb, acc], [0], 1e-4, `sum_rows acc=${acc}`);
    both("sum_rows", [randn(1), randn(n), n, 1, acc], [0], 1e-4, `sum all acc=${acc}`);
    both("sum_rows", [randn(n / 2), randn(n), 2, n / 2, acc], [0], 1e-4, `sum_rows few rows acc=${acc}`);
    both("copy2d", [randn(20 * 50), randn(20 * 40), 20, 30, 50, 40, acc], [0], 1e-4, `copy2d acc=${acc}`);
  }
});

test("cuda: adamw, sum_squares, grpo_loss (every kind, token and sequence level, masks, KL)", { skip }, () => {
  const n = 5000;
  both("adamw", [randn(n), randn(n, 0.1), Float32Array.from(randn(n), (x) => x * x), randn(n), n, 1e-3, 0.9, 0.999, 1e-8, 0.01, 3], [0, 1, 2]);
  both("sum_squares", [randn(n), n], []);
  // 20 rows of 250 tokens, the row's advantage on each of its tokens, padding (w = 0) at the ends of rows
  const rows = 20, T = n / rows;
  const logp = randn(n, 0.5), old = Float32Array.from(logp, (x) => x + 0.3 * Math.sin(x * 17)), ref = randn(n, 0.5);
  const rowAdv = randn(rows), adv = Float32Array.from({ length: n }, (_, i) => rowAdv[Math.floor(i / T)]);
  const w = Float32Array.from({ length: n }, (_, i) => (i % T < T - (Math.floor(i / T) * 7) % 60 ? 0.01 : 0));
  const entropy = Float32Array.from(randn(n), (x) => Math.abs(x) * 2);
  const base = { epsilonLow: 0.2, epsilonHigh: 0.28, delta: 0, beta: 0 };
  const variants: [string, object][] = [
    ["clip", base], ["clip delta beta", { ...base, delta: 1.5, beta: 0.04 }], ["gspo", { ...base, seq: 1 }],
    ["gspo bias-corrected KL", { ...base, seq: 1, beta: 0.04, biasKl: 1 }], ["cispo", { ...base, kind: 1, epsilonHigh: 1.1, beta: 0.04 }],
    ["cispo seq", { ...base, kind: 1, seq: 1, epsilonHigh: 1.05 }], ["sapo", { ...base, kind: 2, sapoPos: 1, sapoNeg: 1.05 }],
    ["entropy mask", { ...base, entropyQuantile: 0.2 }], ["off-policy mask", { ...base, offPolicy: 1, offThreshold: 0.01, beta: 0.04 }],
  ];
  for (const [name, v] of variants) {
    both("grpo_loss", [new Float32Array(n), logp, old, ref, adv, w, entropy, rows, T, v, 0.5], [0], 1e-4, `grpo_loss ${name}`);
    both("grpo_loss", [null, logp, old, ref, adv, w, entropy, rows, T, v, 1], [], 1e-4, `grpo_loss value ${name}`);
  }
});

test("cuda: attention forward/backward (GQA, left padding, window, softcap, head dims 16..256)", { skip }, () => {
  const cases = [
    { B: 2, T: 37, Hq: 4, Hkv: 2, D: 16, window: 0, softcap: 0 },
    { B: 2, T: 70, Hq: 6, Hkv: 2, D: 64, window: 9, softcap: 0 },
    { B: 1, T: 50, Hq: 2, Hkv: 1, D: 80, window: 0, softcap: 30 },
    { B: 1, T: 45, Hq: 4, Hkv: 4, D: 128, window: 0, softcap: 0 },
    { B: 1, T: 33, Hq: 2, Hkv: 1, D: 256, window: 16, softcap: 50 },
  ];
  for (const c of cases) {
    const { B, T, Hq, Hkv, D, window, softcap } = c;
    const S = T, scale = 1 / Math.sqrt(D);
    const q = randn(B * T * Hq * D), k = randn(B * S * Hkv * D), v = randn(B * S * Hkv * D), dout = randn(B * T * Hq * D);
    const mask = new Int32Array(B * S).fill(1);
    for (let j = 0; j < 5; j++) mask[(B - 1) * S + j] = 0; // left padding of the last row: its first queries see nothing
    const label = `attention D=${D} window=${window} softcap=${softcap}`;
    both("attention_forward", [new Float32Array(B * T * Hq * D), new Float32Array(B * Hq * T), q, k, v, mask, B, T, S, Hq, Hkv, D, S * Hkv * D, scale, window, softcap], [0, 1], 1e-4, label);
    both("attention_forward", [new Float32Array(B * T * Hq * D), null, q, k, v, mask, B, T, S, Hq, Hkv, D, S * Hkv * D, scale, window, softcap, false,
      new Uint16Array(B * T * Hq * D), 1], [0, 17], 1e-4, `${label} + bf16 copy`);
    const o = new Float32Array(B * T * Hq * D), lse = new Float32Array(B * Hq * T);
    cpu.attention_forward(o, lse, q, k, v, mask, B, T, S, Hq, Hkv, D, S * Hkv * D, scale, window, softcap);
    const n = B * T * Hq * D, m = B * S * Hkv * D;
    both("attention_backward", [new Float32Array(n), new Float32Array(m), new Float32Array(m), dout, o, lse, q, k, v, mask, B, T, S, Hq, Hkv, D, scale, window, softcap], [0, 1, 2], 1e-4, `${label} backward`);
  }
  // KV cache: T new queries over S valid keys in a buffer of capacity cap (batch stride cap * Hkv * D)
  const B = 3, T = 4, S = 29, cap = 40, Hq = 4, Hkv = 2, D = 64;
  const q = randn(B * T * Hq * D), k = randn(B * cap * Hkv * D), v = randn(B * cap * Hkv * D);
  const mask = Int32Array.from({ length: B * S }, (_, i) => (i % S < 3 && i >= S ? 0 : 1));
  both("attention_forward", [new Float32Array(B * T * Hq * D), new Float32Array(B * Hq * T), q, k, v, mask, B, T, S, Hq, Hkv, D, cap * Hkv * D, 0.125, 0, 0], [0, 1], 1e-4, "attention with KV cache stride");
  both("attention_forward", [new Float32Array(B * T * Hq * D), new Float32Array(B * Hq * T), q, f32ToBf16(k), f32ToBf16(v), mask, B, T, S, Hq, Hkv, D, cap * Hkv * D, 0.125, 0, 0,
    false, null, 1, 1], [0, 1], 1e-4, "attention with a bf16 KV cache");
  // decode (T = 1, its own kernel): more keys than one pass of its warps, padding, window, softcap, odd head dims
  // (D = 18: bf16 keys read one at a time; D = 20: 4 at a time with rows 40 bytes apart; keys 32..95 of row 0 masked
  // where S ≥ 300: whole 32-key groups skipped between visible ones)
  for (const [S1, D1, window, softcap] of [[1, 64, 0, 0], [300, 64, 0, 0], [700, 128, 0, 0], [611, 36, 100, 0], [290, 80, 0, 30], [333, 256, 64, 50],
    [301, 18, 0, 0], [310, 20, 0, 0]]) {
    const B1 = 3, cap1 = S1 + 5, Hq1 = 6, Hkv1 = 2;
    const q1 = randn(B1 * Hq1 * D1), k1 = randn(B1 * cap1 * Hkv1 * D1, 2), v1 = randn(B1 * cap1 * Hkv1 * D1);
    // left padding on rows 1, 2; a masked stretch in row 0
    const mask1 = Int32Array.from({ length: B1 * S1 }, (_, i) => ((i >= S1 && i % S1 < 7) || (S1 >= 300 && i >= 32 && i < 96) ? 0 : 1));
    if (S1 === 1) mask1[2] = 0; // a row that sees no key: output 0, lse -inf
    both("attention_forward", [new Float32Array(B1 * Hq1 * D1), new Float32Array(B1 * Hq1), q1, k1, v1, mask1, B1, 1, S1, Hq1, Hkv1, D1, cap1 * Hkv1 * D1,
      1 / Math.sqrt(D1), window, softcap], [0, 1], 1e-4, `attention decode S=${S1} D=${D1} window=${window} softcap=${softcap}`);
    both("attention_forward", [new Float32Array(B1 * Hq1 * D1), null, q1, k1, v1, mask1, B1, 1, S1, Hq1, Hkv1, D1, cap1 * Hkv1 * D1,
      1 / Math.sqrt(D1), window, softcap, false, new Uint16Array(B1 * Hq1 * D1), 1], [0, 17], 1e-4, `attention decode S=${S1} D=${D1} + bf16 copy`);
    both("attention_forward", [new Float32Array(B1 * Hq1 * D1), new Float32Array(B1 * Hq1), q1, f32ToBf16(k1), f32ToBf16(v1), mask1, B1, 1, S1, Hq1, Hkv1, D1,
      cap1 * Hkv1 * D1, 1 / Math.sqrt(D1), window, softcap, false, null, 1, 1], [0, 1], 1e-4, `attention decode S=${S1} D=${D1}, bf16 KV cache`);
  }
});

test("cuda: attention on tensor cores (bf16 Q, K, V, P; f32 accumulation) for head dims 64, 96, 128", { skip }, () => {
  // bf16 rounds each of Q, K, V, P, dO, dS to 8 mantissa bits (relative 2^-9 ≈ 2e-3); sums of such products over
  // keys stay within a few 1e-3 of the output scale, so 2e-2 bounds them with margin, and an error above 1e-5 shows
  // the rounding (tensor-core) path ran rather than the f32 kernels.
  cudaBackend().setGemmMode("bf16");
  const cases = [
    { B: 2, T: 150, Hq: 4, Hkv: 2, D: 64, window: 0, softcap: 0 },
    { B: 1, T: 130, Hq: 6, Hkv: 2, D: 128, window: 40, softcap: 0 },
    { B: 2, T: 70, Hq: 3, Hkv: 1, D: 96, window: 0, softcap: 30 },
  ];
  for (const { B, T, Hq, Hkv, D, window, softcap } of cases) {
    const S = T, scale = 1 / Math.sqrt(D);
    const q = randn(B * T * Hq * D), k = randn(B * S * Hkv * D), v = randn(B * S * Hkv * D), dout = randn(B * T * Hq * D);
    const mask = new Int32Array(B * S).fill(1);
    for (let j = 0; j < 9; j++) mask[(B - 1) * S + j] = 0; // left padding of the last row
    // both forward kernels: WMMA (the default) and mma.sync with register fragments
    for (const kernel of ["wmma", "mma"] as const) {
      cudaBackend().setAttentionKernel(kernel);
      const label = `tensor-core attention (${kernel}) D=${D} window=${window} softcap=${softcap}`;
      both("attention_forward", [new Float32Array(B * T * Hq * D), new Float32Array(B * Hq * T), q, k, v, mask, B, T, S, Hq, Hkv, D, S * Hkv * D, scale, window, softcap, true],
        [0, 1], 2e-2, label, 1e-5);
      both("attention_forward", [new Float32Array(B * T * Hq * D), null, q, k, v, mask, B, T, S, Hq, Hkv, D, S * Hkv * D, scale, window, softcap, true,
        new Uint16Array(B * T * Hq * D), 1], [0, 17], 2e-2, `${label} + bf16 copy`, 1e-5);
      both("attention_forward", [new Float32Array(B * T * Hq * D), new Float32Array(B * Hq * T), q, f32ToBf16(k), f32ToBf16(v), mask, B, T, S, Hq, Hkv, D, S * Hkv * D,
        scale, window, softcap, true, null, 1, 1], [0, 1], 2e-2, `${label}, bf16 keys/values`, 1e-5);
      // a prefill after cached keys: T new rows over S = 30 + T keys in a cache of capacity S + 11 (batch stride)
      const Tn = T - 30, cap = S + 11, kc = randn(B * cap * Hkv * D), vc = randn(B * cap * Hkv * D);
      const mc = Int32Array.from({ length: B * S }, (_, i) => mask[i]);
      both("attention_forward", [new Float32Array(B * Tn * Hq * D), new Float32Array(B * Hq * Tn), randn(B * Tn * Hq * D), f32ToBf16(kc), f32ToBf16(vc), mc, B, Tn, S, Hq, Hkv, D,
        cap * Hkv * D, scale, window, softcap, true, null, 1, 1], [0, 1], 2e-2, `${label}, after 30 cached keys`, 1e-5);
    }
    cudaBackend().setAttentionKernel("wmma");
    const label = `tensor-core attention D=${D} window=${window} softcap=${softcap}`;
    const o = new Float32Array(B * T * Hq * D), lse = new Float32Array(B * Hq * T);
    cpu.attention_forward(o, lse, q, k, v, mask, B, T, S, Hq, Hkv, D, S * Hkv * D, scale, window, softcap);
    const n = B * T * Hq * D, m = B * S * Hkv * D;
    for (const kernel of ["wmma", "mma"] as const) {
      cudaBackend().setAttentionKernel(kernel);
      both("attention_backward", [new Float32Array(n), new Float32Array(m), new Float32Array(m), dout, o, lse, q, k, v, mask, B, T, S, Hq, Hkv, D, scale, window, softcap, true],
        [0, 1, 2], 2e-2, `${label} backward (${kernel})`, 1e-5);
    }
    cudaBackend().setAttentionKernel("wmma");
  }
  // the exact GEMM mode keeps attention exact too
  cudaBackend().setGemmMode("exact");
  const B = 1, T = 70, Hq = 2, Hkv = 1, D = 64, q = randn(T * Hq * D), k = randn(T * D), v = randn(T * D);
  both("attention_forward", [new Float32Array(T * Hq * D), new Float32Array(Hq * T), q, k, v, null, B, T, T, Hq, Hkv, D, T * D, 0.125, 0, 0, true], [0, 1], 1e-4, "attention lowp in exact mode");
  cudaBackend().setGemmMode("bf16");
});

test("cuda: lm_logp forward/backward (f32 with dW and softcap; bf16 weights; several chunks)", { skip }, () => {
  const be = cudaBackend();
  be.setGemmMode("exact");
  {
    const N = 50, C = 32, V = 300;
    const h = randn(N * C), W = randn(V * C, 0.3), y = randi(N, V), g = randn(N);
    for (const cap of [0, 5]) {
      both("lm_logp_forward", [new Float32Array(N), new Float32Array(N), new Float32Array(N), h, W, 0, y, N, C, V, 1 / 0.7, cap], [0, 1, 2], 1e-4, `lm_logp softcap=${cap}`);
      const lse = new Float32Array(N);
      cpu.lm_logp_forward(new Float32Array(N), lse, null, h, W, 0, y, N, C, V, 1 / 0.7, cap);
      both("lm_logp_backward", [randn(N * C), randn(V * C), g, lse, h, W, 0, y, N, C, V, 1 / 0.7, cap], [0, 1], 1e-4, `lm_logp backward softcap=${cap}`);
    }
  }
  const N = 2000, C = 32, V = 70000; // 2^27 / V = 1917 rows per chunk → two chunks
  const h = randn(N * C), W = randn(V * C, 0.3), y = randi(N, V), g = randn(N);
  const Wb = f32ToBf16(W);
  const lse = new Float32Array(N);
  cpu.lm_logp_forward(new Float32Array(N), lse, null, h, Wb, 1, y, N, C, V, 1, 0);
  for (const mode of ["exact", "bf16"] as const) {
    be.setGemmMode(mode);
    const tol = mode === "exact" ? 1e-4 : 2e-2;
    both("lm_logp_forward", [new Float32Array(N), new Float32Array(N), new Float32Array(N), h, Wb, 1, y, N, C, V, 1, 0], [0, 1, 2], tol, `lm_logp bf16 W ${mode}`);
    both("lm_logp_backward", [new Float32Array(N * C), null, g, lse, h, Wb, 1, y, N, C, V, 1, 0], [0], tol, `lm_logp backward bf16 W ${mode}`);
  }
  be.setGemmMode("exact");
});

test("cuda: sample_rows equals the CPU kernel (greedy, temperature, top-k, top-p, min-p; V up to 262144; several launches)", { skip }, (t) => {
  const be = cudaBackend();
  // both kernels compute p = f32(exp((x − max) / T)) in double and sum in double, so tokens agree exactly except
  // where u·S falls within ~1e-16 of a cumulative boundary (allowed once per case, never seen in practice)
  const run = (logits: Float32Array, u: Float32Array, B: number, V: number, args: number[]) => {
    const ct = new Int32Array(B), cl = new Float32Array(B);
    cpu.sample_rows(ct, cl, logits, u, B, V, ...args);
    const dl = be.alloc("f32", B * V, false), du = be.alloc("f32", B, false), dt = be.alloc("i32", B, false), dp = be.alloc("f32", B, false);
    be.write(dl, logits); be.write(du, u);
    (be.k as any).sample_rows(dt, dp, dl, du, B, V, ...args); // eslint-disable-line @typescript-eslint/no-explicit-any
    const gt = be.read(dt, "i32", B) as Int32Array, gl = be.read(dp, "f32", B) as Float32Array;
    for (const p of [dl, du, dt, dp]) be.free(p, "f32", 0);
    return { ct, cl, gt, gl };
  };
  const PARAMS = [[0, 0, 1, 0], [1, 0, 1, 0], [0.7, 50, 1, 0], [1, 1, 1, 0], [1, 0, 0.9, 0], [0.8, 0, 0.5, 0], [1, 0, 1, 0.05],
    [0.9, 40, 0.95, 0.02], [1.2, 1000, 0.99, 0.001]];
  // V = 262144 with 260 rows: 2^26 / V = 256 rows per launch → two launches
  for (const [V, B] of [[8, 64], [1000, 64], [151936, 64], [262144, 260]]) {
    const logits = randn(B * V, 3), u = Float32Array.from({ length: B }, rand);
    for (const args of (V === 262144 ? [PARAMS[0], PARAMS[7]] : PARAMS)) {
      const { ct, cl, gt, gl } = run(logits, u, B, V, args);
      let mismatches = 0;
      for (let b = 0; b < B; b++) {
        if (gt[b] !== ct[b]) { mismatches++; continue; }
        assert.ok(Math.abs(gl[b] - cl[b]) <= 1e-5 * Math.max(1, Math.abs(cl[b])), `sample_rows V=${V} [${args}] row ${b}: logprob ${gl[b]} vs ${cl[b]}`);
      }
      assert.ok(mismatches <= 1, `sample_rows V=${V} [${args}]: ${mismatches} of ${B} tokens differ`);
    }
  }
  // time per call at the Qwen2.5 shape (B = 64, V = 151936)
  const B = 64, V = 151936;
  const dl = be.alloc("f32", B * V, false), du = be.alloc("f32", B, false), dt = be.alloc("i32", B, false), dp = be.alloc("f32", B, false);
  be.write(dl, randn(B * V, 3)); be.write(du, Float32Array.from({ length: B }, rand));
  // per-call times on a GPU only (the emulator's mean nothing and take seconds)
  for (const args of emulated ? [] : [[1, 0, 1, 0], [1, 0, 0.95, 0], [0.9, 50, 0.95, 0.02]]) {
    (be.k as any).sample_rows(dt, dp, dl, du, B, V, ...args); // eslint-disable-line @typescript-eslint/no-explicit-any
    be.synchronize();
    const t0 = performance.now(), reps = 20;
    for (let i = 0; i < reps; i++) (be.k as any).sample_rows(dt, dp, dl, du, B, V, ...args); // eslint-disable-line @typescript-eslint/no-explicit-any
    be.synchronize();
    t.diagnostic(`sample_rows B=${B} V=${V} [T, topK, topP, minP] = [${args}]: ${((performance.now() - t0) / reps).toFixed(3)} ms/call`);
  }
  for (const p of [dl, du, dt, dp]) be.free(p, "f32", 0);
});

test("cuda: allocator reuses freed blocks and reports memory", { skip }, () => {
  const be = cudaBackend();
  const before = be.memory();
  const p = be.alloc("f32", 1 << 20);
  const mid = be.memory();
  assert.equal(mid.buffers, before.buffers + 1);
  assert.ok(mid.allocated >= before.allocated + 4 * (1 << 20));
  be.free(p, "f32", 1 << 20);
  const q = be.alloc("f32", 1 << 20);
  assert.equal(q, p, "a freed block of the same size is handed out again");
  assert.deepEqual(Array.from(be.read(q, "f32", 4)), [0, 0, 0, 0], "alloc returns zeroed memory");
  be.free(q, "f32", 1 << 20);
  assert.equal(be.memory().allocated, before.allocated);
});

test("cuda: a block freed while a graph is captured is not handed out while the graph can still write it", { skip }, () => {
  const be = cudaBackend();
  const n = 4096, a = be.alloc("f32", n), pre = be.alloc("f32", n);
  be.write(a, new Float32Array(n).fill(1));
  // the graph writes `pre`, which was allocated before the capture and is freed during it
  const { graph } = be.captureGraph(() => {
    be.k.scale(pre, a, 2, n);
    be.free(pre, "f32", n);
  });
  const other = be.alloc("f32", n); // the same size: the allocator's first candidate would be pre's block
  be.write(other, new Float32Array(n).fill(7));
  be.launchGraph(graph);
  assert.deepEqual(Array.from(be.read(other, "f32", 4)), [7, 7, 7, 7], "the replay did not write into a tensor allocated after the capture");
  be.destroyGraph(graph);
  be.free(other, "f32", n);
  be.free(a, "f32", n);
});
