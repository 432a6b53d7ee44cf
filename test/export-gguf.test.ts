// GGUF export of every fixture architecture, loaded by llama.cpp (node-llama-cpp CPU prebuilt, F32 KV cache, no
// flash attention) and compared with the transformers reference logits; GGUF LoRA adapters against reference_lora;
// metadata read back with @huggingface/gguf; a negative control without the llama Q/K permutation.
//
// Tolerances (max |Δlogit| over all unpadded positions; logits span about ±4), measured with node-llama-cpp 3.22.1:
//   f32: 1e-4 (measured ≤ 3e-6); gemma3 3e-3 (measured 1.3e-3: ggml's CPU GELU goes through an fp16 table)
//   f16: 1e-2 (≤ 4.7e-3)   bf16: 8e-2 (≤ 3.9e-2)   q8_0: 0.2 (≤ 0.113; activations are quantised to Q8 too)
//   q4_k_m: 1.0 (≤ 0.69; on these 64-wide tensors it is llama-quantize's fallback mix Q5_0/Q8_0/F16)
//   LoRA adapter applied by llama.cpp: same as f32.
// Greedy argmax must agree wherever the reference top-2 margin exceeds twice the tolerance.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { gguf } from "@huggingface/gguf";
import { fixtureModels } from "./fixtures.ts";
import { argmaxMismatches, llamaLogits, maxDiff, referenceRows } from "./export-llama.ts";
import { exportGguf, exportGgufLora, exportModel, loadHfWeights } from "../src/export/index.ts";

