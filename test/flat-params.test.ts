// LoRA adapters live in one flat buffer (src/engine/flat.ts). For every fixture model with an adapter, on every
// device: two optimiser steps of two micro-batches each (gradients accumulated in place, clipped, AdamW with weight
// decay) leave the same parameters and gradient norms as the same adapter held in separate tensors, while the
// optimiser and the norm make one kernel call each instead of one per tensor; and projections that read one input
// (q/k/v, gate/up) make one A GEMM between them, with the same outputs and gradients.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join, basename } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { availableDevices, useDevice } from "./devices.ts";
import { CausalLM } from "../src/models/model.ts";
import { add, backward, defaultBackend, fromHost, groupable, loraLinear, loraLinearGroup, mul, noGrad, scope, sub, sum, type Tensor } from "../src/engine/index.ts";
import { bf16ToF32, f32ToBf16 } from "../src/models/safetensors.ts";
import { FlatParams } from "../src/engine/flat.ts";
import { batchLoss } from "../src/grpo/loss.ts";
import { AdamW, clipGradNorm } from "../src/grpo/optim.ts";

/** Run fn counting the kernel calls it makes on the default backend, by name. */
function counting<T>(fn: () => T): [T, Map<string, number>] {
  const be = defaultBackend() as { k: Record<string, unknown> };
  const k = be.k, counts = new Map<string, number>();
  be.k = new Proxy(k, { get: (t, name: string) => { counts.set(name, (counts.get(name) ?? 0) + 1); return t[name]; } });
  try {
    return [fn(), counts];
  } finally {
    be.k = k;
  }
}

/** The same model with its adapter's tensors copied into separate (non-flat) tensors. */
function separate(m: CausalLM): void {
  for (const pair of m.adapter!.modules.values()) {
    const copy = (t: Tensor) => { const c = fromHost(t.f32(), t.shape).setCategory("lora").keep(); c.name = t.name; c.requiresGrad = true; return c; };
    pair.A = copy(pair.A);
    pair.B = copy(pair.B);
  }
}

/**
 * GEMMs a forward saves per layer, for each group of projections sharing an input, all adapted: one LoRA A GEMM
 * instead of one per part, and for each run of parts with equal out-features, one batched GEMM for their B's and
 * one for their base weights and biases (packed at load) instead of one per part.
 */
function groupSavings(m: CausalLM): number {
  const names = new Set(m.adapter!.modules.keys());
  let saved = 0;
  for (let l = 0; l < m.config.layers; l++)
    for (const g of [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["mlp.gate_proj", "mlp.up_proj"]]) {
      const full = g.map((n) => `model.layers.${l}.${n}`);
      if (!full.every((n) => names.has(n))) continue;
      saved += g.length - 1;
      const lin = full.map((n) => m.layers[l].linears.get(n)!);
      for (let i = 0; i < lin.length;) {
        let n = 1;
        while (i + n < lin.length && lin[i + n].W.shape[0] === lin[i].W.shape[0]) n++;
        saved += (n - 1) * 2; // biases are packed with their weights
        i += n;
      }
    }
  return saved;
}

