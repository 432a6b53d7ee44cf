// Pre-quantised bitsandbytes folders and exports from a 4-bit base:
//   - `aha export --format hf --load-in-4bit` writes bitsandbytes' keys and dtypes (FORMATS.md §9.4) and a
//     quantization_config; loading that folder gives quantise-at-load's weights bit for bit (packed codes, absmax,
//     maps, offset) and the same logits; exporting it again in 4-bit copies it byte for byte;
//   - from the 4-bit folder, the merged 16-bit export is the dequantised base plus the LoRA delta, and its model
//     computes the 4-bit model's logits with the adapter; a GGUF from the 4-bit base with the adapter is the GGUF
//     of that merged folder, byte for byte;
//   - the CLI flags (--load-in-4bit, --no-double-quant) reach the loader: `aha logits --load-in-4bit` writes the
//     API's 4-bit logits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixtureModels } from "./fixtures.ts";
import { readSafetensors } from "../src/models/safetensors.ts";
import { CausalLM } from "../src/models/model.ts";
import { noGrad, scope } from "../src/engine/index.ts";
import { Q4Weight } from "../src/engine/quant4.ts";
import { exportModel, loadHfWeights, loadPeftAdapter, loraDelta, peftScaling } from "../src/export/index.ts";
import type { Quant4Settings } from "../src/models/bnb4.ts";
import { refDequantize } from "./q4-reference.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-qexport-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const dir = fixtureModels().find((d) => basename(d) === "qwen2") ?? fixtureModels()[0]; // (biases and an adapter)
const Q: Quant4Settings = { type: "nf4", doubleQuant: true, computeDtype: "bf16" };
const ref = readSafetensors(join(dir, "reference.safetensors"));
const [B, T] = ref.info("input_ids").shape;
const logits = (m: CausalLM) => noGrad(() => scope(() => m.logits(m.forward(ref.int32("input_ids"), B, T, { attentionMask: ref.int32("attention_mask"), positions: ref.int32("position_ids") })).f32()));
const relDiff = (a: Float32Array, b: Float32Array) => { let d = 0, m = 0; for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); } return d / m; };

