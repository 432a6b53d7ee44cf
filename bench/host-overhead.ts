// Host-side cost of a GRPO train step and of a decode step, with every kernel replaced by a no-op: what the
// JavaScript engine (autograd, scopes, allocation bookkeeping, host-side tables and masks) costs per step before any
// device work. On a GPU the step cannot be faster than this plus the native launch costs, so it shows when a step
// is host-bound. Decode is timed three ways: model.forward, a DecodeStep run eagerly, and a DecodeStep replaying
// its captured graph (what is left on the host per token step: the uploads and one launch); then a whole rollout
// through generate() with graphs (sampling in the step: the host's work per token step). Runs on any machine (no
// GPU needed): a random Qwen2.5-0.5B-like model in bf16 (24 layers, 14/2 heads of 64, small MLP and vocabulary: the
// op sequence and token counts are those of the real shape, the weights stay small). The no-op backend answers as
// CUDA's default GEMM mode does, and counts the activation conversion a GEMM of f32 activations by 16-bit weights
// makes inside it, so the kernel counts are those a CUDA step launches.
//   node --import tsx bench/host-overhead.ts [--micro 8] [--steps 3] [--decode-only] (AHA_FUSED_DECODE=0: the general layer block)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeRandomModel } from "./random-model.ts";
import { CausalLM } from "../src/models/model.ts";
import { KVCache } from "../src/models/kvcache.ts";
import { backward, noGrad, registerBackend, scope, setDefaultDevice, type Backend } from "../src/engine/index.ts";
import { hostArray, type DType } from "../src/engine/dtype.ts";
import { batchLoss } from "../src/grpo/loss.ts";
import { AdamW } from "../src/grpo/optim.ts";
import { DecodeStep } from "../src/generate/decode-step.ts";
import { generate } from "../src/generate/generate.ts";
import { GraphedMicroBatches } from "../src/grpo/graph-step.ts";
import { flatOf } from "../src/engine/flat.ts";

const arg = (name: string, def: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : def; };
const MICRO = Number(arg("micro", "8")), STEPS = process.argv.includes("--decode-only") ? 0 : Number(arg("steps", "3"));
const NSEQ = 64, P = 128, T = 256;
const histogram = (steps: number) => [...byName].sort((a, b) => b[1] - a[1]).map(([n, c]) => `${n} ${+(c / steps).toFixed(1)}`).join(", ");

// a backend whose kernels do nothing: buffers are numbers, reads return zeros
let calls = 0, next = 1;
const byName = new Map<string, number>(); // kernel name → calls since the last reset
const count = (name: string) => { calls++; byName.set(name, (byName.get(name) ?? 0) + 1); };
const noop: Backend = {
  device: "cuda",
  alloc: () => next++,
  free: () => {},
  view: (b: number) => b,
  write: () => count("write"),
  read: (_b: number, dtype: DType, n: number) => hostArray(dtype, n),
  readAsync: (_b: number, dtype: DType, n: number) => () => hostArray(dtype, n),
  supports: () => true,
  synchronize: () => {},
  memory: () => ({ allocated: 0, peak: 0, buffers: 0 }),
  resetPeak: () => {},
  captureGraph: <T>(fn: () => T) => ({ graph: 1, result: fn() }),
  launchGraph: () => count("graph_launch"),
  destroyGraph: () => {},
  // CUDA's default GEMM mode: a GEMM of f32 activations by 16-bit weights first converts the activations, one more
  // kernel, counted as "convert (in gemm)"; an op that converts them itself passes their dtype (argument 19)
  gemmActivationDtype: (w: DType) => (w === "f32" ? "f32" : w),
  k: new Proxy({}, { get: (_t, name) => (...a: unknown[]) => {
    count(String(name));
    if (name === "gemm" && a[3] !== 0 && !a[19]) count("convert (in gemm)");
    return 0;
  } }) as Backend["k"],
};

