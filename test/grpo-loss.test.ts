// GRPO loss parity: for every fixture model with reference_grpo.safetensors, each loss type (and its two-sided
// delta variant) matches transformers/TRL's loss, and the gradient of every LoRA parameter matches
// (‖a − b‖ / ‖b‖ ≤ 1e-4), on every available device. Conventions are read from reference_grpo.json.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join, basename } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { readSafetensors } from "../src/models/safetensors.ts";
import { CausalLM } from "../src/models/model.ts";
import { backward, defaultBackend, scope } from "../src/engine/index.ts";
import { batchLoss, lossWeights, type LossType } from "../src/grpo/loss.ts";
import { availableDevices, useDevice } from "./devices.ts";

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

for (const device of availableDevices()) for (const dir of fixtureModels()) {
  const name = `${device} ${basename(dir)}`;
  const stPath = join(dir, "reference_grpo.safetensors");
  if (!existsSync(stPath)) continue;
  const conv = JSON.parse(readFileSync(join(dir, "reference_grpo.json"), "utf8"));
  const ref = readSafetensors(stPath);
  const cases = [...ref.tensors.keys()].filter((k) => k.startsWith("loss.")).map((k) => k.slice(5));
  test(`${name}: GRPO fixture has cases`, () => assert.ok(cases.length > 0));
  for (const c of cases) for (const ckpt of [false, true, "first half"] as const) {
    // with gradient checkpointing (of every layer, or of the first half of them) only for the plain grpo case: it
    // must not change a single gradient
    if (ckpt && c !== "grpo") continue;
    test(`${name}: GRPO loss and LoRA gradients, ${c}${ckpt ? ` (gradient checkpointing${ckpt === true ? "" : `, ${ckpt} of the layers`})` : ""}`, async () => {
      await useDevice(device);
      const model = CausalLM.load(dir, { adapter: join(dir, "adapter") });
      model.gradientCheckpointing = ckpt === "first half" ? Math.ceil(model.config.layers / 2) : ckpt;
      const [B, P] = ref.info("prompt_ids").shape;
      const T = ref.info("completion_ids").shape[1];
      const batch = {
        promptIds: ref.int32("prompt_ids"), completionIds: ref.int32("completion_ids"),
        completionMask: ref.float32("completion_mask"), B, P, T,
      };
      const delta = c.endsWith("_delta");
      const lossType = (delta ? c.slice(0, -6) : c) as LossType;
      const params = {
        lossType, epsilon: conv.epsilon, epsilonHigh: conv.epsilon_high ?? conv.epsilon, delta: delta ? conv.delta : 0,
        beta: conv.beta, temperature: conv.temperature, maxCompletionLength: conv.max_completion_length,
      };
      const lossVal = scope(() => {
        const { loss } = batchLoss(model, batch, ref.float32("old_logps"), ref.float32("ref_logps"), ref.float32("advantages"), params);
        backward(loss);
        return loss.item();
      });
      const want = ref.float32(`loss.${c}`)[0];
      assert.ok(Math.abs(lossVal - want) <= 1e-4 * Math.max(1, Math.abs(want)) + 1e-7, `${c}: loss ${lossVal} vs ${want}`);
      let checked = 0;
      for (const key of ref.tensors.keys()) {
        if (!key.startsWith(`grad.${c}.`)) continue;
        const peft = key.slice(`grad.${c}.`.length).replace(".default.weight", ".weight");
        const m = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/.exec(peft)!;
        const pair = model.adapter!.modules.get(m[1]);
        assert.ok(pair, `${key}: no such LoRA module in the model`);
        const g = pair[m[2] as "A" | "B"].grad;
        assert.ok(g, `${key}: no gradient`);
        const e = relErr(g.f32(), ref.float32(key));
        assert.ok(e <= 1e-4, `${key}: relative gradient error ${e}`);
        checked++;
      }
      assert.equal(checked, model.adapter!.parameters().length, "every LoRA parameter has a reference gradient");
    });
  }
}

// what checkpointing some layers buys: a peak between none and all (the gradients are checked above)
for (const device of availableDevices()) {
  const dir = fixtureModels().find((d) => existsSync(join(d, "reference_grpo.safetensors")));
  test(`${device}: checkpointing the first half of the layers peaks between checkpointing none and all`, { skip: !dir && "no GRPO fixture" }, async () => {
    await useDevice(device);
    const ref = readSafetensors(join(dir!, "reference_grpo.safetensors"));
    const [B, P] = ref.info("prompt_ids").shape, T = ref.info("completion_ids").shape[1];
    const batch = { promptIds: ref.int32("prompt_ids"), completionIds: ref.int32("completion_ids"), completionMask: ref.float32("completion_mask"), B, P, T };
    const params = { lossType: "grpo" as const, epsilon: 0.2, epsilonHigh: 0.2, delta: 0, beta: 0, temperature: 1, maxCompletionLength: T };
    const model = CausalLM.load(dir!, { adapter: join(dir!, "adapter") });
    const L = model.config.layers, be = defaultBackend();
    const peak = (ckpt: boolean | number) => {
      model.gradientCheckpointing = ckpt;
      be.resetPeak();
      const before = be.memory().allocated;
      scope(() => backward(batchLoss(model, batch, null, null, ref.float32("advantages"), params).loss));
      for (const p of model.parameters()) { p.grad?.dispose(); p.grad = null; }
      return be.memory().peak - before;
    };
    const none = peak(false), all = peak(true), half = peak(Math.ceil(L / 2));
    assert.ok(L >= 2, `${L} layers`);
    assert.ok(all < half && half < none, `peaks: all ${all} < first half ${half} < none ${none} bytes`);
  });
}

test("loss weights normalise as each loss type says", () => {
  // two sequences: 2 and 1 real tokens of T = 3
  const mask = Float32Array.from([1, 1, 0, 1, 0, 0]);
  const w = (t: LossType, n?: number) => Array.from(lossWeights(mask, 2, 3, { lossType: t, maxCompletionLength: 4, numItemsInBatch: n }));
  assert.deepEqual(w("grpo").map((x) => +x.toFixed(6)), [0.25, 0.25, 0, 0.5, 0, 0]);
  assert.deepEqual(w("bnpo").map((x) => +x.toFixed(6)), [1 / 3, 1 / 3, 0, 1 / 3, 0, 0].map((x) => +x.toFixed(6)));
  assert.deepEqual(w("dr_grpo"), [0.125, 0.125, 0, 0.125, 0, 0]);
  assert.deepEqual(w("dapo", 6).map((x) => +x.toFixed(6)), [1 / 6, 1 / 6, 0, 1 / 6, 0, 0].map((x) => +x.toFixed(6)));
});
