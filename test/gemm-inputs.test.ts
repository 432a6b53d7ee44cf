// 16-bit GEMM inputs made once: where a backend's GEMMs round f32 activations to the 16-bit type of the weights
// (CUDA's default mode), the model hands them inputs already rounded — rmsNorm16, attention16 and glu16 write a
// 16-bit copy in the same kernel, loraLinearGroup converts x once for q/k/v and gate/up — instead of each GEMM
// converting its own. That must change nothing but the number of conversions. Checked on the CPU, whose GEMMs are
// exact: a wrapper rounds A the way CUDA does wherever a GEMM of 16-bit weights gets f32 activations, and the same
// model (bf16 weights, LoRA with nonzero B's) runs once without and once with the backend asking for 16-bit inputs;
// hidden states, the loss and every LoRA gradient must be bit-identical. On CUDA the path is the default of the bf16 GEMM
// mode (the fixture parity tests run in exact mode, without it): the second test compares it there with conversions
// in every GEMM.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeRandomModel } from "../bench/random-model.ts";
import { CausalLM } from "../src/models/model.ts";
import { attention, backward, defaultBackend, fromHost, linearGroup, loraLinear, mul, noGrad, scope, sum } from "../src/engine/index.ts";
import { cudaSkip, useDevice } from "./devices.ts";
import { emulated } from "./emulate-bf16.ts";

