// Fixture parity: every tiny model under $AHA_FIXTURES/tiny-models reproduces transformers' logits (base and
// with its PEFT adapter), the long-context cases and greedy tokens, on every available device (CPU; CUDA where a
// GPU is, with exact f32 GEMMs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join, basename } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { readSafetensors } from "../src/models/safetensors.ts";
import { CausalLM } from "../src/models/model.ts";
import { scope, noGrad } from "../src/engine/index.ts";
import { availableDevices, useDevice } from "./devices.ts";

/** max |a - b| over positions where mask is 1; a, b [B, T, V] */
function maxMaskedDiff(a: Float32Array, b: Float32Array, mask: Int32Array, V: number): number {
  let m = 0;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    for (let v = 0; v < V; v++) m = Math.max(m, Math.abs(a[i * V + v] - b[i * V + v]));
  }
  return m;
}

function logitsFor(model: CausalLM, ids: Int32Array, mask: Int32Array, pos: Int32Array, B: number, T: number): Float32Array {
  return noGrad(() => scope(() => model.logits(model.forward(ids, B, T, { attentionMask: mask, positions: pos })).f32()));
}

export function greedy(model: CausalLM, prompt: Int32Array, n: number): number[] {
  // full forward each step (no cache): the plain definition of greedy decoding
  const seq = Array.from(prompt);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const z = noGrad(() => scope(() => model.logits(model.forward(Int32Array.from(seq), 1, seq.length)).f32()));
    const V = model.config.vocabSize;
    const last = z.subarray((seq.length - 1) * V, seq.length * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (last[v] > last[best]) best = v;
    seq.push(best);
    out.push(best);
  }
  return out;
}

const models = fixtureModels();
test("fixture models are present", () => assert.ok(models.length > 0, "no models under $AHA_FIXTURES/tiny-models"));

for (const device of availableDevices()) for (const dir of models) {
  const name = `${device} ${basename(dir)}`;
  for (const refName of ["reference.safetensors", "reference_long.safetensors"]) {
    const refPath = join(dir, refName);
    if (!existsSync(refPath)) continue;
    test(`${name}: ${refName} logits and greedy tokens`, async () => {
      await useDevice(device);
      const ref = readSafetensors(refPath);
      const model = CausalLM.load(dir);
      const [B, T] = ref.info("input_ids").shape;
      const ids = ref.int32("input_ids"), mask = ref.int32("attention_mask"), pos = ref.int32("position_ids");
      const got = logitsFor(model, ids, mask, pos, B, T);
      const diff = maxMaskedDiff(got, ref.float32("logits"), mask, model.config.vocabSize);
      assert.ok(diff <= 1e-4, `${name} ${refName}: max |Δlogit| = ${diff}`);
      if (ref.has("greedy_ids")) {
        const want = Array.from(ref.int32("greedy_ids"));
        assert.deepEqual(greedy(model, ref.int32("greedy_prompt"), want.length), want);
      }
    });
  }
  const loraRef = join(dir, "reference_lora.safetensors");
  if (existsSync(loraRef) && existsSync(join(dir, "adapter"))) {
    test(`${name}: logits with the PEFT adapter`, async () => {
      await useDevice(device);
      const base = readSafetensors(join(dir, "reference.safetensors"));
      const ref = readSafetensors(loraRef);
      const model = CausalLM.load(dir, { adapter: join(dir, "adapter") });
      const [B, T] = base.info("input_ids").shape;
      const mask = base.int32("attention_mask");
      const got = logitsFor(model, base.int32("input_ids"), mask, base.int32("position_ids"), B, T);
      const diff = maxMaskedDiff(got, ref.float32("logits"), mask, model.config.vocabSize);
      assert.ok(diff <= 1e-4, `${name} lora: max |Δlogit| = ${diff}`);
      // and switching the adapter off gives the base logits back
      const off = model.withoutAdapter(() => logitsFor(model, base.int32("input_ids"), mask, base.int32("position_ids"), B, T));
      assert.ok(maxMaskedDiff(off, base.float32("logits"), mask, model.config.vocabSize) <= 1e-4);
    });
  }
}

