// Autograd: every op's backward agrees with central finite differences of a float64-accumulated objective
// L = Σ out ⊙ R (R random), in float32 with a tight relative tolerance.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fromHost, backward, scope, sum, mul, add, sub, scale, matmul, rmsNorm, rope, ropePair, glu, embedding, attention, tokenLogprobs, grpoLoss, sliceCols, reshape, loraLinear, checkpoint, dropoutMask, type Tensor } from "../src/engine/index.ts";
import { Xoshiro } from "../src/engine/rng.ts";

const rng = new Xoshiro(7);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => {
  const u = Math.max(rng.next(), 1e-12), v = rng.next();
  return s * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
});

/**
 * Check d(Σ f(inputs) ⊙ R)/d(input) for each input against finite differences.
 * inputs: host arrays with shapes; f builds the output from tensors.
 */
function gradcheck(name: string, inputs: { data: Float32Array; shape: number[] }[], f: (ts: Tensor[]) => Tensor, tol = 2e-3, eps = 1e-3) {
  let R: Float32Array | null = null;
  const objective = (datas: Float32Array[]): number => scope(() => {
    const out = f(datas.map((d, i) => fromHost(d, inputs[i].shape))).f32();
    R ??= randn(out.length);
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i] * R[i];
    return s;
  });
  objective(inputs.map((x) => x.data));
  const analytic = scope(() => {
    const ts = inputs.map((x) => { const t = fromHost(x.data, x.shape); t.requiresGrad = true; return t; });
    const out = f(ts);
    const loss = sum(mul(out, fromHost(R!, out.shape)));
    backward(loss);
    return ts.map((t) => t.grad!.f32());
  });
  inputs.forEach((x, k) => {
    let num2 = 0, den2 = 0;
    for (let i = 0; i < x.data.length; i++) {
      const plus = inputs.map((y) => Float32Array.from(y.data)), minus = inputs.map((y) => Float32Array.from(y.data));
      plus[k][i] += eps;
      minus[k][i] -= eps;
      const g = (objective(plus) - objective(minus)) / (2 * eps);
      num2 += (g - analytic[k][i]) ** 2;
      den2 += g * g;
    }
    const rel = Math.sqrt(num2) / Math.max(Math.sqrt(den2), 1e-12);
    assert.ok(rel < tol, `${name}: input ${k} relative gradient error ${rel.toExponential(2)}`);
  });
}

test("elementwise ops: add, sub, mul (with trailing broadcast), scale, reshape, sliceCols", () => {
  const a = { data: randn(12), shape: [3, 4] }, b = { data: randn(4), shape: [4] }, c = { data: randn(12), shape: [3, 4] };
  gradcheck("add", [a, b], ([x, y]) => add(x, y));
  gradcheck("sub", [a, c], ([x, y]) => sub(x, y));
  // same shapes: the backward hands its gradient buffer on to one input (moveTo) and copies it for the other
  gradcheck("add, same shapes", [a, c], ([x, y]) => add(x, y));
  gradcheck("add, same input twice", [a], ([x]) => add(x, x));
  gradcheck("add, only b needs a gradient", [c], ([y]) => add(fromHost(a.data, a.shape), y));
  gradcheck("sub of a broadcast", [a, b], ([x, y]) => sub(x, y));
  gradcheck("reshape chain", [a], ([x]) => reshape(reshape(x, [6, 2]), [2, 3, 2]));
  gradcheck("mul broadcast", [a, b], ([x, y]) => mul(x, y));
  gradcheck("scale", [a], ([x]) => scale(x, -1.7));
  gradcheck("reshape+sliceCols", [a], ([x]) => sliceCols(reshape(x, [2, 6]), 2, 3));
});