test("cpu: 16-bit GEMM inputs made once (rmsNorm16, attention16, glu16, one convert per group) equal rounding in every GEMM", () => {
  const dir = mkdtempSync(join(tmpdir(), "aha-gemm16-"));
  try {
    writeRandomModel(dir, { model_type: "qwen2", hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      intermediate_size: 96, vocab_size: 128, tie_word_embeddings: true }, 3, "BF16");
    const model = CausalLM.load(dir);
    assert.equal(model.layers[0].linears.get("model.layers.0.self_attn.q_proj")!.W.dtype, "bf16");
    let s = 7;
    const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5);
    const ad = model.addAdapter({ r: 4, lora_alpha: 8, target_modules: "all-linear" }, rnd);
    for (const p of ad.modules.values()) defaultBackend().write(p.B.buf, Float32Array.from({ length: p.B.numel }, () => rnd() * 0.2));
    const B = 2, T = 5, L = model.config.layers, C = model.config.hidden;
    const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 37 + 5) % 128);
    const R = Float32Array.from({ length: B * T * C }, () => rnd());
    const params = model.parameters();
    const run = (ask16: boolean, ckpt: boolean) => emulated(ask16, () => {
      model.gradientCheckpointing = ckpt;
      const h = noGrad(() => scope(() => model.forward(ids, B, T).f32()));
      for (const p of params) p.grad?.dispose(), (p.grad = null);
      const loss = scope(() => { const l = sum(mul(model.forward(ids, B, T), fromHost(R, [B * T, C]))); backward(l); return l.item(); });
      return { h, loss, grads: params.map((p) => p.grad!.f32()) };
    });
    for (const ckpt of [false, true]) {
      const [want, nWant] = run(false, ckpt), [got, nGot] = run(true, ckpt);
      assert.deepEqual(got.h, want.h, "hidden states");
      assert.equal(got.loss, want.loss);
      got.grads.forEach((g, i) => assert.deepEqual(g, want.grads[i], `gradient of ${params[i].name}`));
      // per forward, 5 conversions per layer without (q, o, down, and one per batched GEMM of packed weights: k with
      // v, gate with up); with, none: rmsNorm16, attention16 and glu16 made the copies, and nothing ran convert.
      // The backward's dx GEMMs (dy by W) convert dy in both: 7 per layer, less layer 0's q/k/v, whose input (the
      // norm of the frozen embedding) needs no gradient.
      const forwards = ckpt ? 3 : 2, backwards = 7 * L - 3; // forwards: no-grad, grad (and its recompute under checkpointing)
      assert.equal(nWant.inGemm, 5 * L * forwards + backwards, `conversions without (checkpointing ${ckpt})`);
      assert.equal(nGot.inGemm, backwards, `conversions with (checkpointing ${ckpt})`);
      assert.equal(nGot.convert, 0);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// On CUDA the 16-bit inputs are the default (bf16 GEMM mode); the same model with the backend saying its GEMMs take
// f32 inputs (each GEMM then converts its own) must agree: the conversions are the same, only the bias now comes
// through cuBLASLt's epilogue (one rounding less), hence 1e-5 rather than bit-identity.
test("cuda: 16-bit GEMM inputs made once agree with conversions in every GEMM", { skip: cudaSkip() }, async () => {
  const { cudaBackend } = await import("../src/engine/cuda.ts");
  const dir = mkdtempSync(join(tmpdir(), "aha-gemm16-"));
  const be = cudaBackend();
  try {
    writeRandomModel(dir, { model_type: "qwen2", hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      intermediate_size: 192, vocab_size: 256, tie_word_embeddings: true }, 5, "BF16");
    await useDevice("cuda");
    be.setGemmMode("bf16");
    const model = CausalLM.load(dir);
    let s = 11;
    const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5);
    const ad = model.addAdapter({ r: 4, lora_alpha: 8, target_modules: "all-linear" }, rnd);
    for (const p of ad.modules.values()) be.write(p.B.buf, Float32Array.from({ length: p.B.numel }, () => rnd() * 0.2));
    const B = 2, T = 7, C = model.config.hidden, ids = Int32Array.from({ length: B * T }, (_, i) => (i * 37 + 5) % 256);
    const R = Float32Array.from({ length: B * T * C }, () => rnd());
    const params = model.parameters();
    const run = () => {
      const h = noGrad(() => scope(() => model.forward(ids, B, T).f32()));
      for (const p of params) p.grad?.dispose(), (p.grad = null);
      scope(() => backward(sum(mul(model.forward(ids, B, T), fromHost(R, [B * T, C])))));
      return { h, grads: params.map((p) => p.grad!.f32()) };
    };
    const got = run();
    const own = be.gemmActivationDtype.bind(be);
    (be as { gemmActivationDtype: unknown }).gemmActivationDtype = () => "f32";
    let want;
    try { want = run(); } finally { (be as { gemmActivationDtype: unknown }).gemmActivationDtype = own; }
    const rel = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0) / b.reduce((m, x) => Math.max(m, Math.abs(x)), 1e-30);
    assert.ok(rel(got.h, want.h) <= 1e-5, `hidden states: ${rel(got.h, want.h)}`);
    got.grads.forEach((g, i) => assert.ok(rel(g, want!.grads[i]) <= 1e-5, `${params[i].name}: ${rel(g, want!.grads[i])}`));
  } finally {
    be.setGemmMode("exact");
    await useDevice("cpu");
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the new entry points refuse what they cannot do, by name", () => {
  const x = fromHost(new Float32Array(6).fill(1), [2, 3]), W = fromHost(new Float32Array(12).fill(0.5), [4, 3]);
  W.requiresGrad = true;
  assert.throws(() => loraLinear(x, W, null, null, fromHost(new Float32Array(8), [2, 4])), /only for code without autograd/);
  assert.throws(() => linearGroup(x, [{ W, bias: null }, { W, bias: null }]), /linearGroup: only without autograd/);
  assert.throws(() => noGrad(() => linearGroup(x, [{ W: fromHost(new Float32Array(8), [4, 2]), bias: null }])), /input has 3 features/);
  const q = fromHost(new Float32Array(8), [1, 1, 2, 4]), kv = fromHost(new Float32Array(8), [1, 1, 2, 4]);
  const opts = { B: 1, T: 1, Hq: 2, Hkv: 2, D: 4, scale: 0.5 };
  assert.throws(() => attention(q, kv, fromHost(new Uint16Array(8), [1, 1, 2, 4], "bf16"), opts), /must both be f32, bf16 or f16/);
  const be = defaultBackend();
  assert.throws(() => be.k.gemm(new Float32Array(8), new Float32Array(6), new Float32Array(12), 0, 1, 2, 4, 3, false, true, 3, 3, 5, 0, 0, 0, 1, 0, false, 0,
    new Float32Array(4)), /bias needs dense rows of C/);
});
