// Offloaded gradient checkpointing (gradient_checkpointing: "offload", engine/offload.ts): on every device (the CPU
// through its own copy path, CUDA's pinned copies on their own stream on the emulator) the gradients are exactly those
// of plain checkpointing, the device holds one layer's input beyond the current one (its allocated peak drops by the
// other layers' inputs), a 4-bit base works under it, and GRPO training with it (CPU: micro-batches replayed from a
// captured graph) leaves the same metrics and parameters as without.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { availableDevices, useDevice } from "./devices.ts";
import { writeRandomModel } from "../bench/random-model.ts";
import { CausalLM } from "../src/models/model.ts";
import { backward, getBackend, scale, scope, sum } from "../src/engine/index.ts";
import { GRPOTrainer } from "../src/grpo/trainer.ts";
import { completionText, type NamedReward } from "../src/rewards/index.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-offload-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
// deep enough for the saving to show: 6 layers
const deep = join(tmp, "deep");
writeRandomModel(deep, { model_type: "llama", hidden_size: 64, num_hidden_layers: 6, num_attention_heads: 4, num_key_value_heads: 2,
  intermediate_size: 96, vocab_size: 256, tie_word_embeddings: true }, 7);

for (const device of availableDevices()) {
  for (const q4 of [false, true]) test(`${device}${q4 ? " 4-bit" : ""}: offloaded checkpointing gives plain checkpointing's gradients, and holds one layer's input beyond the current one`, async () => {
    await useDevice(device);
    const be = getBackend(device);
    const model = CausalLM.load(deep, q4 ? { quantization: { type: "nf4", doubleQuant: true, computeDtype: "bf16" } } : {});
    let s = 5;
    model.addAdapter({ r: 4, lora_alpha: 8, target_modules: "all-linear" }, () => ((s = (s * 16807) % 2147483647) / 2147483647));
    for (const p of model.parameters()) if (p.name?.includes("lora_B")) p.backend.write(p.buf, Float32Array.from({ length: p.numel }, (_, i) => Math.sin(i) * 0.01));
    const B = 2, T = 24, N = B * T, C = model.config.hidden, L = model.config.layers, V = model.config.vocabSize;
    const ids = Int32Array.from({ length: N }, (_, i) => (i * 31 + 7) % V), targets = Int32Array.from({ length: N }, (_, i) => (i * 17 + 3) % V);
    const step = (gc: boolean | "offload") => {
      model.gradientCheckpointing = gc;
      for (const p of model.parameters()) { p.grad?.dispose(); p.grad = null; }
      be.synchronize();
      const base = be.memory().allocated;
      be.resetPeak();
      scope(() => backward(sum(scale(model.tokenLogprobs(model.forward(ids, B, T), targets).logp, -1))));
      be.synchronize();
      const peak = be.memory().peak - base;
      const grads = model.parameters().map((p) => p.grad!.f32());
      return { peak, grads };
    };
    step(true); // (the first backward allocates the adapter's gradient buffer)
    const plain = step(true), off = step("offload"), again = step(true);
    // (CUDA's atomic accumulations may add in another order from run to run: last bits only)
    if (device === "cpu") assert.deepEqual(off.grads, plain.grads, "offloading changes no gradient");
    else off.grads.forEach((g, i) => g.forEach((v, j) => assert.ok(Math.abs(v - plain.grads[i][j]) <= 1e-6 * (1 + Math.abs(plain.grads[i][j])), `gradient ${i}[${j}]`)));
    assert.equal(again.peak, plain.peak, "(the peak measure is repeatable)");
    // the inputs of all but two layers [N, C] f32 are off the device at the backward's start
    const saved = plain.peak - off.peak, layerInput = N * C * 4;
    assert.ok(saved >= (L - 3) * layerInput, `peak ${plain.peak} → ${off.peak}: ${saved} bytes saved, expected about ${(L - 2) * layerInput}`);
    assert.ok(off.grads.some((g) => g.some((v) => v !== 0)));
  });

  test(`${device}: GRPO with gradient_checkpointing offload trains as with plain checkpointing${device === "cpu" ? " (micro-batches from a captured graph)" : ""}`, async () => {
    await useDevice(device);
    const modelDir = fixtureModels().find((d) => d.endsWith("qwen2")) ?? fixtureModels()[0];
    const variety: NamedReward = { name: "variety", fn: ({ completions }) => completions.map((c) => new Set(completionText(c)).size / 10) };
    const rows = Array.from({ length: 8 }, (_, i) => ({ prompt: `question ${i}: what is ${i} + ${i}?`, answer: String(2 * i) }));
    const run = async (gc: boolean | "offload") => {
      const t = await GRPOTrainer.create({ model: modelDir, device, maxCompletionLength: 5, numGenerations: 4, learningRate: 1e-2, rewardFuncs: ["unused"], seed: 4,
        logCompletions: 0, maxSteps: 1, perDeviceTrainBatchSize: 2, gradientAccumulationSteps: 2, gradientCheckpointing: gc, outputDir: join(tmp, `${device}-${gc}`) } as never,
        { rows, rewardFuncs: [variety], quiet: true });
      const metrics = await t.train();
      return { loss: Number(metrics[0].loss), params: t.model.parameters().map((p) => p.f32()) };
    };
    const a = await run(true), b = await run("offload");
    const tol = device === "cpu" ? 0 : 1e-4; // (as test/train-graph.test.ts: CUDA's atomics add in any order)
    assert.ok(Math.abs(b.loss - a.loss) <= tol, `loss ${b.loss} vs ${a.loss}`);
    b.params.forEach((p, i) => p.forEach((v, j) => assert.ok(Math.abs(v - a.params[i][j]) <= tol, `param ${i}[${j}]: ${v} vs ${a.params[i][j]}`)));
  });
}