test("matmul: plain, transposed operands, batched with a broadcast weight", () => {
  for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
    const A = { data: randn(15), shape: tA ? [5, 3] : [3, 5] }, B = { data: randn(20), shape: tB ? [4, 5] : [5, 4] };
    gradcheck(`matmul tA=${tA} tB=${tB}`, [A, B], ([x, y]) => matmul(x, y, { transA: tA, transB: tB }));
  }
  gradcheck("batched, broadcast B", [{ data: randn(2 * 3 * 5), shape: [2, 3, 5] }, { data: randn(20), shape: [4, 5] }], ([x, y]) => matmul(x, y, { transB: true }));
  gradcheck("batched", [{ data: randn(2 * 3 * 5), shape: [2, 3, 5] }, { data: randn(2 * 5 * 4), shape: [2, 5, 4] }], ([x, y]) => matmul(x, y));
});

test("matmul forward matches a direct product on sizes that cross the GEMM's blocks", () => {
  const M = 131, N = 270, K = 300;
  const A = randn(M * K), B = randn(K * N);
  const got = scope(() => matmul(fromHost(A, [M, K]), fromHost(B, [K, N])).f32());
  let worst = 0;
  for (let i = 0; i < M; i += 7) for (let j = 0; j < N; j += 5) {
    let s = 0;
    for (let k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];
    worst = Math.max(worst, Math.abs(s - got[i * N + j]));
  }
  assert.ok(worst < 1e-3, `max error ${worst}`);
});

test("rmsNorm (plain and Gemma offset), rope (full and partial), glu (silu, gelu_tanh)", () => {
  const x = { data: randn(3 * 8), shape: [3, 8] }, w = { data: randn(8), shape: [8] };
  gradcheck("rmsNorm", [x, w], ([a, b]) => rmsNorm(a, b, 1e-6));
  gradcheck("rmsNorm offset", [x, w], ([a, b]) => rmsNorm(a, b, 1e-6, 1));
  const N = 3, H = 2, D = 8;
  for (const rot of [8, 4]) {
    const ang = randn(N * rot / 2);
    gradcheck(`rope rot=${rot}`, [{ data: randn(N * H * D), shape: [N, H, D] }], ([a]) =>
      rope(a, fromHost(ang.map(Math.cos), [N, rot / 2]), fromHost(ang.map(Math.sin), [N, rot / 2]), rot));
  }
  // queries and keys in one kernel: both outputs used, and only the queries' (the keys need no gradient)
  for (const rot of [8, 4]) {
    const ang = randn(N * rot / 2), cs = () => fromHost(ang.map(Math.cos), [N, rot / 2]), sn = () => fromHost(ang.map(Math.sin), [N, rot / 2]);
    const q = { data: randn(N * 3 * D), shape: [N, 3, D] }, k = { data: randn(N * H * D), shape: [N, H, D] };
    const Rk = randn(N * H * D);
    gradcheck(`ropePair rot=${rot}`, [q, k], ([a, b]) => {
      const [qo, ko] = ropePair(a, b, cs(), sn(), rot);
      return add(scale(qo, 1), sum(mul(ko, fromHost(Rk, [N, H, D]))));
    });
    gradcheck(`ropePair rot=${rot}, keys constant`, [q], ([a]) => ropePair(a, fromHost(k.data, k.shape), cs(), sn(), rot)[0]);
  }
  const g = { data: randn(10), shape: [10] }, u = { data: randn(10), shape: [10] };
  gradcheck("glu silu", [g, u], ([a, b]) => glu(a, b, "silu"));
  gradcheck("glu gelu_tanh", [g, u], ([a, b]) => glu(a, b, "gelu_tanh"));
});

test("embedding gather (repeated ids) and its scatter-add backward", () => {
  const ids = fromHost(Int32Array.from([2, 0, 2, 4]), [4], "i32").keep();
  gradcheck("embedding", [{ data: randn(5 * 3), shape: [5, 3] }], ([t]) => embedding(ids, t));
});