// The older config form most Hub checkpoints carry (top-level rope_theta / rope_scaling, gemma3's
// rope_local_base_freq and sliding_window_pattern) must load to the very same model.
import { cpSync, mkdtempSync, readFileSync as readText, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";

function toOldConfig(cfg: Record<string, any>): Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const { rope_parameters: rp, layer_types: lt, ...rest } = cfg;
  const old: Record<string, any> = { ...rest }; // eslint-disable-line @typescript-eslint/no-explicit-any
  const scaling = (p: Record<string, unknown>) => {
    const { rope_theta: _t, partial_rotary_factor: _p, ...s } = p;
    return s.rope_type && s.rope_type !== "default" ? s : undefined;
  };
  if (rp?.full_attention) {
    old.rope_theta = rp.full_attention.rope_theta;
    old.rope_local_base_freq = rp.sliding_attention.rope_theta;
    old.rope_scaling = scaling(rp.full_attention) ?? null;
    // layer_types [sliding…, full] every k-th layer → the older sliding_window_pattern k
    const k = (lt as string[]).indexOf("full_attention") + 1;
    old.sliding_window_pattern = k;
  } else if (rp) {
    old.rope_theta = rp.rope_theta;
    old.rope_scaling = scaling(rp) ?? null;
    if (lt) old.layer_types = lt;
  }
  return old;
}

for (const dir of models) {
  test(`${basename(dir)}: the older config form (rope_theta / rope_scaling) loads the same model`, () => {
    const tmp = mkdtempSync(join(tmpdir(), "aha-oldcfg-"));
    try {
      cpSync(dir, tmp, { recursive: true });
      const cfg = JSON.parse(readText(join(dir, "config.json"), "utf8"));
      writeFileSync(join(tmp, "config.json"), JSON.stringify(toOldConfig(cfg)));
      const ref = readSafetensors(join(dir, "reference_long.safetensors"));
      const [B, T] = ref.info("input_ids").shape;
      const args = [ref.int32("input_ids"), ref.int32("attention_mask"), ref.int32("position_ids"), B, T] as const;
      const a = logitsFor(CausalLM.load(dir), ...args), b = logitsFor(CausalLM.load(tmp), ...args);
      assert.deepEqual(b, a);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}

for (const device of availableDevices())
  test(`${device}: final-logit soft-capping runs on the device (logits = cap · tanh(raw / cap)), and a decode step with it is captured`, async () => {
    await useDevice(device);
    const dir = models[0];
    const plain = CausalLM.load(dir), capped = CausalLM.load(dir);
    (capped.config as { finalSoftcap: number }).finalSoftcap = 2.5;
    const B = 2, T = 3, V = plain.config.vocabSize, ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % V);
    const raw = noGrad(() => scope(() => plain.logits(plain.forward(ids, B, T)).f32()));
    const got = noGrad(() => scope(() => capped.logits(capped.forward(ids, B, T)).f32()));
    let worst = 0;
    raw.forEach((r, i) => { worst = Math.max(worst, Math.abs(got[i] - 2.5 * Math.tanh(r / 2.5))); });
    assert.ok(worst <= 1e-5, `max |Δ| ${worst}`);
    assert.ok(raw.some((r) => Math.abs(r) > 1), "some logits are large enough for the cap to matter");
    const { KVCache } = await import("../src/models/kvcache.ts");
    const { DecodeStep } = await import("../src/generate/decode-step.ts");
    const cache = new KVCache(capped.config, B, T + 2);
    noGrad(() => scope(() => { capped.forward(ids, B, T, { cache }); }));
    const step = new DecodeStep(capped, cache, true);
    step.run(Int32Array.from([1, 2]));
    assert.ok(step.graphed, `not captured: ${step.graphError}`);
    step.dispose();
    cache.dispose();
  });
