// The tensor-core attention kernels inside a model: the fixture models' heads are 16 wide, so their tests never reach
// them (head dims 64/96/128 only; test/cuda-ops.test.ts checks them op by op). A random model with 64-wide heads
// (GQA, bf16 weights, LoRA with nonzero B's, left padding, gradient checkpointing) runs forward and backward in
// CUDA's 16-bit mode with each kernel pair asked for, WMMA and mma.sync, against the CPU's exact arithmetic on the
// same weights. Where a pair's tiles do not fit the device's shared memory the other runs (Turing: mma.sync for both),
// so the two runs differ exactly when the device's plans for them differ.
// bf16 rounds every GEMM input and attention's Q, K, V, P, dO and dS (2^-9 each). Measured on the CUDA emulator:
// hidden states 4.6e-3 of their scale from exact arithmetic, the loss 0.2 %, the worst LoRA gradient 1.1e-2 in norm,
// the two pairs' gradients 5e-3 apart. Bounds, about 4x those: 2e-2, 1e-2, 5e-2, 5e-2. Turing's fp16 (2^-12) stays
// well inside them (the emulator compiled as sm_75: 4.7e-4, 0.07 %, 1.3e-3).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeRandomModel } from "../bench/random-model.ts";
import { CausalLM } from "../src/models/model.ts";
import { backward, defaultBackend, fromHost, mul, noGrad, scope, sum } from "../src/engine/index.ts";
import { cudaSkip, useDevice } from "./devices.ts";

test("cuda: a model with 64-wide heads trains through both tensor-core attention kernel pairs as the CPU does, to 16-bit precision", { skip: cudaSkip() }, async (t) => {
  const { cudaBackend } = await import("../src/engine/cuda.ts");
  const dir = mkdtempSync(join(tmpdir(), "aha-tc-model-"));
  try {
    writeRandomModel(dir, { model_type: "qwen2", hidden_size: 256, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      intermediate_size: 384, vocab_size: 256, tie_word_embeddings: true }, 5, "BF16");
    const B = 2, T = 70, V = 256;
    const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 37 + 5) % V);
    const mask = Int32Array.from({ length: B * T }, (_, i) => (i >= T && i % T < 9 ? 0 : 1)); // left padding on row 1
    const run = () => {
      const model = CausalLM.load(dir);
      assert.equal(model.config.headDim, 64);
      let s = 11;
      const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5);
      const ad = model.addAdapter({ r: 8, lora_alpha: 16, target_modules: "all-linear" }, rnd);
      for (const p of ad.modules.values()) defaultBackend().write(p.B.buf, Float32Array.from({ length: p.B.numel }, () => rnd() * 0.1));
      model.gradientCheckpointing = true;
      const C = model.config.hidden, R = Float32Array.from({ length: B * T * C }, () => rnd());
      const opts = { attentionMask: mask };
      const h = noGrad(() => scope(() => model.forward(ids, B, T, opts).f32()));
      const loss = scope(() => { const l = sum(mul(model.forward(ids, B, T, opts), fromHost(R, [B * T, C]))); backward(l); return l.item(); });
      return { h, loss, grads: model.parameters().map((p) => p.grad!.f32()) };
    };
    await useDevice("cpu");
    const want = run();
    await useDevice("cuda");
    const be = cudaBackend();
    be.setGemmMode("bf16");
    const got: Record<string, ReturnType<typeof run>> = {}, plan: Record<string, string> = {};
    try {
      for (const kernel of ["wmma", "mma"] as const) {
        be.setAttentionKernel(kernel);
        plan[kernel] = `${be.attentionPlan(64, false)}/${be.attentionPlan(64, true)}`;
        got[kernel] = run();
      }
    } finally {
      be.setAttentionKernel("wmma");
      be.setGemmMode("exact");
      await useDevice("cpu");
    }
    const maxRel = (a: Float32Array, b: Float32Array) => {
      let d = 0, sc = 0;
      for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); sc = Math.max(sc, Math.abs(b[i])); }
      return d / sc;
    };
    const normRel = (a: Float32Array, b: Float32Array) => {
      let d = 0, n = 0;
      for (let i = 0; i < a.length; i++) { d += (a[i] - b[i]) ** 2; n += b[i] ** 2; }
      return Math.sqrt(d / n);
    };
    const worstGrad = (g: Float32Array[], w: Float32Array[]) => Math.max(...g.map((x, i) => normRel(x, w[i])));
    for (const kernel of ["wmma", "mma"]) {
      const r = got[kernel], hErr = maxRel(r.h, want.h), gErr = worstGrad(r.grads, want.grads);
      assert.ok(hErr <= 2e-2 && hErr > 1e-5, `${kernel}: hidden states ${hErr.toExponential(2)} of their scale from exact arithmetic`);
      assert.ok(Math.abs(r.loss - want.loss) <= 1e-2 * Math.abs(want.loss), `${kernel}: loss ${r.loss} vs ${want.loss}`);
      assert.ok(gErr <= 5e-2, `${kernel}: worst LoRA gradient ${gErr.toExponential(2)} from exact arithmetic in norm`);
    }
    const between = worstGrad(got.mma.grads, got.wmma.grads), hBetween = maxRel(got.mma.h, got.wmma.h);
    t.diagnostic(`forward/backward kernels: ${plan.wmma} asking for WMMA, ${plan.mma} asking for mma.sync; from exact: hidden states ` +
      `${maxRel(got.wmma.h, want.h).toExponential(2)}, loss ${(Math.abs(got.wmma.loss / want.loss - 1) * 100).toFixed(3)} %, ` +
      `LoRA gradients ${worstGrad(got.wmma.grads, want.grads).toExponential(2)}`);
    assert.ok(plan.mma === "mma/mma", `mma.sync's tiles fit every device from Turing on (${plan.mma})`);
    // (the fixture-size f32 kernels would give both runs the same values: a difference shows each pair really ran;
    // where WMMA does not fit, asking for it runs mma.sync, the same computation)
    if (plan.wmma === plan.mma) assert.equal(hBetween, 0, "the same kernels give the same values");
    else assert.ok(hBetween > 0, "the WMMA and mma.sync runs are not the same computation");
    assert.ok(between <= 5e-2, `the two kernel pairs' gradients differ by ${between.toExponential(2)} in norm`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
