// Rope scaling variants against hand-computed frequencies, and memory accounting: scopes free what they made, and
// a training step leaves the allocated bytes where they were (no leak across steps).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ropeFrequencies } from "../src/models/rope.ts";
import type { RopeParams } from "../src/models/config.ts";
import { fixtureModels } from "./fixtures.ts";
import { CausalLM } from "../src/models/model.ts";
import { backward, fromHost, matmul, memory, scope, sum } from "../src/engine/index.ts";
import { batchLoss } from "../src/grpo/loss.ts";

const base = (theta: number, rot: number) => Array.from({ length: rot / 2 }, (_, i) => 1 / theta ** ((2 * i) / rot));
const close = (a: ArrayLike<number>, b: number[], tol = 1e-12) => b.forEach((x, i) => assert.ok(Math.abs(a[i] - x) <= tol * Math.max(1, Math.abs(x)), `[${i}] ${a[i]} vs ${x}`));

test("rope: default, linear, dynamic (NTK), llama3, yarn, longrope frequencies", () => {
  const rot = 8, p = (x: Partial<RopeParams>): RopeParams => ({ type: "default", theta: 10000, ...x });
  close(ropeFrequencies(p({}), rot, 100, 10).invFreq, base(10000, rot));
  close(ropeFrequencies(p({ type: "linear", factor: 4 }), rot, 100, 10).invFreq, base(10000, rot).map((f) => f / 4));
  // dynamic: unchanged inside max positions; beyond, base × (factor·L/max − (factor−1))^(rot/(rot−2))
  close(ropeFrequencies(p({ type: "dynamic", factor: 2 }), rot, 100, 50).invFreq, base(10000, rot));
  const theta = 10000 * ((2 * 300) / 100 - 1) ** (rot / (rot - 2));
  close(ropeFrequencies(p({ type: "dynamic", factor: 2 }), rot, 100, 300).invFreq, base(theta, rot));
  // llama3: wavelengths below orig/high kept, above orig/low divided by factor, smooth in between
  const l3 = ropeFrequencies(p({ type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64, theta: 500000 }), 16, 512, 10).invFreq;
  base(500000, 16).forEach((f, i) => {
    const wave = (2 * Math.PI) / f;
    const want = wave < 16 ? f : wave > 64 ? f / 8 : (1 - (64 / wave - 1) / 3) * (f / 8) + ((64 / wave - 1) / 3) * f;
    assert.ok(Math.abs(l3[i] - want) < 1e-15, `llama3 [${i}]`);
  });
  // yarn: attention factor 0.1 ln(s) + 1; highest frequencies extrapolate (unchanged), lowest interpolate (÷ factor)
  const y = ropeFrequencies(p({ type: "yarn", factor: 4, originalMaxPositions: 64 }), 64, 256, 10);
  assert.ok(Math.abs(y.attentionScaling - (0.1 * Math.log(4) + 1)) < 1e-12);
  const b64 = base(10000, 64);
  assert.ok(Math.abs(y.invFreq[0] - b64[0]) < 1e-15, "yarn keeps the fastest frequency");
  assert.ok(Math.abs(y.invFreq[31] - b64[31] / 4) < 1e-15, "yarn interpolates the slowest");
  // longrope: short factors inside the original length, long beyond; attention factor √(1 + ln(s)/ln(orig))
  const lr = p({ type: "longrope", shortFactor: [1, 2, 3, 4], longFactor: [5, 6, 7, 8], originalMaxPositions: 64 });
  close(ropeFrequencies(lr, rot, 256, 10).invFreq, base(10000, rot).map((f, i) => f / (i + 1)));
  const long = ropeFrequencies(lr, rot, 256, 100);
  close(long.invFreq, base(10000, rot).map((f, i) => f / (i + 5)));
  assert.ok(Math.abs(long.attentionScaling - Math.sqrt(1 + Math.log(4) / Math.log(64))) < 1e-12);
});

test("scope frees every temporary; results it returns survive", () => {
  const before = memory().allocated;
  const kept = scope(() => {
    const a = fromHost(new Float32Array(1000).fill(1), [10, 100]);
    const b = fromHost(new Float32Array(500).fill(2), [100, 5]);
    matmul(a, b);
    return sum(matmul(a, b));
  });
  assert.equal(kept.item(), 10 * 5 * 200);
  assert.equal(memory().allocated - before, kept.bytes);
  kept.dispose();
  assert.equal(memory().allocated, before);
});

test("a training step does not leak: allocated bytes return to the same level after each step", () => {
  const dir = fixtureModels()[0];
  const model = CausalLM.load(dir, { adapter: join(dir, "adapter") });
  const B = 4, P = 5, T = 6;
  const batch = {
    promptIds: Int32Array.from({ length: B * P }, (_, i) => (i * 13) % 100), completionIds: Int32Array.from({ length: B * T }, (_, i) => (i * 7) % 100),
    completionMask: new Float32Array(B * T).fill(1), B, P, T,
  };
  const params = { lossType: "grpo" as const, epsilon: 0.2, epsilonHigh: 0.2, beta: 0, temperature: 1, maxCompletionLength: T };
  const step = () => {
    scope(() => backward(batchLoss(model, batch, null, null, Float32Array.from([1, -1, 0.5, -0.5]), params).loss));
    for (const p of model.parameters()) { p.grad?.dispose(); p.grad = null; }
    return memory().allocated;
  };
  const first = step();
  assert.equal(step(), first);
  assert.equal(step(), first);
});

