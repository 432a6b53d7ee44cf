// A lazy view of a Hugging Face checkpoint's tensors (model.safetensors or shards + index, FORMATS.md §1.5), and
// the LoRA merge W' = W + scale·B·A on top of it (§8.3), tensor by tensor.
// Is: what the exporters read from; `get(name)` returns a fresh float32 copy, computed when asked for, so an export
// never holds more than the loaded shard files plus one converted tensor.
// Is not: the training model's weights (models/ owns those); a live model can hand its tensors in by implementing
// WeightSet itself.
// A folder saved in bitsandbytes 4-bit (models/bnb4.ts) reads as its dequantised weights: each 4-bit weight is one
// tensor of its logical shape and stored dtype, whose values are the dequantised ones, and `q4` gives its stored form.
// Simplifies: shards are parsed on first use and kept (the safetensors reader loads whole files).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors, type SafetensorsFile, type StDType } from "../models/safetensors.js";
import { loadPeftAdapter, loraModules, peftScaling, type PeftAdapter } from "../models/peft.ts";
import { Q4_SUFFIXES, readStoredQ4 } from "../models/bnb4.ts";
import { dequantize4, type Q4Parts } from "../engine/quant4.ts";

/** Named tensors of an HF-layout model, float32 on demand. */
export interface WeightSet {
  /** HF tensor names in checkpoint order */
  names: string[];
  shape(name: string): number[];
  /** storage dtype in the source (merged tensors report F32) */
  dtype(name: string): StDType;
  /** a float32 copy of the tensor, [shape] row-major */
  get(name: string): Float32Array;
  /** a weight stored in 4-bit: its stored parts (get() gives their dequantised values); undefined otherwise */
  q4?(name: string): Q4Parts | undefined;
}

/** Open the safetensors weights of an HF model folder (single file or sharded with an index). */
export function loadHfWeights(dir: string): WeightSet {
  const single = join(dir, "model.safetensors");
  const index = join(dir, "model.safetensors.index.json");
  const where = new Map<string, string>();
  if (existsSync(index)) {
    const idx = JSON.parse(readFileSync(index, "utf8")) as { weight_map?: Record<string, string> };
    if (!idx.weight_map) throw new Error(`${index}: no weight_map`);
    for (const [n, f] of Object.entries(idx.weight_map)) where.set(n, join(dir, f));
  } else if (!existsSync(single)) {
    throw new Error(`${dir}: neither model.safetensors nor model.safetensors.index.json found`);
  }
  const files = new Map<string, SafetensorsFile>();
  const open = (p: string): SafetensorsFile => {
    let f = files.get(p);
    if (!f) { f = readSafetensors(p); files.set(p, f); }
    return f;
  };
  let names: string[];
  if (where.size) {
    names = [...where.keys()];
    for (const p of new Set(where.values())) {
      const f = open(p);
      for (const n of f.tensors.keys()) if (where.get(n) !== p) throw new Error(`${p}: tensor ${n} is not listed for this shard in ${index}`);
    }
  } else {
    const f = open(single);
    names = [...f.tensors.entries()].sort((a, b) => a[1].begin - b[1].begin).map(([n]) => n);
    for (const n of names) where.set(n, single);
  }
  const file = (n: string) => {
    const p = where.get(n);
    if (!p) throw new Error(`${dir}: tensor ${n} not in the checkpoint`);
    return open(p);
  };
  // 4-bit weights: the names with a quant_state, read once (their stored parts), their companions hidden
  const stored = new Map<string, Q4Parts>();
  for (const n of names) {
    const m = /^(.*)\.quant_state\.bitsandbytes__(nf4|fp4)$/.exec(n);
    if (!m) continue;
    const st = JSON.parse(new TextDecoder().decode(file(n).bytes(n))) as { shape?: number[] };
    stored.set(m[1], readStoredQ4(file(m[1]), m[1], st.shape ?? [])!);
  }
  if (stored.size) names = names.filter((n) => !Q4_SUFFIXES.some((s) => n.endsWith(s) && stored.has(n.slice(0, -s.length))));
  const ST: Record<Q4Parts["dtype"], StDType> = { f32: "F32", bf16: "BF16", f16: "F16" };
  return {
    names,
    shape: (n) => (stored.has(n) ? [...stored.get(n)!.shape] : [...file(n).info(n).shape]),
    dtype: (n) => (stored.has(n) ? ST[stored.get(n)!.dtype] : file(n).info(n).dtype),
    get: (n) => (stored.has(n) ? dequantize4(stored.get(n)!) : file(n).weight(n)),
    q4: (n) => stored.get(n),
  };
}