/** Every LoRA B set to fixed non-zero values derived from its module name (a fresh PEFT adapter's B = 0 hides the branch). */
function nonzeroB(m: CausalLM): void {
  for (const [name, pair] of m.adapter!.modules) {
    const h = [...name].reduce((a, c) => (a * 31 + c.charCodeAt(0)) >>> 0, 7);
    pair.B.backend.write(pair.B.buf, Float32Array.from({ length: pair.B.numel }, (_, i) => Math.sin(h + i) * 0.05));
  }
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

for (const device of availableDevices()) for (const dir of fixtureModels()) {
  if (!existsSync(join(dir, "adapter"))) continue;
  test(`${device} ${basename(dir)}: flat LoRA storage trains like separate tensors, one AdamW and one norm kernel`, async () => {
    await useDevice(device);
    const flat = CausalLM.load(dir, { adapter: join(dir, "adapter") });
    const sep = CausalLM.load(dir, { adapter: join(dir, "adapter") });
    separate(sep);
    const B = 2, P = 3, T = 4, V = flat.config.vocabSize;
    const batch = (s: number) => ({ promptIds: Int32Array.from({ length: B * P }, (_, i) => (i * 7 + s * 5) % V), completionIds: Int32Array.from({ length: B * T }, (_, i) => (i * 11 + s * 3) % V),
      completionMask: new Float32Array(B * T).fill(1), B, P, T });
    const lossParams = { lossType: "grpo" as const, epsilon: 0.2, epsilonHigh: 0.2, beta: 0, temperature: 1, maxCompletionLength: T };
    const run = (m: CausalLM) => {
      const opt = new AdamW(m.parameters(), { lr: 1e-2, weightDecay: 0.1 });
      const norms: number[] = [], calls: Map<string, number>[] = [];
      for (let step = 0; step < 2; step++) {
        for (let mb = 0; mb < 2; mb++) scope(() => backward(batchLoss(m, batch(2 * step + mb), null, null, Float32Array.from([1, -0.5]), lossParams).loss));
        const [norm, c] = counting(() => { const n = clipGradNorm(opt.params, 1e-3); opt.update(); return n; });
        norms.push(norm);
        calls.push(c);
        opt.zeroGrad();
      }
      opt.dispose();
      return { norms, calls, params: m.parameters().map((p) => p.f32()) };
    };
    const a = run(flat), b = run(sep);
    const n = flat.parameters().length;
    for (let s = 0; s < 2; s++) {
      assert.ok(a.norms[s] > 1e-3, "the clipping applies");
      assert.ok(Math.abs(a.norms[s] - b.norms[s]) <= 1e-5 * b.norms[s], `step ${s} grad norm ${a.norms[s]} vs ${b.norms[s]}`);
      assert.equal(a.calls[s].get("adamw"), 1);
      assert.equal(a.calls[s].get("sum_squares"), 1);
      assert.equal(b.calls[s].get("adamw"), n);
      assert.equal(b.calls[s].get("sum_squares"), n);
    }
    a.params.forEach((p, i) => assert.ok(maxDiff(p, b.params[i]) <= 1e-5, `${flat.parameters()[i].name}: differs by ${maxDiff(p, b.params[i])}`));
    assert.ok(maxDiff(a.params[0], flat.parameters()[0].f32()) === 0);
  });

  test(`${device} ${basename(dir)}: projections sharing an input make one LoRA A GEMM, same outputs and gradients`, async () => {
    await useDevice(device);
    const flat = CausalLM.load(dir, { adapter: join(dir, "adapter") });
    const sep = CausalLM.load(dir, { adapter: join(dir, "adapter") });
    separate(sep);
    // B = 0 in a fresh PEFT adapter would hide the branch: make every B non-zero, the same in both models
    for (const m of [flat, sep]) nonzeroB(m);
    const B = 2, T = 5, V = flat.config.vocabSize;
    const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 13 + 1) % V);
    const [hf, cf] = counting(() => noGrad(() => scope(() => flat.forward(ids, B, T).f32())));
    const [hs, cs] = counting(() => noGrad(() => scope(() => sep.forward(ids, B, T).f32())));
    assert.ok(maxDiff(hf, hs) <= 1e-5 * Math.max(1, ...hs.map(Math.abs)), `hidden states differ by ${maxDiff(hf, hs)}`);
    assert.equal(cs.get("gemm")! - cf.get("gemm")!, groupSavings(flat));
    // gradients of a loss through the grouped projections
    const grads = (m: CausalLM) => {
      scope(() => backward(batchLoss(m, { promptIds: ids.subarray(0, B * 2), completionIds: ids.subarray(0, B * 3), completionMask: new Float32Array(B * 3).fill(1), B, P: 2, T: 3 },
        null, null, Float32Array.from([1, -1]), { lossType: "grpo", epsilon: 0.2, epsilonHigh: 0.2, beta: 0, temperature: 1, maxCompletionLength: 3 }).loss));
      return m.parameters().map((p) => p.grad!.f32());
    };
    const gf = grads(flat), gs = grads(sep);
    gf.forEach((g, i) => {
      const scale = Math.max(1e-6, ...gs[i].map(Math.abs));
      assert.ok(maxDiff(g, gs[i]) <= 1e-4 * scale, `${flat.parameters()[i].name}: gradient differs by ${maxDiff(g, gs[i])} (max ${scale})`);
    });
  });
}

