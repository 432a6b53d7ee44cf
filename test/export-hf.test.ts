// Merged HF checkpoint: merged weights equal an independent W + (alpha/r)·B·A; the merged model's forward (through a
// GGUF f32 export run by llama.cpp, since the engine is not wired here) equals transformers' base+adapter logits
// (reference_lora.safetensors); sharding, index and config/tokenizer copies.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { llamaLogits, maxDiff, referenceRows } from "./export-llama.ts";
import { exportGguf, exportModel, loadHfWeights, loadPeftAdapter, mergeLora, saveHfCheckpoint } from "../src/export/index.ts";
import { readSafetensors } from "../src/models/safetensors.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-export-hf-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

for (const dir of fixtureModels()) {
  const name = basename(dir);
  test(`${name}: merged weights = W + (alpha/r)·B·A, computed independently`, () => {
    const base = readSafetensors(join(dir, "model.safetensors"));
    const ad = readSafetensors(join(dir, "adapter", "adapter_model.safetensors"));
    const cfg = JSON.parse(readFileSync(join(dir, "adapter", "adapter_config.json"), "utf8"));
    const scale = cfg.lora_alpha / cfg.r;
    const merged = mergeLora(dir, join(dir, "adapter"));
    let touched = 0;
    for (const n of merged.names) {
      const got = merged.get(n);
      const W = base.float32(n);
      const mod = n.replace(/\.weight$/, "");
      const ak = `base_model.model.${mod}.lora_A.weight`;
      if (!ad.has(ak)) { assert.deepEqual(got, W, `${n} untouched`); continue; }
      touched++;
      const A = ad.float32(ak), B = ad.float32(`base_model.model.${mod}.lora_B.weight`);
      const [r, nin] = ad.info(ak).shape;
      const nout = base.info(n).shape[0];
      let maxErr = 0, maxDelta = 0;
      for (let o = 0; o < nout; o++) for (let i = 0; i < nin; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += B[o * r + k] * A[k * nin + i];
        const want = W[o * nin + i] + scale * s;
        maxErr = Math.max(maxErr, Math.abs(got[o * nin + i] - want));
        maxDelta = Math.max(maxDelta, Math.abs(scale * s));
      }
      assert.ok(maxErr < 1e-6, `${n}: max error ${maxErr}`);
      assert.ok(maxDelta > 1e-3, `${n}: the adapter changes the weight`);
    }
    assert.equal(touched * 2, ad.tensors.size, "every LoRA module was merged");
  });

  test(`${name}: merged model's forward (llama.cpp on its f32 GGUF) = transformers base+adapter logits`, async () => {
    const out = join(tmp, `${name}-merged.gguf`);
    exportGguf(dir, mergeLora(dir, join(dir, "adapter")), out, { type: "f32" });
    const ref = referenceRows(dir, "reference.safetensors", "reference_lora.safetensors");
    const d = maxDiff(await llamaLogits(out, ref.rows, ref.vocab), ref.logits);
    assert.ok(d.max <= (name === "gemma3" ? 3e-3 : 1e-4), `${name}: max |Δlogit| ${d.max}`);
  });
}

test("saveHfCheckpoint: shards + index as transformers names them, config dtype, side files", () => {
  const dir = fixtureModels().find((d) => basename(d) === "llama") ?? fixtureModels()[0];
  const w = mergeLora(dir, loadPeftAdapter(join(dir, "adapter")));
  const out = join(tmp, "sharded");
  const files = saveHfCheckpoint(out, w, { dtype: "bf16", maxShardBytes: 100_000, sourceDir: dir });
  const shards = files.filter((f) => f.endsWith(".safetensors"));
  assert.ok(shards.length > 1);
  shards.forEach((f, i) => assert.equal(f, `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`));
  const index = JSON.parse(readFileSync(join(out, "model.safetensors.index.json"), "utf8"));
  assert.deepEqual(Object.keys(index.weight_map), [...w.names].sort());
  let total = 0;
  for (const f of shards) {
    const st = readSafetensors(join(out, f));
    assert.deepEqual(st.metadata, { format: "pt" });
    for (const [n, info] of st.tensors) {
      assert.equal(index.weight_map[n], f);
      assert.equal(info.dtype, "BF16");
      total += info.end - info.begin;
      const want = w.get(n), got = st.float32(n);
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= Math.abs(want[i]) * 2 ** -8 + 1e-30);
    }
  }
  assert.equal(index.metadata.total_size, total);
  const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
  assert.equal(cfg.dtype, "bfloat16");
  for (const f of ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"])
    assert.equal(readFileSync(join(out, f), "utf8"), readFileSync(join(dir, f), "utf8"), f);
  // reads back through the sharded loader
  const back = loadHfWeights(out);
  assert.deepEqual(back.shape(w.names[0]), w.shape(w.names[0]));
});

test("exportModel hf: single file f32 equals the merge; tied lm_head omitted; overwrite swaps the folder", async () => {
  const dir = fixtureModels().find((d) => basename(d) === "qwen2") ?? fixtureModels()[0];
  const out = join(tmp, "merged-hf");
  const r = await exportModel({ model: dir, adapter: join(dir, "adapter"), format: "hf", type: "f32", out });
  assert.ok(r.files.some((f) => f.endsWith("model.safetensors")));
  assert.ok(!existsSync(join(out, "model.safetensors.index.json")));
  const st = readSafetensors(join(out, "model.safetensors"));
  const merged = mergeLora(dir, join(dir, "adapter"));
  for (const n of st.tensors.keys()) assert.deepEqual(st.float32(n), merged.get(n));
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  if (cfg.tie_word_embeddings) assert.ok(!st.has("lm_head.weight"));
  await assert.rejects(exportModel({ model: dir, format: "hf", out }), /already exists/);
  await exportModel({ model: dir, format: "hf", out, overwrite: true });
  assert.ok(readdirSync(tmp).every((n) => !n.includes(".tmp-") && !n.includes(".old-")));
});

// With the engine: the merged checkpoint, loaded by our own loader, gives the logits of base + adapter (≤ 1e-4 in f32).
import { CausalLM } from "../src/models/model.ts";
import { noGrad, scope } from "../src/engine/index.ts";
for (const dir of fixtureModels()) {
  const name = basename(dir);
  test(`${name}: merged HF checkpoint's logits (aha forward) = base + adapter logits`, async () => {
    const out = join(tmp, `${name}-merged-hf`);
    await exportModel({ model: dir, adapter: join(dir, "adapter"), format: "hf", type: "f32", out });
    const ref = readSafetensors(join(dir, "reference.safetensors"));
    const [B, T] = ref.info("input_ids").shape;
    const ids = ref.int32("input_ids"), mask = ref.int32("attention_mask"), pos = ref.int32("position_ids");
    const run = (m: CausalLM) => noGrad(() => scope(() => m.logits(m.forward(ids, B, T, { attentionMask: mask, positions: pos })).f32()));
    const merged = run(CausalLM.load(out));
    const withAdapter = run(CausalLM.load(dir, { adapter: join(dir, "adapter") }));
    const V = merged.length / (B * T);
    let worst = 0;
    for (let i = 0; i < B * T; i++) if (mask[i]) for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(merged[i * V + v] - withAdapter[i * V + v]));
    assert.ok(worst <= 1e-4, `${name}: max |Δlogit| ${worst}`);
  });
}
