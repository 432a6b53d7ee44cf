// Never train on NaN: a step whose advantages, loss or gradient is not finite makes no update and is reported
// (console and metrics.jsonl), the run stops after max_nonfinite_steps such steps in a row naming the first bad
// quantity, a finite step in between resets the count (SFT too), and no writer (checkpoint, final model, PEFT / HF / GGUF export)
// writes a non-finite value: each names the tensor and leaves nothing behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GRPOTrainer } from "../src/grpo/trainer.ts";
import { sft } from "../src/grpo/sft.ts";
import { exportModel } from "../src/export/index.ts";
import { readSafetensors, serializeSafetensors, writeSafetensors } from "../src/models/safetensors.ts";
import type { NamedReward } from "../src/rewards/index.ts";
import { checkFinalNames, metricsOf, model, TEMP_NAME } from "./faults.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-nonfinite-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const rows = Array.from({ length: 16 }, (_, i) => ({ prompt: `question ${i}: what is ${i} + ${i}?`, answer: String(2 * i) }));
const base = { model, maxCompletionLength: 6, numGenerations: 4, perDeviceTrainBatchSize: 8, learningRate: 1e-2, seed: 5, beta: 0.04, rewardWorkers: 0 };
const state = (t: GRPOTrainer) => t.model.parameters().map((p) => Array.from(p.f32()));
const noTemps = (dir: string) => assert.deepEqual(readdirSync(dir).filter((n) => TEMP_NAME.test(n)), [], `temporary names left in ${dir}`);

async function trainer(dir: string, extra: Record<string, unknown>, reward: NamedReward) {
  let out = "";
  const t = await GRPOTrainer.create({ ...base, outputDir: dir, ...extra } as never, { rows, rewardFuncs: [reward], console: { write: (s: string) => (out += s) } });
  return { t, log: () => out };
}

test("rewards of ±1e308 (scale_rewards none): no update, each step reported, the run stops after max_nonfinite_steps naming the advantage", async () => {
  const dir = join(tmp, "huge");
  const huge: NamedReward = { name: "huge", fn: ({ completions }) => completions.map((_, i) => (i % 4 === 2 ? -1e308 : 1e308)) };
  const { t, log } = await trainer(dir, { maxSteps: 6, saveSteps: 1, scaleRewards: "none", maxNonfiniteSteps: 3 }, huge);
  const before = state(t);
  await assert.rejects(t.train(), (e: Error) => /3 steps in a row were not finite \(max_nonfinite_steps 3\)/.test(e.message) && /step 1: advantage not finite/.test(e.message) && /1e\+308/.test(e.message));
  assert.deepEqual(state(t), before, "an optimiser update happened");
  assert.match(log(), /step 1: skipped \(no optimiser update\): advantage not finite/);
  assert.deepEqual(metricsOf(dir).map((m) => [m.step, m.nonfinite, m.loss]), [[1, 1, null], [2, 1, null], [3, 1, null]]);
  assert.ok(!existsSync(join(dir, "final")), "a run that stopped has no final model");
  assert.ok(await checkFinalNames(dir) > 0); // checkpoint-1 and -2 hold the (unchanged, finite) weights
});

test("one non-finite step among finite ones is skipped and the run goes on; a NaN weight gives a non-finite loss, named", async () => {
  const dir = join(tmp, "once");
  let round = 0;
  const once: NamedReward = { name: "once", fn: ({ completions }) => (round++, completions.map((c, i) => (round === 2 ? (i % 4 === 2 ? -1e308 : 1e308) : c.length % 3))) };
  const { t } = await trainer(dir, { maxSteps: 4, scaleRewards: "none", maxNonfiniteSteps: 2 }, once);
  await t.train();
  assert.deepEqual(metricsOf(dir).map((m) => m.nonfinite), [0, 1, 0, 0]);
  assert.ok(await checkFinalNames(join(dir, "final")) === 2, "the final adapter is written, finite");

  const nan = await trainer(join(tmp, "nan"), { maxSteps: 4, maxNonfiniteSteps: 2 }, once);
  // the last layer's down_proj B adds straight into the residual stream (a NaN in a query would be lost in the
  // attention's running max, and A alone meets B = 0): the logits, the loss and the gradient all become NaN
  const p = nan.t.model.parameters().filter((q) => q.name!.includes("lora_B")).pop()!;
  p.backend.write(p.buf, new Float32Array(p.numel).fill(NaN));
  await assert.rejects(nan.t.train(), (e: Error) => /2 steps in a row/.test(e.message) && /step 1: loss not finite/.test(e.message));
});