for (const device of availableDevices()) for (const dir of fixtureModels()) {
  test(`${device} ${basename(dir)}: full fine-tuning in flat storage trains like separate weights`, async () => {
    await useDevice(device);
    const flat = CausalLM.load(dir, { dtype: "f32" });
    flat.trainAll();
    const sep = CausalLM.load(dir, { dtype: "f32" });
    const sepParams = sep.allWeights();
    for (const t of sepParams) t.requiresGrad = true;
    assert.ok(flat.parameters().every((p) => p.flat) && sepParams.every((p) => !p.flat));
    assert.equal(flat.parameters().length, sepParams.length);
    const B = 2, P = 3, T = 4, V = flat.config.vocabSize;
    const run = (m: CausalLM, params: Tensor[]) => {
      const opt = new AdamW(params, { lr: 1e-3, weightDecay: 0.1 });
      const norms: number[] = [];
      for (let step = 0; step < 2; step++) {
        for (let mb = 0; mb < 2; mb++) {
          const s = 2 * step + mb;
          const batch = { promptIds: Int32Array.from({ length: B * P }, (_, i) => (i * 7 + s * 5) % V), completionIds: Int32Array.from({ length: B * T }, (_, i) => (i * 11 + s * 3) % V),
            completionMask: new Float32Array(B * T).fill(1), B, P, T };
          scope(() => backward(batchLoss(m, batch, null, null, Float32Array.from([1, -0.5]), { lossType: "grpo", epsilon: 0.2, epsilonHigh: 0.2, beta: 0, temperature: 1, maxCompletionLength: T }).loss));
        }
        const [norm, c] = counting(() => { const n = clipGradNorm(params, 1e-2); opt.update(); return n; });
        norms.push(norm);
        assert.equal(c.get("adamw"), m === flat ? 1 : params.length);
        opt.zeroGrad();
      }
      opt.dispose();
      return { norms, params: params.map((p) => p.f32()) };
    };
    const a = run(flat, flat.parameters()), b = run(sep, sepParams);
    a.norms.forEach((n, s) => assert.ok(Math.abs(n - b.norms[s]) <= 1e-5 * b.norms[s], `step ${s} grad norm ${n} vs ${b.norms[s]}`));
    a.params.forEach((p, i) => assert.ok(maxDiff(p, b.params[i]) <= 1e-5, `${flat.parameters()[i].name}: differs by ${maxDiff(p, b.params[i])}`));
  });
}

test("loraLinearGroup equals one loraLinear per part: all outputs used, one used, accumulation, mixed first/added gradients", () => {
  const inF = 6, N = 5, rnd = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + s) * 0.5);
  const outs = [4, 3, 2], r = 2;
  // the adapter-like storage: A's adjacent (module order), then B's
  const mk = () => new FlatParams(defaultBackend(), [...outs.map((_, i) => ({ shape: [r, inF], data: rnd(r * inF, i), packed: i > 0 })), ...outs.map((o, i) => ({ shape: [o, r], data: rnd(o * r, 10 + i) }))], "lora");
  const Ws = outs.map((o, i) => fromHost(rnd(o * inF, 20 + i), [o, inF]));
  const bs = outs.map((o, i) => fromHost(rnd(o, 30 + i), [o]));
  const xData = rnd(N * inF, 40), R = outs.map((o, i) => fromHost(rnd(N * o, 50 + i), [N, o]));
  const run = (grouped: boolean, use: number[], passes: number, pre?: number) => {
    const f = mk();
    for (const t of f.members) t.requiresGrad = true;
    const parts = outs.map((_, i) => ({ W: Ws[i], bias: bs[i], A: f.members[i], B: f.members[outs.length + i], scale: 0.5 + i }));
    assert.equal(groupable(parts, inF), true);
    const x = fromHost(xData, [N, inF]);
    x.requiresGrad = true;
    // `pre`: part whose A already holds a gradient (so its sink adds while the others start: per-part dA GEMMs)
    if (pre !== undefined) scope(() => backward(sum(mul(loraLinear(x, Ws[pre], bs[pre], parts[pre]), R[pre]))));
    for (let p = 0; p < passes; p++) scope(() => {
      const ys = grouped ? loraLinearGroup(x, parts) : parts.map((q) => loraLinear(x, q.W, q.bias, q));
      let loss = sum(mul(ys[use[0]], R[use[0]]));
      for (const i of use.slice(1)) loss = add(loss, sum(mul(ys[i], R[i])));
      backward(loss);
      return null;
    });
    const out = { x: x.grad!.f32(), params: f.members.map((m) => m.grad?.f32() ?? null) };
    f.dispose();
    return out;
  };
  for (const [use, passes, pre] of [[[0, 1, 2], 1], [[1], 1], [[0, 2], 2], [[0, 1, 2], 1, 1]] as [number[], number, number?][]) {
    const a = run(true, use, passes, pre), b = run(false, use, passes, pre);
    assert.ok(maxDiff(a.x, b.x) <= 1e-5, `x: ${maxDiff(a.x, b.x)}`);
    a.params.forEach((g, i) => {
      const h = b.params[i];
      if (!h) { assert.ok(!g || g.every((v) => v === 0), `param ${i} has a gradient only when grouped`); return; }
      assert.ok(g && maxDiff(g, h) <= 1e-5, `param ${i} (use ${use}, passes ${passes}, pre ${pre}): ${g && maxDiff(g, h)}`);
    });
  }
});

