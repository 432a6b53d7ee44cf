// Bad input gets a clear error naming the file, tensor or field: truncated safetensors, header offsets out of
// range, missing or misshaped tensors, unknown architectures, configs missing a field, bad adapters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { readSafetensors, serializeSafetensors } from "../src/models/safetensors.ts";
import { CausalLM } from "../src/models/model.ts";

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