test("writers refuse non-finite weights: checkpoint, final, PEFT, HF and GGUF name the tensor and leave nothing", async () => {
  const dir = join(tmp, "writers");
  const ok: NamedReward = { name: "ok", fn: ({ completions }) => completions.map((c) => c.length % 3) };
  const { t } = await trainer(dir, { maxSteps: 1 }, ok);
  const p = t.model.parameters()[1];
  const bad = p.f32();
  bad[5] = Infinity;
  p.backend.write(p.buf, bad);
  assert.throws(() => t.saveFinal(), (e: Error) => e.message.includes(`tensor '${p.name}'`) && /Infinity at index 5/.test(e.message) && e.message.includes(join(dir, "final")));
  assert.ok(!existsSync(join(dir, "final")));
  noTemps(dir);

  // an adapter folder holding a NaN (written on purpose) is refused at load by every export, naming the tensor
  const adapter = join(tmp, "nan-adapter");
  cpSync(join(model, "adapter"), adapter, { recursive: true });
  const st = readSafetensors(join(adapter, "adapter_model.safetensors"));
  const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const n of st.tensors.keys()) tensors[n] = { dtype: "F32", shape: st.info(n).shape, data: st.float32(n) };
  const victim = [...st.tensors.keys()].find((n) => n.includes("lora_B"))!;
  tensors[victim].data[0] = NaN;
  writeFileSync(join(adapter, "adapter_model.safetensors"), serializeSafetensors(tensors, { format: "pt" }, { allowNonFinite: true }));
  const outs = join(tmp, "outs");
  for (const format of ["peft", "hf", "gguf"] as const) {
    const out = join(outs, format === "gguf" ? "m.gguf" : format);
    await assert.rejects(exportModel({ model, adapter, format, out }), (e: Error) => e.message.includes(`'${victim}'`) && /NaN/.test(e.message), format);
    assert.ok(!existsSync(out), `${format}: something was written`);
  }
  // a base model with an infinity: refused as the exporter reads it
  const baseCopy = join(tmp, "inf-model");
  cpSync(model, baseCopy, { recursive: true });
  const mst = readSafetensors(join(baseCopy, "model.safetensors"));
  const w: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const n of mst.tensors.keys()) w[n] = { dtype: "F32", shape: mst.info(n).shape, data: mst.float32(n) };
  w["model.norm.weight"].data[3] = -Infinity;
  writeSafetensors(join(baseCopy, "model.safetensors"), w, { format: "pt" }, { allowNonFinite: true });
  for (const format of ["hf", "gguf"] as const) {
    const out = join(outs, format === "gguf" ? "b.gguf" : "b-hf");
    await assert.rejects(exportModel({ model: baseCopy, format, out }), (e: Error) => e.message.includes("'model.norm.weight'") && /-Infinity/.test(e.message), format);
    assert.ok(!existsSync(out), `${format}: something was written`);
  }
  if (existsSync(outs)) noTemps(outs);
});

test("SFT has the same guard: a non-finite loss makes no update, and the run stops after max_nonfinite_steps", async () => {
  const { t } = await trainer(join(tmp, "sft"), { maxSteps: 4, maxNonfiniteSteps: 2 }, { name: "ok", fn: ({ completions }) => completions.map(() => 1) });
  const p = t.model.parameters().filter((q) => q.name!.includes("lora_B")).pop()!;
  p.backend.write(p.buf, new Float32Array(p.numel).fill(NaN));
  const before = state(t);
  const notes: string[] = [];
  const sftRows = rows.map((r) => ({ ...r, completion: r.answer }));
  assert.throws(() => sft(t.model, t.tokenizer, sftRows, t.config, undefined, (l) => notes.push(l)), /2 steps in a row were not finite.*step 1: loss not finite/);
  assert.equal(notes.length, 2);
  assert.deepEqual(state(t).map((x) => x.map((v) => (Number.isNaN(v) ? "NaN" : v))), before.map((x) => x.map((v) => (Number.isNaN(v) ? "NaN" : v))), "an update happened");
});
