// Bad input gets a clear error naming the file, tensor or field: truncated safetensors, header offsets out of
// range, missing or misshaped tensors, unknown architectures, configs missing a field, bad adapters, integer dtypes
// and non-finite values where weights are expected, sampling settings out of range, prompts that max_prompt_length
// cuts, and file-system errors (each names its path).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { f32ToBf16, readSafetensors, serializeSafetensors, type StWriteTensor } from "../src/models/safetensors.ts";
import { CausalLM } from "../src/models/model.ts";
import { generate } from "../src/generate/generate.ts";
import { GRPOTrainer } from "../src/grpo/trainer.ts";

const src = fixtureModels()[0];
const tmp = mkdtempSync(join(tmpdir(), "aha-bad-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

function modelCopy(name: string): string {
  const d = join(tmp, name);
  cpSync(src, d, { recursive: true });
  return d;
}

test("truncated safetensors names the file", () => {
  const d = modelCopy("trunc");
  const p = join(d, "model.safetensors");
  const buf = readFileSync(p);
  writeFileSync(p, buf.subarray(0, buf.length - 100));
  assert.throws(() => CausalLM.load(d), (e: Error) => e.message.includes(p) && /truncated|out of range|cover/.test(e.message));
  writeFileSync(p, buf.subarray(0, 5));
  assert.throws(() => readSafetensors(p), (e: Error) => e.message.includes(p) && e.message.includes("truncated"));
});

test("header offsets out of range name the tensor", () => {
  const p = join(tmp, "offsets.safetensors");
  const good = serializeSafetensors({ a: { dtype: "F32", shape: [2], data: new Float32Array(2) } });
  const n = Number(good.readBigUInt64LE(0));
  const header = JSON.parse(good.subarray(8, 8 + n).toString());
  header.a.data_offsets = [0, 80];
  header.a.shape = [20];
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(p, Buffer.concat([len, h, Buffer.alloc(8)]));
  assert.throws(() => readSafetensors(p), (e: Error) => e.message.includes(p) && e.message.includes("'a'") && e.message.includes("out of range"));
});

test("a missing or misshaped tensor is named with its file", () => {
  const d = modelCopy("missing");
  const p = join(d, "model.safetensors");
  const st = readSafetensors(p);
  const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const name of st.tensors.keys()) tensors[name] = { dtype: "F32", shape: st.info(name).shape, data: st.float32(name) };
  const victim = "model.layers.0.input_layernorm.weight";
  const saved = tensors[victim];
  delete tensors[victim];
  writeFileSync(p, serializeSafetensors(tensors));
  assert.throws(() => CausalLM.load(d), (e: Error) => e.message.includes(victim) && e.message.includes("missing"));
  tensors[victim] = { ...saved, shape: [saved.shape[0] - 1], data: saved.data.subarray(1) };
  writeFileSync(p, serializeSafetensors(tensors));
  assert.throws(() => CausalLM.load(d), (e: Error) => e.message.includes(victim) && e.message.includes(p) && e.message.includes("shape"));
});

test("unknown architecture and missing config fields are named", () => {
  const d = modelCopy("cfg");
  const p = join(d, "config.json");
  const cfg = JSON.parse(readFileSync(p, "utf8"));
  writeFileSync(p, JSON.stringify({ ...cfg, model_type: "gpt_neox" }));
  assert.throws(() => CausalLM.load(d), (e: Error) => e.message.includes(p) && e.message.includes("gpt_neox"));
  const { hidden_size: _h, ...rest } = cfg;
  writeFileSync(p, JSON.stringify(rest));
  assert.throws(() => CausalLM.load(d), (e: Error) => e.message.includes(p) && e.message.includes("'hidden_size'"));
  writeFileSync(p, JSON.stringify({ ...cfg, num_hidden_layers: "two" }));
  assert.throws(() => CausalLM.load(d), (e: Error) => e.message.includes("'num_hidden_layers'") && e.message.includes("number"));
  writeFileSync(p, "{ not json");
  assert.throws(() => CausalLM.load(d), (e: Error) => e.message.includes(p));
});

test("an adapter that does not fit the model is named", () => {
  const d = modelCopy("adapter");
  const ap = join(d, "adapter", "adapter_model.safetensors");
  const st = readSafetensors(ap);
  const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const name of st.tensors.keys()) tensors[name] = { dtype: "F32", shape: st.info(name).shape, data: st.float32(name) };
  const key = [...st.tensors.keys()].find((k) => k.includes("lora_A"))!;
  tensors[key] = { dtype: "F32", shape: [tensors[key].shape[0] + 1, tensors[key].shape[1]], data: new Float32Array((tensors[key].shape[0] + 1) * tensors[key].shape[1]) };
  writeFileSync(ap, serializeSafetensors(tensors));
  assert.throws(() => CausalLM.load(d, { adapter: join(d, "adapter") }), (e: Error) => e.message.includes(key) && e.message.includes("shape"));
});