const models = fixtureModels();
const tmp = mkdtempSync(join(tmpdir(), "aha-export-gguf-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const TOL: Record<string, number> = { f32: 1e-4, f16: 1e-2, bf16: 8e-2, q8_0: 0.2, q4_k_m: 1.0 };
const tolFor = (arch: string, type: string) => (type === "f32" && arch === "gemma3" ? 3e-3 : TOL[type]);

for (const dir of models) {
  const name = basename(dir);
  test(`${name}: GGUF exports load in llama.cpp and match transformers logits`, async () => {
    const ref = referenceRows(dir);
    const types = name === "llama" ? ["f32", "f16", "bf16", "q8_0", "q4_k_m"] : ["f32", "f16", "q8_0", "q4_k_m"];
    for (const type of types) {
      const out = join(tmp, `${name}-${type}.gguf`);
      exportGguf(dir, loadHfWeights(dir), out, { type: type as any });
      const got = await llamaLogits(out, ref.rows, ref.vocab);
      const d = maxDiff(got, ref.logits);
      const tol = tolFor(name, type);
      assert.ok(d.max <= tol, `${name} ${type}: max |Δlogit| ${d.max} > ${tol}`);
      const am = argmaxMismatches(got, ref.logits, 2 * tol);
      assert.equal(am.wrong, 0, `${name} ${type}: ${am.wrong}/${am.checked} confident argmaxes differ`);
      if (type === "f32") {
        // 160-token rows: past llama3 rope scaling's original length and gemma3's sliding window
        const long = referenceRows(dir, "reference_long.safetensors");
        const gotL = await llamaLogits(out, long.rows, long.vocab);
        const dl = maxDiff(gotL, long.logits);
        assert.ok(dl.max <= 3 * tol, `${name} f32 long rows: max |Δlogit| ${dl.max} > ${3 * tol}`);
      }
    }
  });

  test(`${name}: GGUF LoRA adapter applied by llama.cpp gives reference_lora logits`, async () => {
    const base = join(tmp, `${name}-lora-base.gguf`);
    const lora = join(tmp, `${name}-LoRA.gguf`);
    exportGguf(dir, loadHfWeights(dir), base, { type: "f32" });
    exportGgufLora(dir, join(dir, "adapter"), lora);
    const ref = referenceRows(dir, "reference.safetensors", "reference_lora.safetensors");
    const d = maxDiff(await llamaLogits(base, ref.rows, ref.vocab, lora), ref.logits);
    assert.ok(d.max <= tolFor(name, "f32"), `${name} LoRA: max |Δlogit| ${d.max}`);
    const meta = (await gguf(lora, { allowLocalFile: true, typedMetadata: true })).typedMetadata as any;
    assert.equal(meta["general.type"].value, "adapter");
    assert.equal(meta["adapter.type"].value, "lora");
    assert.equal(meta["adapter.lora.alpha"].type, 6); // f32
  });
}

test("negative control: llama written without the Q/K permutation is far off", async () => {
  const dir = models.find((d) => basename(d) === "llama");
  assert.ok(dir, "llama fixture missing");
  const out = join(tmp, "llama-noperm.gguf");
  exportGguf(dir, loadHfWeights(dir), out, { type: "f32", skipQkPermute: true });
  const ref = referenceRows(dir);
  const d = maxDiff(await llamaLogits(out, ref.rows, ref.vocab), ref.logits);
  assert.ok(d.max > 0.1, `without the permutation the logits should differ, max |Δ| ${d.max}`);
});

test("GGUF metadata reads back with @huggingface/gguf with the types llama.cpp requires", async () => {
  for (const dir of models) {
    const out = join(tmp, `${basename(dir)}-meta.gguf`);
    const res = exportGguf(dir, loadHfWeights(dir), out, { type: "q8_0" });
    const { typedMetadata: m, tensorInfos } = (await gguf(out, { allowLocalFile: true, typedMetadata: true })) as any;
    const a = res.arch;
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.equal(m["general.architecture"].value, a);
    for (const k of ["context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count", "attention.head_count_kv"])
      assert.equal(m[`${a}.${k}`].type, 4, `${a}.${k} must be u32`);
    assert.equal(m[`${a}.embedding_length`].value, cfg.hidden_size);
    assert.equal(m[`${a}.attention.layer_norm_rms_epsilon`].type, 6);
    assert.equal(m["general.file_type"].value, 7);
    assert.equal(m["general.quantization_version"].value, 2);
    assert.equal(m["tokenizer.ggml.model"].value, "gpt2");
    assert.equal(m["tokenizer.ggml.pre"].value, "gpt-2"); // fixture: plain ByteLevel pre-tokenizer with the GPT-2 regex
    assert.equal(m["tokenizer.ggml.token_type"].subType, 5); // i32
    assert.equal(m["tokenizer.ggml.tokens"].value.length, cfg.vocab_size);
    assert.ok(m["tokenizer.ggml.merges"].value.length > 0);
    assert.equal(m["tokenizer.ggml.eos_token_id"].value, 2); // <|im_end|> from tokenizer_config.json
    assert.ok(String(m["tokenizer.chat_template"].value).includes("<|im_start|>"));
    const names = tensorInfos.map((t: any) => t.name);
    assert.equal(names.includes("output.weight"), cfg.tie_word_embeddings !== true, `${a}: output.weight iff untied`);
    const norm = tensorInfos.find((t: any) => t.name === "blk.0.attn_norm.weight");
    assert.equal(Number(norm.dtype), 0, "norms stay F32");
    if (a === "llama" && cfg.rope_parameters?.rope_type === "llama3") assert.ok(names.includes("rope_freqs.weight"));
    if (a === "qwen3" || a === "gemma3") assert.equal(m[`${a}.attention.key_length`].value, cfg.head_dim);
    if (a === "gemma3") assert.deepEqual(m["gemma3.attention.sliding_window_pattern"].value, cfg.layer_types.map((t: string) => t === "sliding_attention"));
    if (a === "phi3") assert.ok(names.includes("blk.0.attn_qkv.weight") && !names.includes("blk.0.ffn_gate.weight"));
  }
});

test("exportModel gguf: Modelfile beside the file, overwrite check, separate LoRA", async () => {
  const dir = models.find((d) => basename(d) === "qwen2") ?? models[0];
  const out = join(tmp, "ship", "model.gguf");
  const r = await exportModel({ model: dir, adapter: join(dir, "adapter"), format: "gguf", type: "f16", out, mergeAdapter: false });
  assert.deepEqual(r.files.map((f) => basename(f)), ["model.gguf", "model-LoRA.gguf", "model.Modelfile"]);
  const mf = readFileSync(join(tmp, "ship", "model.Modelfile"), "utf8");
  assert.match(mf, /^FROM \.\/model\.gguf$/m);
  assert.match(mf, /^ADAPTER \.\/model-LoRA\.gguf$/m);
  assert.match(mf, /^TEMPLATE """\{\{- range \.Messages \}\}<\|im_start\|>\{\{ \.Role \}\}\n\{\{ \.Content \}\}<\|im_end\|>/m);
  assert.match(mf, /^PARAMETER stop "<\|im_end\|>"$/m);
  await assert.rejects(exportModel({ model: dir, format: "gguf", out }), /already exists; pass overwrite: true/);
  await exportModel({ model: dir, format: "gguf", type: "q8_0", out, overwrite: true });
  await assert.rejects(exportModel({ model: dir, format: "gguf", type: "q3_k", out: join(tmp, "x.gguf") }), /gguf type must be one of/);
});