/** delta[out, in] = scale · B[out, r] · A[r, in], accumulated in float64. */
export function loraDelta(A: { shape: number[]; data: Float32Array }, B: { shape: number[]; data: Float32Array }, scale: number): Float32Array {
  const [r, nin] = A.shape, nout = B.shape[0];
  const out = new Float32Array(nout * nin);
  const row = new Float64Array(nin);
  for (let o = 0; o < nout; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const b = B.data[o * r + k];
      if (b === 0) continue;
      const a = A.data.subarray(k * nin, (k + 1) * nin);
      for (let i = 0; i < nin; i++) row[i] += b * a[i];
    }
    for (let i = 0; i < nin; i++) out[o * nin + i] = row[i] * scale;
  }
  return out;
}

/**
 * Base weights with a PEFT LoRA adapter merged in: `<module>.weight` becomes W + scale·B·A (transposed when
 * fan_in_fan_out), embeddings get (B·A)ᵀ. Fused modules (phi3 qkv_proj / gate_up_proj) need nothing special: the
 * adapter targets the fused module, so its B already has the fused row count.
 */
export function mergeLora(base: string | WeightSet, adapter: string | PeftAdapter): WeightSet {
  const w = typeof base === "string" ? loadHfWeights(base) : base;
  const ad = typeof adapter === "string" ? loadPeftAdapter(adapter) : adapter;
  const mods = loraModules(ad);
  const target = new Map<string, { module: string; A: { shape: number[]; data: Float32Array }; B: { shape: number[]; data: Float32Array }; embedding: boolean }>();
  const has = new Set(w.names);
  for (const [module, { A, B }] of mods) {
    const name = resolveName(module + ".weight", has);
    if (!name) throw new Error(`LoRA module ${module}: the base model has no tensor ${module}.weight`);
    target.set(name, { module, A, B, embedding: false });
  }
  for (const [k, t] of ad.tensors) {
    const m = /^base_model\.model\.(.+)\.lora_embedding_A$/.exec(k);
    if (!m) continue;
    const B = ad.tensors.get(`base_model.model.${m[1]}.lora_embedding_B`);
    if (!B) throw new Error(`LoRA embedding ${m[1]}: lora_embedding_B is missing`);
    const name = resolveName(m[1] + ".weight", has);
    if (!name) throw new Error(`LoRA embedding ${m[1]}: the base model has no tensor ${m[1]}.weight`);
    target.set(name, { module: m[1], A: t, B, embedding: true });
  }
  const fifo = ad.config.fan_in_fan_out === true;
  return {
    names: w.names,
    shape: (n) => w.shape(n),
    dtype: (n) => (target.has(n) ? "F32" : w.dtype(n)),
    q4: (n) => (target.has(n) ? undefined : w.q4?.(n)),
    get(n) {
      const W = w.get(n);
      const t = target.get(n);
      if (!t) return W;
      const shape = w.shape(n);
      const scale = peftScaling(ad.config, t.module);
      const d = loraDelta(t.A, t.B, scale); // [B rows, A cols]
      const transpose = t.embedding || fifo;
      const [dr, dc] = [t.B.shape[0], t.A.shape[1]];
      const [wr, wc] = transpose ? [dc, dr] : [dr, dc];
      if (shape.length !== 2 || shape[0] !== wr || shape[1] !== wc)
        throw new Error(`LoRA module ${t.module}: B·A is [${dr}, ${dc}]${transpose ? " (transposed)" : ""} but ${n} is [${shape}]`);
      if (!transpose) for (let i = 0; i < W.length; i++) W[i] += d[i];
      else for (let r = 0; r < dr; r++) for (let c = 0; c < dc; c++) W[c * dr + r] += d[r * dc + c];
      return W;
    },
  };
}

/** Gemma3 multimodal checkpoints nest the text model under model.language_model.; match either spelling. */
function resolveName(name: string, has: Set<string>): string | undefined {
  if (has.has(name)) return name;
  const alt = name.replace(/^model\./, "model.language_model.");
  if (has.has(alt)) return alt;
  return undefined;
}
