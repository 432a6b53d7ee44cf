// Fixture parity on the CUDA backend: every model under $AHA_FIXTURES/tiny-models, loaded onto the GPU, gives the
// reference logits (base and with its PEFT adapter, ≤ 1e-4 in f32), the greedy tokens, KV-cache decode equal to the
// full forward, and for every GRPO case the loss and LoRA gradients (‖a − b‖ / ‖b‖ ≤ 1e-4). GEMMs run in "exact"
// mode (f32 weights here, so this is plain f32 cuBLAS). Skips when there is no CUDA device.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join, basename } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { cudaSkip } from "./devices.ts";
import { readSafetensors } from "../src/models/safetensors.ts";
import { CausalLM } from "../src/models/model.ts";
import { KVCache } from "../src/models/kvcache.ts";
import { backward, noGrad, scope, setDefaultDevice } from "../src/engine/index.ts";
import { cudaBackend } from "../src/engine/cuda.ts";
import { batchLoss, type LossType } from "../src/grpo/loss.ts";

const skip = cudaSkip();
if (!skip) { setDefaultDevice("cuda"); cudaBackend().setGemmMode("exact"); }

function maxMaskedDiff(a: Float32Array, b: Float32Array, mask: Int32Array, V: number): number {
  let m = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) for (let v = 0; v < V; v++) m = Math.max(m, Math.abs(a[i * V + v] - b[i * V + v]));
  return m;
}
const logitsOf = (model: CausalLM, ids: Int32Array, B: number, T: number, mask?: Int32Array, pos?: Int32Array) =>
  noGrad(() => scope(() => model.logits(model.forward(ids, B, T, { attentionMask: mask, positions: pos })).f32()));
const argmax = (z: Float32Array, off: number, V: number) => { let b = 0; for (let v = 1; v < V; v++) if (z[off + v] > z[off + b]) b = v; return b; };
function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