import { memoryByCategory } from "../src/engine/index.ts";
import { AdamW } from "../src/grpo/optim.ts";
import { KVCache } from "../src/models/kvcache.ts";

test("memory report by category: weights, LoRA, optimiser, gradients, KV cache, activations", () => {
  const dir = fixtureModels()[0];
  const before = memoryByCategory();
  const model = CausalLM.load(dir, { adapter: join(dir, "adapter") });
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const cache = new KVCache(model.config, 2, 16);
  const now = memoryByCategory();
  const delta = (c: keyof typeof now) => now[c].now - before[c].now;
  const bytes = (ts: { bytes: number }[]) => ts.reduce((a, t) => a + t.bytes, 0);
  assert.equal(delta("weights"), bytes(model.allWeights()));
  // the adapter is one flat buffer: its tensors plus at most 255 bytes of alignment padding each
  const lora = model.adapter!.bytes, nParams = model.parameters().length;
  assert.equal(delta("lora"), lora);
  assert.ok(lora >= bytes(model.parameters()) && lora < bytes(model.parameters()) + 256 * nParams, `adapter storage ${lora} bytes`);
  assert.equal(delta("optimizer"), 2 * lora);
  assert.equal(delta("kv_cache"), KVCache.bytes(model.config, 2, 16));
  // a backward leaves one gradient per LoRA parameter; the step's activations are gone after its scope
  const B = 2, P = 3, T = 4;
  const batch = { promptIds: Int32Array.from({ length: B * P }, (_, i) => i + 3), completionIds: Int32Array.from({ length: B * T }, (_, i) => i + 9), completionMask: new Float32Array(B * T).fill(1), B, P, T };
  const step = () => scope(() => backward(batchLoss(model, batch, null, null, Float32Array.from([1, -1]), { lossType: "grpo", epsilon: 0.2, epsilonHigh: 0.2, beta: 0, temperature: 1, maxCompletionLength: T }).loss));
  step();
  const after = memoryByCategory();
  // the gradients live in one buffer laid out like the adapter's, kept from step to step (zeroGrad only forgets them)
  assert.equal(after.gradients.now - before.gradients.now, lora);
  assert.equal(after.activations.now, now.activations.now);
  assert.ok(after.activations.peak > now.activations.now, "the step's activations show in the peak");
  opt.zeroGrad();
  assert.ok(model.parameters().every((p) => p.grad === null));
  step();
  step(); // a second micro-batch accumulates in place
  assert.equal(memoryByCategory().gradients.now - before.gradients.now, lora);
  cache.dispose();
  opt.dispose();
  model.adapter!.dispose();
  assert.equal(memoryByCategory().lora.now, before.lora.now);
  assert.equal(memoryByCategory().gradients.now, before.gradients.now);
});

import { defaultBackend, noGrad } from "../src/engine/index.ts";
import { readModelConfig } from "../src/models/config.ts";

test("a forward uploads each distinct rope table once, not once per layer (host work and syncs per step)", () => {
  for (const dir of fixtureModels()) {
    const model = CausalLM.load(dir);
    const cfg = readModelConfig(dir);
    const distinct = new Set(cfg.ropeByLayer.map((p) => JSON.stringify(p))).size;
    const be = defaultBackend();
    const cache = new KVCache(model.config, 2, 16);
    const ids = Int32Array.from({ length: 2 * 4 }, (_, i) => (i * 11) % 50 + 3);
    noGrad(() => scope(() => { model.forward(ids, 2, 4, { cache }); }));
    const write = be.write;
    let writes = 0;
    be.write = (buf, data) => { writes++; return write.call(be, buf, data); };
    try {
      noGrad(() => scope(() => { model.logits(model.forward(ids.subarray(0, 2), 2, 1, { cache })); }));
    } finally {
      be.write = write;
      cache.dispose();
    }
    // ids, the key mask, the cache rows the new keys/values go to and a cos/sin pair per distinct rope setting;
    // none of it scales with the layer count
    assert.equal(writes, 3 + 2 * distinct, `${dir}: ${writes} uploads for a decode step of ${cfg.layers} layers, ${distinct} rope setting(s)`);
  }
});

test("a GRPO micro-batch reads nothing back after the loss: loss.item() and the backward's seed are known on the host", () => {
  const dir = fixtureModels()[0];
  const model = CausalLM.load(dir, { adapter: join(dir, "adapter") });
  const B = 2, P = 3, T = 4;
  const batch = { promptIds: Int32Array.from({ length: B * P }, (_, i) => i + 3), completionIds: Int32Array.from({ length: B * T }, (_, i) => i + 9), completionMask: new Float32Array(B * T).fill(1), B, P, T };
  const be = defaultBackend();
  const read = be.read;
  let reads = 0;
  scope(() => {
    const { loss } = batchLoss(model, batch, null, null, Float32Array.from([1, -1]), { lossType: "grpo", epsilon: 0.2, epsilonHigh: 0.2, beta: 0, temperature: 1, maxCompletionLength: T });
    be.read = (...a) => { reads++; return read.apply(be, a); };
    let value: number;
    try {
      backward(loss);
      value = loss.item();
    } finally {
      be.read = read;
    }
    assert.equal(reads, 0);
    assert.equal(value, loss.f32()[0]); // the host copy is the device value
  });
  for (const p of model.parameters()) p.grad = null;
});