const dir = mkdtempSync(join(tmpdir(), "aha-host-"));
try {
  writeRandomModel(dir, { model_type: "qwen2", hidden_size: 896, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2,
    intermediate_size: 64, vocab_size: 1024, tie_word_embeddings: true }, 1, "BF16");
  registerBackend(noop);
  setDefaultDevice("cuda");
  const model = CausalLM.load(dir);
  model.addAdapter({ r: 16, lora_alpha: 32, target_modules: "all-linear" }, Math.random);
  model.gradientCheckpointing = true;
  const opt = new AdamW(model.parameters(), { lr: 1e-5 });
  const ids = (n: number) => Int32Array.from({ length: n }, (_, i) => (i * 7919) % 1000);
  const promptIds = ids(NSEQ * P), completionIds = ids(NSEQ * T);
  const lossParams = { lossType: "grpo" as const, epsilon: 0.2, epsilonHigh: 0.2, beta: 0, temperature: 1, maxCompletionLength: T };
  for (let step = 0; step < STEPS; step++) {
    calls = 0;
    byName.clear();
    const t0 = performance.now();
    for (let m = 0; m < NSEQ / MICRO; m++) {
      const s = m * MICRO;
      scope(() => {
        const { loss } = batchLoss(model, { promptIds: promptIds.subarray(s * P, (s + MICRO) * P), completionIds: completionIds.subarray(s * T, (s + MICRO) * T),
          completionMask: new Float32Array(MICRO * T).fill(1), B: MICRO, P, T }, new Float32Array(MICRO * T), null, new Float32Array(MICRO).fill(0.5), lossParams);
        backward(loss);
      });
    }
    opt.update();
    opt.zeroGrad();
    const ms = performance.now() - t0;
    console.log(`train step (64 × (128 + 256), micro-batch ${MICRO}): host ${ms.toFixed(1)} ms, ${calls} kernel calls + writes, ${(1000 * ms / calls).toFixed(2)} µs each`);
  }
  if (STEPS) console.log(`  per train step: ${histogram(1)}`);
  // the same steps with the micro-batches replayed from one captured graph per step (the capture itself runs the
  // JavaScript of one micro-batch; the no-op backend's capture also counts its calls)
  const flat = flatOf(opt.params)!;
  for (let step = 0; step < STEPS; step++) {
    calls = 0;
    byName.clear();
    const t0 = performance.now();
    flat.zeroGradsForAccumulation();
    const g = new GraphedMicroBatches(model, MICRO, P, T, 1, { epsilonLow: 0.2, epsilonHigh: 0.2, delta: 0, beta: 0 }, true, false);
    for (let m = 0; m < NSEQ / MICRO; m++) {
      const s = m * MICRO;
      const out = g.run({ promptIds: promptIds.subarray(s * P, (s + MICRO) * P), completionIds: completionIds.subarray(s * T, (s + MICRO) * T),
        completionMask: new Float32Array(MICRO * T).fill(1), B: MICRO, P, T }, new Float32Array(MICRO * T), null, new Float32Array(MICRO * T).fill(0.5), new Float32Array(MICRO * T).fill(1 / (MICRO * T)));
      for (const t of Object.values(out)) t.dispose();
    }
    g.dispose();
    opt.update();
    opt.zeroGrad();
    const ms = performance.now() - t0;
    console.log(`train step, micro-batches replayed from a graph: host ${ms.toFixed(1)} ms, ${calls} kernel calls + writes + launches (${calls - (byName.get("write") ?? 0) - (byName.get("graph_launch") ?? 0)} in the one capture)`);
  }
  const cache = new KVCache(model.config, NSEQ, P + T);
  noGrad(() => scope(() => { model.forward(promptIds, NSEQ, P, { cache }); }));
  calls = 0;
  byName.clear();
  const t0 = performance.now();
  for (let t = 0; t < 64; t++) noGrad(() => scope(() => { model.logits(model.forward(completionIds.subarray(t * NSEQ, (t + 1) * NSEQ), NSEQ, 1, { cache })); }));
  const ms = (performance.now() - t0) / 64;
  console.log(`decode step (64 sequences): host ${ms.toFixed(2)} ms, ${(calls / 64).toFixed(0)} kernel calls + writes per step, ${(1000 * ms / (calls / 64)).toFixed(2)} µs each`);
  console.log(`  per decode step: ${histogram(64)}`);
  cache.dispose();
  // the same steps through a DecodeStep: eager (fixed buffers), then replaying a (no-op) captured graph
  for (const graph of [false, true]) {
    const c = new KVCache(model.config, NSEQ, P + T);
    noGrad(() => scope(() => { model.forward(promptIds, NSEQ, P, { cache: c }); }));
    const step = new DecodeStep(model, c, graph);
    step.run(completionIds.subarray(0, NSEQ));
    calls = 0;
    byName.clear();
    const t1 = performance.now();
    for (let t = 1; t < 65; t++) step.run(completionIds.subarray(t * NSEQ, (t + 1) * NSEQ));
    const ms1 = (performance.now() - t1) / 64;
    console.log(`decode step through DecodeStep${graph ? ", graph replay" : ", eager"}: host ${ms1.toFixed(2)} ms, ${(calls / 64).toFixed(0)} kernel calls + writes + launches per step`);
    console.log(`  per decode step: ${histogram(64)}`);
    step.dispose();
    c.dispose();
  }
  // a whole rollout through generate() with graphs (each step samples on the device and is enqueued one ahead): the
  // host's work per step, which must stay below the GPU's for the GPU never to wait (reads give token 0: no stops)
  const prompts = Array.from({ length: NSEQ / 8 }, (_, b) => Array.from(promptIds.subarray(b * 8 * P, b * 8 * P + P)));
  calls = 0;
  byName.clear();
  const t2 = performance.now();
  generate(model, prompts, { n: 8, maxTokens: T, temperature: 1, seed: 1, logprobs: false, graphs: true });
  const ms2 = (performance.now() - t2) / T;
  console.log(`generate() ${prompts.length}×8×${T} with graphs: host ${ms2.toFixed(3)} ms per step (prefill and capture included), ` +
    `${(calls / T).toFixed(1)} kernel calls + writes + launches per step`);
  console.log(`  per step: ${histogram(T)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