for (const device of availableDevices())
  test(`${device}: loraLinearGroup converts x once for 16-bit weights where GEMMs round activations, as each GEMM would`, async () => {
    await useDevice(device);
    const be = defaultBackend();
    const inF = 40, N = 7, r = 4, outs = [24, 8, 8];
    const rnd = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + s) * 0.7);
    const f = new FlatParams(be, [...outs.map((_, i) => ({ shape: [r, inF], data: rnd(r * inF, i), packed: i > 0 })), ...outs.map((o, i) => ({ shape: [o, r], data: rnd(o * r, 10 + i) }))], "lora");
    const parts = outs.map((o, i) => ({ W: fromHost(f32ToBf16(rnd(o * inF, 20 + i)), [o, inF], "bf16"), bias: fromHost(rnd(o, 30 + i), [o]),
      A: f.members[i], B: f.members[outs.length + i], scale: 0.5 + i }));
    const xData = rnd(N * inF, 40), x = fromHost(xData, [N, inF]);
    // the reference: base GEMMs of x rounded to bf16 on the host, LoRA branches of x itself
    const xr = fromHost(bf16ToF32(f32ToBf16(xData)), [N, inF]);
    const want = parts.map((p) => noGrad(() => add(loraLinear(xr, p.W, p.bias, null), sub(loraLinear(x, p.W, null, p), loraLinear(x, p.W, null, null)))).f32());
    const own = Object.getOwnPropertyDescriptor(be, "gemmActivationDtype");
    const [ys, counts] = counting(() => {
      (be as { gemmActivationDtype?: unknown }).gemmActivationDtype = () => "bf16"; // what CUDA's default GEMM mode says
      try { return noGrad(() => loraLinearGroup(x, parts)); } finally {
        if (own) Object.defineProperty(be, "gemmActivationDtype", own); else delete (be as { gemmActivationDtype?: unknown }).gemmActivationDtype;
      }
    });
    assert.equal(counts.get("convert"), 1, "one conversion of x for the three base GEMMs");
    ys.forEach((y, i) => assert.ok(maxDiff(y.f32(), want[i]) <= 1e-5, `part ${i}: ${maxDiff(y.f32(), want[i])}`));
    f.dispose();
    await useDevice("cpu");
  });

for (const device of availableDevices())
  test(`${device}: LoRA dropout draws its masks on the device from one seed per forward: a checkpoint's recompute draws the same`, async () => {
    await useDevice(device);
    const dir = fixtureModels().find((d) => existsSync(join(d, "adapter")))!;
    const model = CausalLM.load(dir, { adapter: join(dir, "adapter") });
    nonzeroB(model); // so the branch shows
    const B = 2, V = model.config.vocabSize, ids = Int32Array.from({ length: B * 5 }, (_, i) => (i * 13 + 1) % V);
    const grads = (dropout: number, ckpt: boolean) => {
      model.dropout = dropout;
      model.gradientCheckpointing = ckpt;
      let s = 0;
      model.dropoutRng = () => ((s = (s * 16807 + 11) % 2147483647) / 2147483647);
      for (const p of model.parameters()) p.grad?.dispose(), (p.grad = null);
      scope(() => backward(batchLoss(model, { promptIds: ids.subarray(0, B * 2), completionIds: ids.subarray(0, B * 3), completionMask: new Float32Array(B * 3).fill(1), B, P: 2, T: 3 },
        null, null, Float32Array.from([1, -1]), { lossType: "grpo", epsilon: 0.2, epsilonHigh: 0.2, beta: 0, temperature: 1, maxCompletionLength: 3 }).loss));
      return model.parameters().map((p) => p.grad!.f32());
    };
    const a = grads(0.3, false), b = grads(0.3, true), none = grads(0, false);
    a.forEach((g, i) => assert.ok(maxDiff(g, b[i]) <= 1e-5 * Math.max(1e-6, ...g.map(Math.abs)), `${model.parameters()[i].name}: ${maxDiff(g, b[i])}`));
    assert.ok(a.some((g, i) => maxDiff(g, none[i]) > 1e-4), "dropout changed the gradients");
  });
