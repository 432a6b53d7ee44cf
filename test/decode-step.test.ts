// DecodeStep (fixed-shape decode, captured once as a graph and replayed: CUDA graphs on the GPU, recorded kernel calls
// on the CPU): for every fixture model, on every device, its logits equal model.forward's at every step (left
// padding, sliding windows, LoRA), greedy decoding through it reproduces the fixtures' greedy ids, and generate()
// gives the same completions with it as without, including when finished sequences stay in the batch and when the
// cache is compacted under it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join, basename } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { availableDevices, useDevice } from "./devices.ts";
import { readSafetensors } from "../src/models/safetensors.ts";
import { CausalLM } from "../src/models/model.ts";
import { KVCache } from "../src/models/kvcache.ts";
import { fromHost, noGrad, scope } from "../src/engine/index.ts";
import { generate } from "../src/generate/generate.ts";
import { DecodeStep } from "../src/generate/decode-step.ts";

const relDiff = (a: Float32Array, b: Float32Array) => {
  let m = 0, s = 0;
  for (let i = 0; i < a.length; i++) { m = Math.max(m, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
  return m / Math.max(s, 1e-30);
};

for (const device of availableDevices()) for (const dir of fixtureModels()) {
  const name = `${device} ${basename(dir)}`;
  const withAdapter = existsSync(join(dir, "adapter"));

  test(`${name}: DecodeStep logits equal model.forward at every step (padding, windows${withAdapter ? ", LoRA" : ""})`, async () => {
    await useDevice(device);
    const model = CausalLM.load(dir, withAdapter ? { adapter: join(dir, "adapter") } : {});
    const V = model.config.vocabSize, B = 3, P = 5, steps = 9;
    const ids = Int32Array.from({ length: B * P }, (_, i) => (i * 17 + 3) % V);
    const mask = Int32Array.from({ length: B * P }, (_, i) => (i % P >= [0, 2, 4][Math.floor(i / P)] ? 1 : 0)); // left padding 0, 2, 4
    const a = new KVCache(model.config, B, P + steps), b = new KVCache(model.config, B, P + steps);
    for (const c of [a, b]) noGrad(() => scope(() => { model.forward(ids, B, P, { attentionMask: mask, cache: c }); }));
    const step = new DecodeStep(model, b, true);
    for (let t = 0; t < steps; t++) {
      const next = Int32Array.from({ length: B }, (_, r) => (t * 31 + r * 7 + 1) % V);
      const want = noGrad(() => scope(() => model.logits(model.forward(next, B, 1, { cache: a })).f32()));
      const got = step.run(next).f32();
      assert.equal(got.length, B * V);
      assert.ok(relDiff(got, want) <= 1e-5, `step ${t}: logits differ by ${relDiff(got, want)} (relative to the largest)`);
    }
    assert.equal(b.length, a.length);
    assert.ok(step.graphed, `the step was not captured: ${step.graphError}`); // (the CPU backend records and replays its kernels)
    step.dispose();
    a.dispose();
    b.dispose();
  });

  for (const f of ["reference.safetensors", "reference_long.safetensors"]) {
    if (!existsSync(join(dir, f))) continue;
    const ref = readSafetensors(join(dir, f));
    if (!ref.has("greedy_ids")) continue;
    test(`${name}: greedy decoding through DecodeStep reproduces greedy_ids of ${f}`, async () => {
      await useDevice(device);
      const model = CausalLM.load(dir);
      const want = Array.from(ref.int32("greedy_ids"));
      const [c] = generate(model, [Array.from(ref.int32("greedy_prompt"))], { temperature: 0, maxTokens: want.length, graphs: true });
      assert.deepEqual(c.tokenIds, want);
    });
  }

  test(`${name}: generate() with DecodeStep equals generate() without (sampling, stops, compaction)`, async () => {
    await useDevice(device);
    const model = CausalLM.load(dir, withAdapter ? { adapter: join(dir, "adapter") } : {});
    const V = model.config.vocabSize;
    const prompts = [[1, 2, 3, 4], [5, 6], [7, 8, 9]].map((p) => p.map((x) => x % V));
    // stop tokens that end six of the nine sampled completions by their third token, so that finished sequences
    // first stay in the DecodeStep's batch and then (at most half live) the cache is compacted under it
    const free = generate(model, prompts, { n: 3, maxTokens: 12, temperature: 0.7, seed: 9 });
    const stops = [...new Set(free.slice(0, 6).map((c) => c.tokenIds[2]))];
    for (const opts of [{ temperature: 1, seed: 5 }, { temperature: 0.7, seed: 9, stopTokenIds: stops }, { temperature: 0 }]) {
      const plain = generate(model, prompts, { n: 3, maxTokens: 12, ...opts, graphs: false });
      const stepped = generate(model, prompts, { n: 3, maxTokens: 12, ...opts, graphs: true });
      assert.deepEqual(stepped.map((c) => c.tokenIds), plain.map((c) => c.tokenIds), JSON.stringify(opts));
      assert.deepEqual(stepped.map((c) => c.finishReason), plain.map((c) => c.finishReason));
      stepped.forEach((c, i) => c.logprobs.forEach((lp, j) => assert.ok(Math.abs(lp - plain[i].logprobs[j]) <= 1e-4, `logprob ${i}/${j}: ${lp} vs ${plain[i].logprobs[j]}`)));
      if (opts.stopTokenIds) assert.ok(plain.filter((c) => c.finishReason === "stop").length >= 6, "the stop tokens end six completions early");
    }
  });
}

test("KVCache.scatter writes each sequence's new rows where `rows` says (rowsOf: a forward's positions)", () => {
  const cfg = { layers: 1, kvHeads: 2, headDim: 3 } as ConstructorParameters<typeof KVCache>[0];
  const c = new KVCache(cfg, 2, 4);
  const k = fromHost(Float32Array.from({ length: 12 }, (_, i) => i + 1), [2, 1, 2, 3]);
  const v = fromHost(Float32Array.from({ length: 12 }, (_, i) => -(i + 1)), [2, 1, 2, 3]);
  c.length = 1;
  assert.deepEqual([...c.rowsOf(2)], [1, 2, 5, 6], "rows of positions 1 and 2 of both sequences (capacity 4)");
  assert.throws(() => c.rowsOf(4), /KV cache full/);
  c.scatter(0, k, v, fromHost(Int32Array.from([2, 4 + 1]), [2], "i32"));
  const kk = c.k[0].f32(), vv = c.v[0].f32();
  for (let row = 0; row < 8; row++) {
    const src = row === 2 ? 0 : row === 5 ? 1 : -1;
    for (let e = 0; e < 6; e++) {
      assert.equal(kk[row * 6 + e], src < 0 ? 0 : src * 6 + e + 1);
      assert.equal(vv[row * 6 + e], src < 0 ? 0 : -(src * 6 + e + 1));
    }
  }
  c.dispose();
});