test("attention: GQA, padding mask, sliding window, soft-capping", () => {
  const B = 2, T = 5, Hq = 4, Hkv = 2, D = 4;
  const q = { data: randn(B * T * Hq * D), shape: [B, T, Hq, D] };
  const k = { data: randn(B * T * Hkv * D), shape: [B, T, Hkv, D] };
  const v = { data: randn(B * T * Hkv * D), shape: [B, T, Hkv, D] };
  const mask = fromHost(Int32Array.from([1, 1, 1, 1, 1, 0, 0, 1, 1, 1]), [B, T], "i32").keep();
  for (const extra of [{}, { keyMask: mask }, { window: 2 }, { softcap: 1.5 }, { keyMask: mask, window: 3, softcap: 2 }]) {
    gradcheck(`attention ${JSON.stringify(Object.keys(extra))}`, [q, k, v], ([a, b, c]) => attention(a, b, c, { B, T, Hq, Hkv, D, scale: 0.5, ...extra }));
  }
});

test("fused lm-head log-probs (temperature, soft-cap) and the GRPO token loss", () => {
  const N = 4, C = 6, V = 9;
  const targets = fromHost(Int32Array.from([3, 0, 8, 5]), [N], "i32").keep();
  const h = { data: randn(N * C), shape: [N, C] }, W = { data: randn(V * C), shape: [V, C] };
  gradcheck("tokenLogprobs", [h, W], ([a, b]) => tokenLogprobs(a, b, targets, 0.7).logp);
  gradcheck("tokenLogprobs softcap", [h, W], ([a, b]) => tokenLogprobs(a, b, targets, 1, 3).logp);
  const n = 12;
  const old = fromHost(randn(n, 0.3), [n]).keep(), ref = fromHost(randn(n, 0.3), [n]).keep();
  const adv = fromHost(randn(n), [n]).keep(), w = fromHost(Float32Array.from({ length: n }, (_, i) => (i % 5 === 4 ? 0 : 0.1)), [n]).keep();
  for (const p of [{ delta: 0, beta: 0 }, { delta: 1.2, beta: 0.04 }]) {
    gradcheck(`grpoLoss ${JSON.stringify(p)}`, [{ data: randn(n, 0.3), shape: [n] }], ([lp]) =>
      grpoLoss(lp, old, ref, adv, w, { epsilonLow: 0.2, epsilonHigh: 0.28, ...p }));
  }
});

test("fused linear + LoRA (with bias and a dropout mask) and its hand-written backward", () => {
  const N = 5, inF = 6, outF = 4, r = 2;
  const x = { data: randn(N * inF), shape: [N, inF] }, W = { data: randn(outF * inF), shape: [outF, inF] };
  const b = { data: randn(outF), shape: [outF] }, A = { data: randn(r * inF), shape: [r, inF] }, B = { data: randn(outF * r), shape: [outF, r] };
  gradcheck("loraLinear", [x, W, b, A, B], ([xx, ww, bb, aa, b2]) => loraLinear(xx, ww, bb, { A: aa, B: b2, scale: 1.5 }));
  const mask = fromHost(Float32Array.from({ length: N * inF }, (_, i) => (i % 3 === 0 ? 0 : 1.5)), [N, inF]).keep();
  gradcheck("loraLinear dropout", [x, W, A, B], ([xx, ww, aa, b2]) => loraLinear(xx, ww, null, { A: aa, B: b2, scale: 0.5, mask }));
  // same values as the unfused composition
  const got = scope(() => loraLinear(fromHost(x.data, x.shape), fromHost(W.data, W.shape), fromHost(b.data, b.shape), { A: fromHost(A.data, A.shape), B: fromHost(B.data, B.shape), scale: 1.5 }).f32());
  const want = scope(() => {
    const xx = fromHost(x.data, x.shape);
    const base = add(matmul(xx, fromHost(W.data, W.shape), { transB: true }), fromHost(b.data, b.shape));
    const low = matmul(matmul(xx, fromHost(A.data, A.shape), { transB: true }), fromHost(B.data, B.shape), { transB: true });
    return add(base, scale(low, 1.5)).f32();
  });
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5));
});

