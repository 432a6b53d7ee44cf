// A 16-bit KV cache (what CUDA's default GEMM mode uses with 16-bit weights, CausalLM.kvDtype: bf16, or f16 on
// Turing GPUs): keys and values are rounded once, when written, and read back exactly. So on every device a model
// decoding with a 16-bit cache gives the same logits as with an f32 cache that holds the same rounded values — after
// a prefill, over decode steps, through DecodeStep's captured graph and after compaction (select) — and different
// ones from an unrounded cache. bf16 on every device, f16 on CUDA (the CPU's caches are f32 or bf16).
import { test } from "node:test";
import assert from "node:assert/strict";
import { basename } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { availableDevices, useDevice } from "./devices.ts";
import { CausalLM } from "../src/models/model.ts";
import { KVCache } from "../src/models/kvcache.ts";
import { fromHost, noGrad, scope, type Tensor } from "../src/engine/index.ts";
import { DecodeStep } from "../src/generate/decode-step.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../src/models/safetensors.ts";

const ROUND = { bf16: (x: Float32Array) => bf16ToF32(f32ToBf16(x)), f16: (x: Float32Array) => f16ToF32(f32ToF16(x)) };
/** An f32 cache whose writes round keys and values to `to` first (on the host: the reference). */
class RoundingCache extends KVCache {
  to: keyof typeof ROUND = "bf16";
  override scatter(l: number, k: Tensor, v: Tensor, rows: Tensor): void {
    const r = (t: Tensor) => fromHost(ROUND[this.to](t.f32()), t.shape);
    super.scatter(l, r(k), r(v), rows);
  }
  override select(keep: number[]): KVCache {
    const c = super.select(keep) as RoundingCache;
    c.to = this.to;
    return c;
  }
}

for (const device of availableDevices()) for (const dir of fixtureModels()) for (const dt of device === "cuda" ? ["bf16", "f16"] as const : ["bf16"] as const) {
  test(`${device} ${basename(dir)}: a ${dt} KV cache decodes as an f32 cache of the same rounded values`, async () => {
    await useDevice(device);
    const model = CausalLM.load(dir);
    // the reference rounds in KVCache.scatter, which the general layer block calls; the fused layers write the cache
    // in their own kernel (test/fused-layers.test.ts compares them with a bf16 cache)
    model.fusedDecode = false;
    const V = model.config.vocabSize, B = 3, P = 6, steps = 5, cap = P + 2 * steps;
    const ids = Int32Array.from({ length: B * P }, (_, i) => (i * 29 + 7) % V);
    const mask = Int32Array.from({ length: B * P }, (_, i) => (i % P >= [0, 1, 3][Math.floor(i / P)] ? 1 : 0));
    const half = new KVCache(model.config, B, cap, dt), ref = new RoundingCache(model.config, B, cap), full = new KVCache(model.config, B, cap);
    ref.to = dt;
    assert.equal(half.k[0].dtype, dt);
    const logits = (c: KVCache, next: Int32Array, T: number, m?: Int32Array) =>
      noGrad(() => scope(() => model.logits(model.forward(next, c.batch, T, { cache: c, attentionMask: m })).f32()));
    const a0 = logits(half, ids, P, mask), r0 = logits(ref, ids, P, mask), f0 = logits(full, ids, P, mask);
    assert.deepEqual(a0, r0, "prefill");
    assert.ok(a0.some((x, i) => x !== f0[i]), `the ${dt} cache rounds (its logits differ from an unrounded cache's)`);
    for (let t = 0; t < steps; t++) {
      const next = Int32Array.from({ length: B }, (_, b) => (t * 13 + b * 5 + 2) % V);
      assert.deepEqual(logits(half, next, 1), logits(ref, next, 1), `decode step ${t}`);
    }
    // compaction keeps the rounded values; then a few steps through DecodeStep, captured for the 16-bit cache (the
    // reference's host-side rounding cannot be captured: it runs eagerly)
    const h2 = half.select([2, 0]), r2 = ref.select([2, 0]);
    const step = new DecodeStep(model, h2, true), refStep = new DecodeStep(model, r2, false);
    for (let t = 0; t < steps - 1; t++) {
      const next = Int32Array.from({ length: 2 }, (_, b) => (t * 7 + b * 3 + 1) % V);
      assert.deepEqual(step.run(next).f32(), refStep.run(next).f32(), `after select, DecodeStep step ${t}`);
    }
    step.dispose();
    refStep.dispose();
    for (const c of [h2, r2, full]) c.dispose();
  });
}

test("attention refuses bf16 keys/values where a backward would read them (a query that needs gradients)", async () => {
  const { attention } = await import("../src/engine/index.ts");
  const B = 1, T = 2, H = 1, D = 4;
  const q = fromHost(new Float32Array(B * T * H * D).fill(0.1), [B * T, H, D]);
  const kv = fromHost(f32ToBf16(new Float32Array(B * T * H * D).fill(0.2)), [B * T, H, D], "bf16");
  q.requiresGrad = true;
  const opts = { B, T, Hq: H, Hkv: H, D, scale: 0.5 };
  assert.throws(() => attention(q, kv, kv, opts), /bf16 keys\/values are for a KV cache/);
  assert.equal(noGrad(() => attention(q, kv, kv, opts)).shape.join(), [B * T, H, D].join(), "without autograd it runs");
});
