// PEFT adapter folder: round trip through savePeftAdapter / loadPeftAdapter, and the same key names, shapes and
// config fields as the fixture adapters (written by peft 0.21).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { exportModel, loadPeftAdapter, peftScaling, savePeftAdapter } from "../src/export/index.ts";
import { readSafetensors } from "../src/models/safetensors.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-export-peft-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

for (const dir of fixtureModels()) {
  const name = basename(dir);
  test(`${name}: fixture adapter round-trips with PEFT's key names and config fields`, () => {
    const fix = loadPeftAdapter(join(dir, "adapter"));
    const out = join(tmp, name);
    savePeftAdapter(out, {
      r: fix.config.r, lora_alpha: fix.config.lora_alpha, target_modules: fix.config.target_modules,
      use_rslora: false, lora_dropout: 0, task_type: null,
    }, fix.tensors);
    assert.deepEqual(readdirSync(out).sort(), ["adapter_config.json", "adapter_model.safetensors"]);
    const want = JSON.parse(readFileSync(join(dir, "adapter", "adapter_config.json"), "utf8"));
    const text = readFileSync(join(out, "adapter_config.json"), "utf8");
    const got = JSON.parse(text);
    assert.deepEqual(Object.keys(got), Object.keys(want), "same field set, sorted like PEFT");
    for (const k of ["peft_type", "r", "lora_alpha", "lora_dropout", "use_rslora", "bias", "fan_in_fan_out", "use_dora", "inference_mode", "rank_pattern", "alpha_pattern"])
      assert.deepEqual(got[k], want[k], k);
    assert.deepEqual([...got.target_modules].sort(), [...want.target_modules].sort());
    assert.ok(text.startsWith('{\n  "alora_invocation_tokens"'), "2-space indent, sorted keys");
    const a = readSafetensors(join(out, "adapter_model.safetensors"));
    const b = readSafetensors(join(dir, "adapter", "adapter_model.safetensors"));
    assert.deepEqual(a.metadata, { format: "pt" });
    assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
    for (const k of b.tensors.keys()) {
      assert.match(k, /^base_model\.model\..+\.lora_[AB]\.weight$/);
      assert.deepEqual(a.info(k).shape, b.info(k).shape);
      assert.deepEqual(a.float32(k), b.float32(k));
    }
    const back = loadPeftAdapter(out);
    assert.equal(back.tensors.size, fix.tensors.size);
    for (const [k, t] of fix.tensors) assert.deepEqual(back.tensors.get(k)!.data, t.data);
  });
}

test("in-memory names (with .default, without the prefix) are normalised; bad pairs are rejected", () => {
  const A = { shape: [2, 3], data: new Float32Array(6).fill(1) };
  const B = { shape: [4, 2], data: new Float32Array(8).fill(2) };
  const out = join(tmp, "names");
  savePeftAdapter(out, { r: 2, lora_alpha: 4, target_modules: ["q_proj"] }, new Map([
    ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", A],
    ["model.layers.0.self_attn.q_proj.lora_B.weight", B],
  ]));
  const back = loadPeftAdapter(out);
  assert.deepEqual([...back.tensors.keys()].sort(), [
    "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
    "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
  ]);
  assert.equal(back.config.task_type, "CAUSAL_LM");
  assert.throws(() => savePeftAdapter(join(tmp, "bad"), { r: 2, lora_alpha: 4, target_modules: ["q_proj"] },
    new Map([["model.layers.0.self_attn.q_proj.lora_A.weight", A]])), /lora_B\.weight is missing/);
  assert.throws(() => savePeftAdapter(join(tmp, "bad"), { r: 0, lora_alpha: 4, target_modules: ["q_proj"] }, new Map()), /r must be a positive integer/);
});

test("scaling: alpha/r, alpha/sqrt(r) with rslora, rank/alpha patterns", () => {
  const c = { r: 16, lora_alpha: 32, target_modules: ["q_proj"] };
  assert.equal(peftScaling(c, "model.layers.0.self_attn.q_proj"), 2);
  assert.equal(peftScaling({ ...c, use_rslora: true }, "model.layers.0.self_attn.q_proj"), 8);
  assert.equal(peftScaling({ ...c, rank_pattern: { q_proj: 8 } }, "model.layers.0.self_attn.q_proj"), 4);
  assert.equal(peftScaling({ ...c, alpha_pattern: { "layers.0.self_attn.q_proj": 64 } }, "model.layers.0.self_attn.q_proj"), 4);
});

test("exportModel peft: bf16 storage, base path recorded, overwrite check", async () => {
  const dir = fixtureModels()[0];
  const out = join(tmp, "exported");
  await exportModel({ model: dir, adapter: join(dir, "adapter"), format: "peft", type: "bf16", out });
  const f = readSafetensors(join(out, "adapter_model.safetensors"));
  assert.ok([...f.tensors.values()].every((t) => t.dtype === "BF16"));
  assert.equal(JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8")).base_model_name_or_path, dir);
  await assert.rejects(exportModel({ model: dir, adapter: join(dir, "adapter"), format: "peft", out }), /already exists/);
  await exportModel({ model: dir, adapter: join(dir, "adapter"), format: "peft", out, overwrite: true });
  assert.ok(readdirSync(tmp).every((n) => !n.includes(".tmp-") && !n.includes(".old-")), "no temp folders left");
});