/** Rewrite a copy's model.safetensors with `edit` applied to its tensors (written as given, NaN included). */
function rewriteWeights(d: string, edit: (t: Record<string, StWriteTensor>) => void): string {
  const p = join(d, "model.safetensors");
  const st = readSafetensors(p);
  const tensors: Record<string, StWriteTensor> = {};
  for (const name of st.tensors.keys()) tensors[name] = { dtype: "F32", shape: st.info(name).shape, data: st.float32(name) };
  edit(tensors);
  writeFileSync(p, serializeSafetensors(tensors, { format: "pt" }, { allowNonFinite: true }));
  return p;
}

test("integer data where floats are expected is refused, naming the tensor and the file", () => {
  const d = modelCopy("i32-label");
  const victim = "model.layers.0.mlp.up_proj.weight";
  const p = rewriteWeights(d, (t) => { t[victim] = { ...t[victim], dtype: "I32", data: new Int32Array((t[victim].data as Float32Array).buffer) }; });
  assert.throws(() => CausalLM.load(d), (e: Error) => e.message.includes(p) && e.message.includes(`'${victim}'`) && /dtype I32, expected a floating type/.test(e.message));
});

test("weights that are not finite are refused at load, naming the tensor (f32, bf16, and an adapter's)", () => {
  const d = modelCopy("nan-f32");
  const p = rewriteWeights(d, (t) => { (t["model.norm.weight"].data as Float32Array)[7] = NaN; });
  assert.throws(() => CausalLM.load(d), (e: Error) => e.message.includes(p) && e.message.includes("'model.norm.weight'") && /NaN at index 7/.test(e.message));

  const b = modelCopy("inf-bf16");
  const pb = rewriteWeights(b, (t) => {
    for (const [n, x] of Object.entries(t)) t[n] = { ...x, dtype: "BF16", data: f32ToBf16(x.data as Float32Array) };
    (t["model.embed_tokens.weight"].data as Uint16Array)[3] = 0xff80; // bf16 −Infinity
  });
  assert.throws(() => CausalLM.load(b), (e: Error) => e.message.includes(pb) && e.message.includes("'model.embed_tokens.weight'") && /-Infinity at index 3/.test(e.message));

  const a = modelCopy("nan-adapter");
  const ap = join(a, "adapter", "adapter_model.safetensors");
  const st = readSafetensors(ap);
  const tensors: Record<string, StWriteTensor> = {};
  for (const name of st.tensors.keys()) tensors[name] = { dtype: "F32", shape: st.info(name).shape, data: st.float32(name) };
  const key = [...st.tensors.keys()].find((k) => k.includes("lora_A"))!;
  (tensors[key].data as Float32Array)[0] = Infinity;
  writeFileSync(ap, serializeSafetensors(tensors, { format: "pt" }, { allowNonFinite: true }));
  assert.throws(() => CausalLM.load(a, { adapter: join(a, "adapter") }), (e: Error) => e.message.includes(ap) && e.message.includes(`'${key}'`) && /Infinity/.test(e.message));
});