test("checkpoint: recomputed backward equals the plain backward, parameters included", () => {
  const w = fromHost(randn(6), [6]).keep();
  w.requiresGrad = true;
  const block = (t: Tensor) => glu(rmsNorm(t, w, 1e-6), t, "silu");
  gradcheck("checkpoint", [{ data: randn(18), shape: [3, 6] }], ([t]) => checkpoint(block, t));
  const x = randn(18), R = fromHost(randn(18), [3, 6]).keep();
  const grads = (useCk: boolean) => scope(() => {
    w.grad?.dispose(); w.grad = null;
    const t = fromHost(x, [3, 6]);
    t.requiresGrad = true;
    backward(sum(mul(useCk ? checkpoint(block, t) : block(t), R)));
    return [t.grad!.f32(), w.grad!.f32()];
  });
  const [a, b] = [grads(false), grads(true)];
  a.forEach((g, k) => g.forEach((v, i) => assert.ok(Math.abs(v - b[k][i]) < 1e-6, `grad ${k}[${i}]`)));
});

test("checkpoint of a block that only reshapes: the gradient handed into the recompute survives", () => {
  const x = fromHost(randn(6), [2, 3]);
  x.requiresGrad = true;
  const R = randn(6);
  scope(() => backward(sum(mul(checkpoint((t) => reshape(t, [3, 2]), x), fromHost(R, [3, 2])))));
  assert.deepEqual(Array.from(x.grad!.f32()), Array.from(R));
});

test("backward(leaf, g, owned): an owned g is moved into .grad; a caller's g is copied and stays usable", () => {
  for (const owned of [true, false]) {
    const x = fromHost(randn(4), [4]);
    x.requiresGrad = true;
    const gData = randn(4), g = fromHost(gData, [4]);
    backward(x, g, owned);
    assert.deepEqual(Array.from(x.grad!.f32()), Array.from(gData));
    assert.equal(g.isDisposed, owned);
    if (!owned) { assert.deepEqual(Array.from(g.f32()), Array.from(gData)); g.dispose(); }
    assert.ok(!x.grad!.isDisposed);
    x.dispose();
  }
});

test("dropoutMask: 0 or 1/(1-p), about 1-p kept, the same mask for the same seed and salt, another for another", () => {
  const seed = (s: number) => fromHost(Int32Array.of(s), [1], "i32");
  const p = 0.3, n = 200_000;
  const a = dropoutMask(seed(7), 5, [n], p).f32();
  let kept = 0;
  for (const v of a) {
    assert.ok(v === 0 || Math.abs(v - 1 / (1 - p)) < 1e-6, `value ${v}`);
    if (v) kept++;
  }
  // binomial: sd = sqrt(n p (1-p)) ≈ 205 elements; 5 sd
  assert.ok(Math.abs(kept - n * (1 - p)) < 5 * Math.sqrt(n * p * (1 - p)), `${kept} kept of ${n}`);
  assert.deepEqual(dropoutMask(seed(7), 5, [n], p).f32(), a);
  for (const other of [dropoutMask(seed(8), 5, [n], p).f32(), dropoutMask(seed(7), 6, [n], p).f32(), dropoutMask(seed(-7), 5, [n], p).f32()]) {
    let same = 0;
    for (let i = 0; i < n; i++) if ((other[i] === 0) === (a[i] === 0)) same++;
    // independent masks agree on p² + (1-p)² = 58% of elements
    assert.ok(Math.abs(same / n - (p * p + (1 - p) * (1 - p))) < 0.01, `agreement ${same / n}`);
  }
  assert.throws(() => dropoutMask(seed(1), 0, [4], 1), /p must be in \(0, 1\)/);
});