const q4dir = join(tmp, "q4");
test(`${basename(dir)}: the 4-bit HF export has bitsandbytes' keys, and loads as quantise-at-load's weights, bit for bit`, async () => {
  await exportModel({ model: dir, format: "hf", out: q4dir, quantization: Q });
  const cfg = JSON.parse(readFileSync(join(q4dir, "config.json"), "utf8"));
  assert.equal(cfg.quantization_config.quant_method, "bitsandbytes");
  assert.equal(cfg.quantization_config.load_in_4bit, true);
  assert.equal(cfg.quantization_config.bnb_4bit_quant_type, "nf4");
  assert.equal(cfg.quantization_config.bnb_4bit_use_double_quant, true);
  const st = readSafetensors(join(q4dir, "model.safetensors"));
  const p = "model.layers.0.self_attn.q_proj.weight";
  const src = readSafetensors(join(dir, "model.safetensors"));
  const [out, inF] = src.info(p).shape, n = out * inF, nb = Math.ceil(n / 64);
  assert.deepEqual([st.info(p).dtype, st.info(p).shape], ["U8", [Math.ceil(n / 2), 1]]);
  assert.deepEqual([st.info(`${p}.absmax`).dtype, st.info(`${p}.absmax`).shape], ["U8", [nb]]);
  assert.deepEqual([st.info(`${p}.quant_map`).dtype, st.info(`${p}.quant_map`).shape], ["F32", [16]]);
  assert.deepEqual([st.info(`${p}.nested_absmax`).dtype, st.info(`${p}.nested_absmax`).shape], ["F32", [Math.ceil(nb / 256)]]);
  assert.deepEqual([st.info(`${p}.nested_quant_map`).dtype, st.info(`${p}.nested_quant_map`).shape], ["F32", [256]]);
  const state = JSON.parse(new TextDecoder().decode(st.bytes(`${p}.quant_state.bitsandbytes__nf4`)));
  assert.deepEqual(Object.keys(state), ["quant_type", "blocksize", "dtype", "shape", "nested_blocksize", "nested_dtype", "nested_offset"]);
  assert.deepEqual([state.quant_type, state.blocksize, state.dtype, state.shape, state.nested_blocksize, state.nested_dtype], ["nf4", 64, "float32", [out, inF], 256, "float32"]);
  assert.match(new TextDecoder().decode(st.bytes(`${p}.quant_state.bitsandbytes__nf4`)), /^\{"quant_type": "nf4", "blocksize": 64, /); // (Python's json.dumps)
  // embeddings, norms and biases stay as they were
  for (const k of ["model.embed_tokens.weight", "model.norm.weight", "model.layers.0.self_attn.q_proj.bias"]) assert.deepEqual(st.float32(k), src.float32(k), k);

  const atLoad = CausalLM.load(dir, { quantization: Q }), stored = CausalLM.load(q4dir);
  for (let l = 0; l < atLoad.layers.length; l++) for (const [mod, { W }] of atLoad.layers[l].linears) {
    const S = stored.layers[l].linears.get(mod)!.W;
    assert.ok(W instanceof Q4Weight && S instanceof Q4Weight, mod);
    assert.deepEqual(S.toParts(), W.toParts(), mod);
  }
  assert.deepEqual(logits(stored), logits(atLoad));

  // exported again in 4-bit: the stored weights are copied as they are, byte for byte
  const again = join(tmp, "q4-again");
  await exportModel({ model: q4dir, format: "hf", out: again, quantization: Q });
  assert.ok(readFileSync(join(again, "model.safetensors")).equals(readFileSync(join(q4dir, "model.safetensors"))));
});

test(`${basename(dir)}: from the 4-bit folder, the merged 16-bit export is the dequantised base plus the LoRA delta; GGUF too`, async () => {
  assert.ok(existsSync(join(q4dir, "config.json")), "the previous test wrote the 4-bit folder");
  const merged = join(tmp, "merged");
  await exportModel({ model: q4dir, adapter: join(dir, "adapter"), format: "hf", out: merged });
  const cfg = JSON.parse(readFileSync(join(merged, "config.json"), "utf8"));
  assert.equal(cfg.quantization_config, undefined, "a 16-bit folder");
  const st = readSafetensors(join(merged, "model.safetensors")), q4 = CausalLM.load(q4dir), ad = loadPeftAdapter(join(dir, "adapter"));
  let merges = 0;
  for (const l of q4.layers) for (const [mod, { W }] of l.linears) {
    const want = refDequantize((W as Q4Weight).toParts());
    const A = ad.tensors.get(`base_model.model.${mod}.lora_A.weight`), Bt = ad.tensors.get(`base_model.model.${mod}.lora_B.weight`);
    if (A && Bt) { const d = loraDelta(A, Bt, peftScaling(ad.config, mod)); want.forEach((v, i) => { want[i] = v + d[i]; }); merges++; }
    assert.deepEqual(st.float32(`${mod}.weight`), want, mod);
  }
  assert.ok(merges > 0);
  const withAdapter = CausalLM.load(q4dir, { adapter: join(dir, "adapter") });
  const rel = relDiff(logits(CausalLM.load(merged)), logits(withAdapter));
  assert.ok(rel <= 1e-5, `merged model vs 4-bit base + adapter: relative max |Δlogit| ${rel}`);

  const g1 = join(tmp, "from-q4.gguf"), g2 = join(tmp, "from-merged.gguf");
  await exportModel({ model: q4dir, adapter: join(dir, "adapter"), format: "gguf", type: "f32", out: g1, modelfile: false });
  await exportModel({ model: merged, format: "gguf", type: "f32", out: g2, modelfile: false });
  const [t1, t2] = [await ggufTensors(g1), await ggufTensors(g2)];
  assert.deepEqual([...t1.keys()].sort(), [...t2.keys()].sort());
  for (const [name, b] of t1) assert.ok(b.equals(t2.get(name)!), `GGUF tensor ${name}: the 4-bit base + adapter's equals the merged folder's`);
  assert.equal(loadHfWeights(q4dir).names.filter((n) => n.includes("absmax")).length, 0, "a 4-bit folder reads as plain tensors");
});

/** An f32 GGUF's tensors by name: their bytes. */
async function ggufTensors(path: string): Promise<Map<string, Buffer>> {
  const { gguf } = await import("@huggingface/gguf");
  const g = await gguf(path, { allowLocalFile: true });
  const file = readFileSync(path), out = new Map<string, Buffer>();
  for (const t of g.tensorInfos) {
    assert.equal(t.dtype, 0, "f32");
    const start = Number(g.tensorDataOffset + t.offset), n = t.shape.reduce((a, d) => a * Number(d), 1);
    out.set(t.name, file.subarray(start, start + 4 * n));
  }
  return out;
}

test("aha logits --load-in-4bit [--no-double-quant] writes the 4-bit model's logits", () => {
  const bin = join(fileURLToPath(new URL("..", import.meta.url)), "bin", "aha.js");
  for (const dq of [true, false]) {
    const out = join(tmp, `logits-${dq}.safetensors`);
    const r = spawnSync(process.execPath, [bin, "logits", "--model", dir, "--input", join(dir, "reference.safetensors"), "--output", out, "--load-in-4bit",
      ...(dq ? [] : ["--no-double-quant"])], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readSafetensors(out).float32("logits"), logits(CausalLM.load(dir, { quantization: { ...Q, doubleQuant: dq } })));
  }
});
