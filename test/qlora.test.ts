// 4-bit base models (QLoRA) against the f32 path on their dequantised weights: every fixture model quantised at load
// (nf4 and fp4, with and without double quantisation) gives the logits of an f32 model whose linear weights are the
// 4-bit weights dequantised by the one-at-a-time reference (test/q4-reference.ts), ≤ 1e-5 relative; with its PEFT
// adapter too; the LoRA gradients of a loss through the 4-bit base (backward to the input through q4_gemm) equal the
// f32 model's; generation through the KV cache (fused decode layers, graphs) samples the same tokens. On every device
// (the CUDA emulator in `npm run test:cuda-emu`: a seeded sample of the models there, all of them on the CPU).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { readSafetensors, writeSafetensors, type StWriteTensor } from "../src/models/safetensors.ts";
import { CausalLM } from "../src/models/model.ts";
import { backward, noGrad, scale, scope, sum } from "../src/engine/index.ts";
import { Q4Weight } from "../src/engine/quant4.ts";
import { generate } from "../src/generate/generate.ts";
import type { Quant4Settings } from "../src/models/bnb4.ts";
import { availableDevices, useDevice } from "./devices.ts";
import { refDequantize } from "./q4-reference.ts";

const models = fixtureModels();
const COMBOS: Quant4Settings[] = [
  { type: "nf4", doubleQuant: true, computeDtype: "bf16" }, { type: "nf4", doubleQuant: false, computeDtype: "bf16" },
  { type: "fp4", doubleQuant: true, computeDtype: "bf16" }, { type: "fp4", doubleQuant: false, computeDtype: "bf16" },
];
const label = (q: Quant4Settings) => `${q.type}${q.doubleQuant ? " double-quant" : ""}`;

/** A copy of the model folder whose 4-bit linear weights are replaced by the reference's dequantised values (f32). */
export function dequantizedCopy(dir: string, model: CausalLM): string {
  const out = mkdtempSync(join(tmpdir(), "aha-deq-"));
  const src = readSafetensors(join(dir, "model.safetensors"));
  const tensors: Record<string, StWriteTensor> = {};
  for (const [name, info] of src.tensors) tensors[name] = { dtype: "F32", shape: info.shape, data: src.float32(name) };
  for (const l of model.layers) for (const [mod, { W }] of l.linears) {
    assert.ok(W instanceof Q4Weight, `${mod} is 4-bit`);
    tensors[`${mod}.weight`] = { dtype: "F32", shape: W.shape, data: refDequantize(W.toParts()) };
  }
  writeSafetensors(join(out, "model.safetensors"), tensors);
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  delete cfg.quantization_config;
  writeFileSync(join(out, "config.json"), JSON.stringify(cfg));
  return out;
}

function logitsOf(model: CausalLM, ref: ReturnType<typeof readSafetensors>): Float32Array {
  const [B, T] = ref.info("input_ids").shape;
  return noGrad(() => scope(() => model.logits(model.forward(ref.int32("input_ids"), B, T, { attentionMask: ref.int32("attention_mask"), positions: ref.int32("position_ids") })).f32()));
}
/** max |a − b| / max |b| */
function relDiff(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return d / m;
}