for (const dir of fixtureModels()) {
  const name = basename(dir);
  for (const refName of ["reference.safetensors", "reference_long.safetensors"]) {
    if (!existsSync(join(dir, refName))) continue;
    test(`cuda ${name}: ${refName} logits and greedy tokens`, { skip }, () => {
      const ref = readSafetensors(join(dir, refName));
      const model = CausalLM.load(dir);
      const [B, T] = ref.info("input_ids").shape;
      const mask = ref.int32("attention_mask");
      const got = logitsOf(model, ref.int32("input_ids"), B, T, mask, ref.int32("position_ids"));
      const diff = maxMaskedDiff(got, ref.float32("logits"), mask, model.config.vocabSize);
      assert.ok(diff <= 1e-4, `${name} ${refName}: max |Δlogit| = ${diff}`);
      if (ref.has("greedy_ids")) {
        const want = Array.from(ref.int32("greedy_ids")), seq = Array.from(ref.int32("greedy_prompt")), V = model.config.vocabSize;
        const out: number[] = [];
        for (let i = 0; i < want.length; i++) {
          const z = logitsOf(model, Int32Array.from(seq), 1, seq.length);
          const t = argmax(z, (seq.length - 1) * V, V);
          seq.push(t); out.push(t);
        }
        assert.deepEqual(out, want);
      }
    });
  }
  test(`cuda ${name}: KV-cache decode equals the full forward`, { skip }, () => {
    const model = CausalLM.load(dir);
    const V = model.config.vocabSize, P = 7, n = 3, B = 2;
    const ids = Int32Array.from({ length: B * (P + n) }, (_, i) => (i * 37 + 11) % V);
    const full = logitsOf(model, ids, B, P + n);
    const cache = new KVCache(model.config, B, P + n + 4);
    try {
      const prompt = new Int32Array(B * P);
      for (let b = 0; b < B; b++) prompt.set(ids.subarray(b * (P + n), b * (P + n) + P), b * P);
      noGrad(() => scope(() => { model.forward(prompt, B, P, { cache }); }));
      for (let t = 0; t < n; t++) {
        const step = Int32Array.from({ length: B }, (_, b) => ids[b * (P + n) + P + t]);
        const z = noGrad(() => scope(() => model.logits(model.forward(step, B, 1, { cache })).f32()));
        for (let b = 0; b < B; b++) {
          let d = 0;
          const off = (b * (P + n) + P + t) * V;
          for (let v = 0; v < V; v++) d = Math.max(d, Math.abs(z[b * V + v] - full[off + v]));
          assert.ok(d <= 1e-4, `${name}: decode step ${t} row ${b}: max |Δlogit| = ${d}`);
        }
      }
    } finally { cache.dispose(); }
  });
  const loraRef = join(dir, "reference_lora.safetensors");
  if (existsSync(loraRef) && existsSync(join(dir, "adapter"))) {
    test(`cuda ${name}: logits with the PEFT adapter`, { skip }, () => {
      const base = readSafetensors(join(dir, "reference.safetensors"));
      const model = CausalLM.load(dir, { adapter: join(dir, "adapter") });
      const [B, T] = base.info("input_ids").shape;
      const mask = base.int32("attention_mask");
      const got = logitsOf(model, base.int32("input_ids"), B, T, mask, base.int32("position_ids"));
      const diff = maxMaskedDiff(got, readSafetensors(loraRef).float32("logits"), mask, model.config.vocabSize);
      assert.ok(diff <= 1e-4, `${name} lora: max |Δlogit| = ${diff}`);
    });
  }
  const stPath = join(dir, "reference_grpo.safetensors");
  if (!existsSync(stPath)) continue;
  const conv = JSON.parse(readFileSync(join(dir, "reference_grpo.json"), "utf8"));
  const ref = readSafetensors(stPath);
  const cases = [...ref.tensors.keys()].filter((k) => k.startsWith("loss.")).map((k) => k.slice(5));
  test(`cuda ${name}: GRPO loss and LoRA gradients, ${cases.length} cases`, { skip }, () => {
    const model = CausalLM.load(dir, { adapter: join(dir, "adapter") });
    const [B, P] = ref.info("prompt_ids").shape;
    const T = ref.info("completion_ids").shape[1];
    const batch = { promptIds: ref.int32("prompt_ids"), completionIds: ref.int32("completion_ids"), completionMask: ref.float32("completion_mask"), B, P, T };
    for (const c of cases) {
      for (const p of model.adapter!.parameters()) { p.grad?.dispose(); p.grad = null; }
      const delta = c.endsWith("_delta");
      const params = {
        lossType: (delta ? c.slice(0, -6) : c) as LossType, epsilon: conv.epsilon, epsilonHigh: conv.epsilon_high ?? conv.epsilon,
        delta: delta ? conv.delta : 0, beta: conv.beta, temperature: conv.temperature, maxCompletionLength: conv.max_completion_length,
      };
      const lossVal = scope(() => {
        const { loss } = batchLoss(model, batch, ref.float32("old_logps"), ref.float32("ref_logps"), ref.float32("advantages"), params);
        backward(loss);
        return loss.item();
      });
      const want = ref.float32(`loss.${c}`)[0];
      assert.ok(Math.abs(lossVal - want) <= 1e-4 * Math.max(1, Math.abs(want)) + 1e-7, `${c}: loss ${lossVal} vs ${want}`);
      let checked = 0, worst = 0;
      for (const key of ref.tensors.keys()) {
        if (!key.startsWith(`grad.${c}.`)) continue;
        const m = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/.exec(key.slice(`grad.${c}.`.length).replace(".default.weight", ".weight"))!;
        const g = model.adapter!.modules.get(m[1])![m[2] as "A" | "B"].grad;
        assert.ok(g, `${key}: no gradient`);
        const e = relErr(g.f32(), ref.float32(key));
        worst = Math.max(worst, e);
        assert.ok(e <= 1e-4, `${c} ${key}: relative gradient error ${e}`);
        checked++;
      }
      assert.equal(checked, model.adapter!.parameters().length);
      console.log(`cuda ${name} ${c}: loss ${lossVal} (ref ${want}), worst LoRA grad rel err ${worst.toExponential(2)}`);
    }
  });
}