test("sampling settings out of range are refused: the CLI names the flag, the API the option", () => {
  const bin = join(import.meta.dirname, "..", "bin", "aha.js");
  const gen = (...flags: string[]) => spawnSync(process.execPath, [bin, "generate", "--model", src, "--prompt-ids", "1,2,3", "--max-tokens", "2", ...flags], { encoding: "utf8" });
  for (const [flag, value] of [["--temperature", "-1"], ["-n", "-3"], ["--top-p", "0"]]) {
    const r = gen(flag, value);
    assert.notEqual(r.status, 0, `${flag} ${value} was accepted`);
    assert.ok(r.stderr.includes(flag.startsWith("--") ? flag : "--n") && r.stderr.includes(`'${value}'`), `${flag} ${value}: ${r.stderr}`);
  }
  assert.equal(gen("--temperature", "0").status, 0, "temperature 0 (greedy) is fine");
  const m = CausalLM.load(src);
  assert.throws(() => generate(m, [[1, 2]], { temperature: -1, maxTokens: 2 }), /temperature is -1; it must be ≥ 0/);
  assert.throws(() => generate(m, [[1, 2]], { n: -3, topP: 0 }), (e: Error) => /n is -3/.test(e.message) && /topP is 0/.test(e.message));
});

test("a max_prompt_length that cuts prompts is reported with the count", async () => {
  let log = "";
  const rows = Array.from({ length: 8 }, (_, i) => ({ prompt: `question ${i}: what is ${i} + ${i}?` }));
  const t = await GRPOTrainer.create({ model: src, maxPromptLength: 1, maxCompletionLength: 4, numGenerations: 4, perDeviceTrainBatchSize: 8, maxSteps: 2, rewardWorkers: 0, outputDir: join(tmp, "cut") } as never,
    { rows, rewardFuncs: [{ name: "len", fn: ({ completions }) => completions.map((c) => c.length) }], console: { write: (s: string) => (log += s) } });
  await t.train();
  assert.match(log, /step 1: max_prompt_length \(1\) cut 2 of 2 prompts, by up to \d+ tokens/);
  assert.match(log, /max_prompt_length \(1\) cut 4 of 4 prompts in this run/);
});

test("file-system errors name their path: an output_dir that is a file or under one, a GGUF export onto a folder", () => {
  const bin = join(import.meta.dirname, "..", "bin", "aha.js");
  const file = join(tmp, "a-file");
  writeFileSync(file, "x");
  const cfg = join(tmp, "fs.yaml");
  const train = (out: string) => {
    writeFileSync(cfg, `model: ${src}\nreward_funcs: [numeric_proximity]\nnum_generations: 2\nper_device_train_batch_size: 2\nmax_steps: 1\ndataset: { path: ${join(tmp, "rows.jsonl")} }\noutput_dir: ${out}\n`);
    writeFileSync(join(tmp, "rows.jsonl"), '{"prompt": "1 + 1", "answer": "2"}\n');
    return spawnSync(process.execPath, [bin, "train", cfg], { encoding: "utf8" });
  };
  assert.match(train(file).stderr, new RegExp(`output_dir ${file} exists and is not a folder`));
  assert.match(train(join(file, "run")).stderr, new RegExp(`cannot create folder ${join(file, "run")}: .* \\((ENOTDIR|EEXIST)\\)`));
  const dir = join(tmp, "gguf-is-a-folder");
  mkdirSync(dir);
  const r = spawnSync(process.execPath, [bin, "export", "--model", src, "--format", "gguf", "--out", dir, "--overwrite"], { encoding: "utf8" });
  assert.match(r.stderr, new RegExp(`export: ${dir} is a folder`));
});