for (const device of availableDevices()) {
  // the emulator runs every CUDA thread as a fiber: there, a seeded sample of two models covers the four settings
  const sample = device === "cpu" ? models : models.filter((_, i) => [1, 4].includes(i % models.length));
  for (const dir of sample) for (const q of COMBOS) {
    test(`${device} ${basename(dir)} ${label(q)}: logits equal the f32 path on the dequantised weights (≤ 1e-5 relative)`, async () => {
      await useDevice(device);
      const ref = readSafetensors(join(dir, "reference.safetensors"));
      const m4 = CausalLM.load(dir, { quantization: q });
      const deq = dequantizedCopy(dir, m4);
      try {
        const m32 = CausalLM.load(deq);
        const got = logitsOf(m4, ref), want = logitsOf(m32, ref);
        const rel = relDiff(got, want);
        assert.ok(rel <= 1e-5, `relative max |Δlogit| ${rel}`);
        // and 4-bit is a real approximation of the model, not the model itself
        assert.ok(relDiff(want, logitsOf(CausalLM.load(dir), ref)) > 1e-4, "the dequantised model differs from the original");
        if (q.type === "nf4" && q.doubleQuant && existsSync(join(dir, "adapter"))) {
          const a4 = CausalLM.load(dir, { quantization: q, adapter: join(dir, "adapter") }), a32 = CausalLM.load(deq, { adapter: join(dir, "adapter") });
          const relA = relDiff(logitsOf(a4, ref), logitsOf(a32, ref));
          assert.ok(relA <= 1e-5, `with the adapter: relative max |Δlogit| ${relA}`);
        }
      } finally {
        rmSync(deq, { recursive: true, force: true });
      }
    });
  }

  const dir = models.find((d) => existsSync(join(d, "adapter")))!;
  test(`${device} ${basename(dir)} nf4: LoRA gradients through the 4-bit base equal the f32 model's, and generation samples the same tokens`, async () => {
    await useDevice(device);
    const q = COMBOS[0];
    const m4 = CausalLM.load(dir, { quantization: q, adapter: join(dir, "adapter") });
    const deq = dequantizedCopy(dir, m4);
    try {
      const m32 = CausalLM.load(deq, { adapter: join(dir, "adapter") });
      const B = 2, T = 9, V = m4.config.vocabSize;
      const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 37 + 11) % V), targets = Int32Array.from({ length: B * T }, (_, i) => (i * 53 + 5) % V);
      const grads = (m: CausalLM, ckpt: boolean) => {
        m.gradientCheckpointing = ckpt;
        for (const p of m.parameters()) { p.grad?.dispose(); p.grad = null; }
        scope(() => {
          const lp = m.tokenLogprobs(m.forward(ids, B, T), targets).logp;
          backward(sum(scale(lp, -1)));
        });
        return m.parameters().map((p) => p.grad!.f32());
      };
      for (const ckpt of [false, true]) {
        const g4 = grads(m4, ckpt), g32 = grads(m32, ckpt);
        g4.forEach((g, i) => assert.ok(relDiff(g, g32[i]) <= 1e-4, `parameter ${i} (checkpointing ${ckpt}): relative max |Δgrad| ${relDiff(g, g32[i])}`));
        assert.ok(g4.some((g) => g.some((v) => v !== 0)));
      }
      const prompts = [[3, 14, 15, 92], [65, 35]];
      for (const graphs of [false, true]) {
        const a = generate(m4, prompts, { n: 2, temperature: 0.7, seed: 3, maxTokens: 6, graphs });
        const b = generate(m32, prompts, { n: 2, temperature: 0.7, seed: 3, maxTokens: 6, graphs });
        assert.deepEqual(a.map((c) => c.tokenIds), b.map((c) => c.tokenIds), `graphs ${graphs}`);
      }
    } finally {
      rmSync(deq, { recursive: true, force: true });
    }
  });
}


// CUDA's default GEMM mode with a 4-bit base: the products run in the compute dtype (bf16 panels, the activations'
// bf16 copies into the GEMV of decode steps), the KV cache is bf16, and the logits stay within bf16 rounding of the
// exact mode's (test/bf16-mode.test.ts explains the 2e-2 of the logits' scale)
if (availableDevices().includes("cuda")) test("cuda bf16 mode, 4-bit base: logits within bf16 rounding of exact, bf16 KV cache, graphed decode", async () => {
  await useDevice("cuda");
  const { cudaBackend } = await import("../src/engine/cuda.ts");
  const dir = models.find((d) => basename(d) === "qwen2") ?? models[0];
  const ref = readSafetensors(join(dir, "reference.safetensors"));
  const m4 = CausalLM.load(dir, { quantization: COMBOS[0] });
  const exact = logitsOf(m4, ref);
  cudaBackend().setGemmMode("bf16");
  try {
    assert.equal(m4.kvDtype(), "bf16");
    const rel = relDiff(logitsOf(m4, ref), exact);
    assert.ok(rel <= 2e-2 && rel > 1e-5, `bf16 mode vs exact: ${rel} of the logits' scale`);
    const out = generate(m4, [[3, 14, 15, 92], [65, 35]], { n: 2, temperature: 0.7, seed: 3, maxTokens: 5, graphs: true });
    assert.equal(out.length, 4);
    for (const c of out) assert.equal(c.tokenIds.length, 5);
  } finally {
    cudaBackend().setGemmMode("exact");
  }
});
