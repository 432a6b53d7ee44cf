// GRPO micro-batches replayed from a captured graph (src/grpo/graph-step.ts; CUDA graphs on the GPU, recorded kernel
// calls on the CPU): on every device, training with `graphs` logs the same metrics and leaves the same parameters
// as training without, with LoRA and with full fine-tuning, old and reference log-probs, and with LoRA dropout (its
// masks drawn on the device). The loss kernel's on-device output equals its returned value. The CPU's recorded graphs reuse the
// buffers a capture frees, as CUDA's do.
import { runMetrics } from "../src/grpo/metrics.ts";
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { availableDevices, useDevice } from "./devices.ts";
import { GRPOTrainer } from "../src/grpo/trainer.ts";
import { fromHost, getBackend, grpoLoss, scale, scope } from "../src/engine/index.ts";
import { GraphedMicroBatches } from "../src/grpo/graph-step.ts";
import { completionText, type NamedReward } from "../src/rewards/index.ts";

const modelDir = fixtureModels().find((d) => d.endsWith("qwen2")) ?? fixtureModels()[0];
const tmp = mkdtempSync(join(tmpdir(), "aha-train-graph-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const variety: NamedReward = { name: "variety", fn: ({ completions }) => completions.map((c) => new Set(completionText(c)).size / 10) };
const rows = Array.from({ length: 16 }, (_, i) => ({ prompt: `question ${i}: what is ${i} + ${i}?`, answer: String(2 * i) }));

/** Run fn counting micro-batches run through GraphedMicroBatches, and how many of those replayed a captured graph. */
async function countingGraphed<T>(fn: () => Promise<T>): Promise<[T, number, number]> {
  const run = GraphedMicroBatches.prototype.run;
  let runs = 0, replays = 0;
  GraphedMicroBatches.prototype.run = function (this: GraphedMicroBatches, ...a: Parameters<typeof run>) {
    runs++;
    const out = run.apply(this, a);
    if (this.graphed) replays++;
    return out;
  };
  try {
    return [await fn(), runs, replays];
  } finally {
    GraphedMicroBatches.prototype.run = run;
  }
}

// CUDA's atomic accumulations (attention and embedding backward, column sums) add in a different order on each run,
// and AdamW's normalised step (lr 1e-2 here) turns last-bit differences of small gradients into visible ones (1.3e-5
// seen on the CUDA emulator, which reorders them too). The CPU is deterministic.
const paramTol = (device: string) => (device === "cuda" ? 1e-4 : 1e-5);

/**
 * Train with cfg without graphs and with them; assert the same metrics (1e-5) and parameters (paramTol). Returns how
 * many micro-batches went through GraphedMicroBatches without graphs (none) and with them, and how many replayed.
 */
async function graphedEqualsPlain(device: string, cfg: Record<string, unknown>, tag: string): Promise<{ plainRuns: number; runs: number; replays: number; losses: number[] }> {
  const run = async (graphs: boolean) => {
    const t = await GRPOTrainer.create({ ...cfg, graphs, outputDir: join(tmp, `${device}-${tag}-${graphs}`) } as never, { rows, rewardFuncs: [variety], quiet: true });
    const metrics = await t.train();
    return { metrics: metrics.map(runMetrics), params: t.model.parameters().map((p) => p.f32()) };
  };
  const [plain, plainRuns] = await countingGraphed(() => run(false));
  const [graphed, runs, replays] = await countingGraphed(() => run(true));
  assert.equal(graphed.metrics.length, plain.metrics.length);
  graphed.metrics.forEach((m, i) => {
    for (const [k, v] of Object.entries(plain.metrics[i])) {
      const g = (m as Record<string, number>)[k];
      assert.ok(typeof v !== "number" || Math.abs(g - v) <= 1e-5 * Math.max(1, Math.abs(v)), `step ${i} ${k}: ${g} vs ${v}`);
    }
  });
  graphed.params.forEach((p, i) => p.forEach((v, j) => assert.ok(Math.abs(v - plain.params[i][j]) <= paramTol(device), `param ${i}[${j}]: ${v} vs ${plain.params[i][j]}`)));
  return { plainRuns, runs, replays, losses: plain.metrics.map((m) => m.loss as number) };
}

for (const device of availableDevices()) {
  for (const full of [false, true]) test(`${device}: training with graphs equals training without (${full ? "full fine-tuning" : "LoRA"}, old + ref log-probs)`, async () => {
    await useDevice(device);
    const cfg = { model: modelDir, device, maxCompletionLength: 6, numGenerations: 4, learningRate: 1e-2, lossType: "grpo" as const, rewardFuncs: ["unused"],
      seed: 3, logCompletions: 0, beta: 0.04, numIterations: 2, maxSteps: 2, perDeviceTrainBatchSize: 3, gradientAccumulationSteps: 4, fullFinetune: full };
    const { plainRuns, runs, replays } = await graphedEqualsPlain(device, cfg, String(full));
    assert.equal(plainRuns, 0);
    // 2 optimiser steps (one rollout, 2 iterations), each 12 completions in 4 micro-batches of 3, every one replayed
    assert.equal(runs, 8);
    assert.equal(replays, 8);
  });

  // the loss variants whose terms live in the native loss kernel, graphed: rows, sequence ratios, masks and the
  // entropy quantile computed on the device inside the captured micro-batch (on the CUDA emulator, which is slow,
  // the first: cispo's and sapo's terms are checked op by op against the CPU in cuda-ops.test.ts)
  const variants: [string, Record<string, unknown>][] = [
    ["GSPO + entropy mask + off-policy mask + bias-corrected KL", { importanceSamplingLevel: "sequence", topEntropyQuantile: 0.5, offPolicyMaskThreshold: 0, useBiasCorrectionKl: true }],
    ["cispo with off-policy steps (steps_per_generation twice the accumulation)", { lossType: "cispo", epsilonHigh: 1.1, stepsPerGeneration: 4, numIterations: 1, maxSteps: 3 }],
    ["sapo", { lossType: "sapo" }],
  ];
  for (const [name, extra] of device === "cuda" ? variants.slice(0, 1) : variants) test(`${device}: training with graphs equals training without, ${name}`, async () => {
    await useDevice(device);
    const cfg = { model: modelDir, device, maxCompletionLength: 5, numGenerations: 2, learningRate: 1e-2, lossType: "grpo", rewardFuncs: ["unused"],
      seed: 3, logCompletions: 0, beta: 0.04, numIterations: 2, maxSteps: 2, perDeviceTrainBatchSize: 2, gradientAccumulationSteps: 2, ...extra };
    const { runs, replays, losses } = await graphedEqualsPlain(device, cfg, name.slice(0, 5));
    assert.ok(runs > 0 && replays === runs, `${replays} of ${runs} micro-batches replayed`);
    assert.ok(losses.every(Number.isFinite), "finite losses");
  });

  test(`${device}: with LoRA dropout, graphed training equals training without (masks drawn on the device from one seed per micro-batch)`, async () => {
    await useDevice(device);
    const cfg = { model: modelDir, device, maxCompletionLength: 4, numGenerations: 4, learningRate: 1e-2, rewardFuncs: ["unused"], seed: 3, logCompletions: 0,
      maxSteps: 2, perDeviceTrainBatchSize: 2, gradientAccumulationSteps: 2, lora: { r: 4, loraAlpha: 8, loraDropout: 0.3 } };
    const { runs, replays } = await graphedEqualsPlain(device, cfg, "dropout");
    assert.ok(runs > 0 && replays === runs, `${replays} of ${runs} micro-batches replayed`);
  });

  test(`${device}: grpo_loss writes the same loss to a device buffer as it returns`, async () => {
    await useDevice(device);
    const n = 37, r = (s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + s) * 0.3);
    const [logp, old, ref, adv, w] = [1, 2, 3, 4, 5].map((s) => fromHost(r(s), [n]));
    const p = { epsilonLow: 0.2, epsilonHigh: 0.28, delta: 0, beta: 0.04 };
    const host = grpoLoss(logp, old, ref, adv, w, p).item(), dev = grpoLoss(logp, old, ref, adv, w, p, true).item();
    assert.ok(Math.abs(host - dev) <= 1e-6 * Math.max(1, Math.abs(host)), `${dev} vs ${host}`);
    assert.ok(host !== 0);
  });
}

test("cpu graphs: a capture reuses the buffers it frees (as CUDA's allocator does), and the replay stays right", () => {
  const be = getBackend("cpu");
  const x = fromHost(Float32Array.from([1, 2, 3]), [3], "f32", be);
  const { graph, result } = be.captureGraph!(() => {
    const a = be.alloc("f32", 64);
    be.free(a, "f32", 64);
    const b = be.alloc("f32", 64);
    be.free(b, "f32", 64);
    assert.equal(a, b, "a freed buffer of the capture is handed out again");
    // a chain whose temporaries are freed as it goes: the replay must still compute 24 x
    return scope(() => scale(scale(scale(x, 2), 3), 4)).keep();
  });
  const outside = be.alloc("f32", 64);
  be.free(outside, "f32", 64);
  assert.notEqual(be.alloc("f32", 64), outside, "no reuse outside a capture");
  be.write(x.buf, Float32Array.from([1, -1, 0.5]));
  be.launchGraph!(graph);
  assert.deepEqual(Array.from(result.f32()), [24, -24, 12]);
  be.destroyGraph!(graph);
});
