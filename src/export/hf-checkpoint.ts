// Merged Hugging Face checkpoint writer (FORMATS.md §1.4–1.5): model.safetensors, or shards
// `model-0000i-of-0000n.safetensors` + model.safetensors.index.json, plus config.json (dtype updated),
// generation_config.json, tokenizer files and chat template copied from the base folder.
// Is: a streaming writer, one tensor in memory at a time, each shard written to a temp name and renamed; the index
// comes last, so a reader never sees an index whose shards are missing.
// With `quantize4` the linear layers' weights are written in bitsandbytes' 4-bit format (models/bnb4.ts: packed codes,
// absmax, maps, quant state) and config.json gets its quantization_config, as transformers saves a 4-bit model;
// weights already stored in 4-bit with the same settings are copied as stored. Is not: a GPTQ/AWQ writer; lm_head is
// dropped when the config ties it, as save_pretrained does.
// Hand-written: the safetensors npm writers buffer whole files (Node buffers stop at 4 GiB) or lack the index.
import { copyFileSync, existsSync, fsyncSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { f32ToBf16, f32ToF16, type StDType } from "../models/safetensors.js";
import { ensureDir, namingPath, writeAll, writeFileAtomic, writeFileVia } from "../files/atomic.ts";
import { assertFinite } from "../engine/finite.ts";
import type { WeightSet } from "./weights.js";
import { q4Entries, quantizationConfig, type Quant4Settings } from "../models/bnb4.ts";
import { quantize4, type Q4Parts } from "../engine/quant4.ts";

export type HfDtype = "f32" | "f16" | "bf16";

export interface SaveHfOptions {
  /** storage dtype for floating tensors (default bf16 when the source config says bfloat16, else f32) */
  dtype?: HfDtype;
  /** largest shard in bytes before a new shard starts (default 5e9, transformers 4.x's "5GB") */
  maxShardBytes?: number;
  /** base model folder to copy config, generation config, tokenizer and chat template from */
  sourceDir?: string;
  onProgress?: (done: number, total: number, name: string) => void;
  /** write the linear layers' weights in bitsandbytes 4-bit (a folder that loads as stored, like unsloth/*-bnb-4bit) */
  quantize4?: Quant4Settings | null;
}

/** The weights bitsandbytes quantises: every decoder layer's projection (never embeddings, norms, biases, lm_head). */
export function isLinearWeight(name: string): boolean {
  return /^model\.(language_model\.)?layers\.\d+\.(self_attn|mlp)\.[a-z_]*proj\.weight$/.test(name);
}

/** One stored tensor of a shard: its dtype, shape, byte count and (when written) its bytes. */
interface Entry { name: string; dtype: StDType; shape: number[]; bytes: number; data(): Uint8Array }

const ST_DTYPE: Record<HfDtype, StDType> = { f32: "F32", f16: "F16", bf16: "BF16" };
const TORCH_DTYPE: Record<HfDtype, string> = { f32: "float32", f16: "float16", bf16: "bfloat16" };
const BYTES: Record<HfDtype, number> = { f32: 4, f16: 2, bf16: 2 };

/** Files copied verbatim from the base folder when present. */
export const HF_SIDE_FILES = [
  "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
  "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
];

function encode(name: string, x: Float32Array, dt: HfDtype): Uint8Array {
  assertFinite(`tensor '${name}'`, x, "refusing to export values that are not finite");
  const v = dt === "f32" ? x : dt === "bf16" ? f32ToBf16(x) : f32ToF16(x);
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

const ALIGN: Partial<Record<StDType, number>> = { F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4, BF16: 2, F16: 2, I16: 2, U16: 2 };

/** Stream one safetensors file: header from the entries' sizes, then each entry's bytes as produced. */
function writeShard(path: string, entries: Entry[], onTensor: (n: string) => void): void {
  // the reference writer's order: dtype alignment descending, then name (every tensor naturally aligned)
  const order = [...entries].sort((a, b) => (ALIGN[b.dtype] ?? 1) - (ALIGN[a.dtype] ?? 1) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const e of order) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.bytes] };
    off += e.bytes;
  }
  let hjson = JSON.stringify(header);
  while (Buffer.byteLength(hjson) % 8 !== 0) hjson += " ";
  const hb = Buffer.from(hjson, "utf8");
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(hb.length));
  writeFileVia(path, (fd) => {
    writeAll(fd, lenBuf);
    writeAll(fd, hb);
    for (const e of order) {
      const b = e.data();
      if (b.byteLength !== e.bytes) throw new Error(`tensor ${e.name}: ${b.byteLength} bytes, expected ${e.bytes}`);
      writeAll(fd, b);
      onTensor(e.name);
    }
    fsyncSync(fd);
  });
}

const asBytes = (d: ArrayBufferView) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/**
 * The stored tensors of one logical tensor: itself in dtype dt, or with `q` (a linear weight) its 4-bit entries, made
 * from the parts `parts(name)` gives (quantised when asked; a one-weight cache spares most repeats).
 */
function entriesOf(weights: WeightSet, name: string, dt: HfDtype, q: Quant4Settings | null, parts: (n: string) => Q4Parts): Entry[] {
  const shape = weights.shape(name);
  if (!q || !isLinearWeight(name)) return [{ name, dtype: ST_DTYPE[dt], shape, bytes: shape.reduce((a, b) => a * b, 1) * BYTES[dt], data: () => encode(name, weights.get(name), dt) }];
  return Object.entries(q4Entries(name, parts(name))).map(([n, t]) => ({ name: n, dtype: t.dtype, shape: t.shape, bytes: t.data.byteLength,
    data: () => asBytes(q4Entries(name, parts(name))[n].data) }));
}

/** Plan shards the way transformers does: in tensor order, a new shard when the next tensor would overflow. */
export function planShards(names: string[], bytes: (n: string) => number, maxShardBytes: number): string[][] {
  const shards: string[][] = [];
  let cur: string[] = [], size = 0;
  for (const n of names) {
    const b = bytes(n);
    if (cur.length && size + b > maxShardBytes) { shards.push(cur); cur = []; size = 0; }
    cur.push(n);
    size += b;
  }
  if (cur.length) shards.push(cur);
  return shards;
}

/** Write `weights` as an HF checkpoint in `outDir` (created if needed). Returns the written file names. */
export function saveHfCheckpoint(outDir: string, weights: WeightSet, opts: SaveHfOptions = {}): string[] {
  const srcCfgPath = opts.sourceDir ? join(opts.sourceDir, "config.json") : undefined;
  const config = srcCfgPath && existsSync(srcCfgPath) ? (JSON.parse(readFileSync(srcCfgPath, "utf8")) as Record<string, unknown>) : undefined;
  const srcDtype = String(config?.dtype ?? config?.torch_dtype ?? "float32");
  const dt: HfDtype = opts.dtype ?? (srcDtype === "bfloat16" ? "bf16" : srcDtype === "float16" ? "f16" : "f32");
  if (!(dt in ST_DTYPE)) throw new Error(`saveHfCheckpoint: dtype must be f32, f16 or bf16, got ${dt}`);
  const maxShard = opts.maxShardBytes ?? 5e9;
  const tied = config?.tie_word_embeddings === true;
  const q = opts.quantize4 ?? null;
  const names = weights.names.filter((n) => !(tied && n === "lm_head.weight"));
  // 4-bit parts: as stored when the source holds them with these settings, else quantised from the values (in the
  // output's dtype: what a model saved in dt then quantised would hold)
  let last: { name: string; parts: Q4Parts } | null = null;
  const parts = (n: string): Q4Parts => {
    if (last?.name === n) return last.parts;
    const s = weights.q4?.(n);
    const p = s && s.type === q!.type && !!s.nested === q!.doubleQuant ? s
      : dt === "f32" ? quantize4(weights.get(n), "f32", weights.shape(n), { type: q!.type, doubleQuant: q!.doubleQuant })
      : quantize4(dt === "bf16" ? f32ToBf16(weights.get(n)) : f32ToF16(weights.get(n)), dt, weights.shape(n), { type: q!.type, doubleQuant: q!.doubleQuant });
    last = { name: n, parts: p };
    return p;
  };
  const entries = new Map(names.map((n) => [n, entriesOf(weights, n, dt, q, parts)] as const));
  const nbytes = (n: string) => entries.get(n)!.reduce((a, e) => a + e.bytes, 0);
  const shards = planShards(names, nbytes, maxShard);
  ensureDir(outDir);
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  const total = names.reduce((a, n) => a + entries.get(n)!.length, 0);
  let done = 0;
  shards.forEach((shard, i) => {
    const fname = shards.length === 1 ? "model.safetensors"
      : `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`;
    const es = shard.flatMap((n) => entries.get(n)!);
    writeShard(join(outDir, fname), es, (n) => opts.onProgress?.(++done, total, n));
    for (const e of es) weightMap[e.name] = fname;
    files.push(fname);
  });
  if (shards.length > 1) {
    const sorted: Record<string, string> = {};
    for (const k of Object.keys(weightMap).sort()) sorted[k] = weightMap[k];
    const totalSize = names.reduce((a, n) => a + nbytes(n), 0);
    const totalParams = names.reduce((a, n) => a + weights.shape(n).reduce((x, y) => x * y, 1), 0);
    const index = { metadata: { total_parameters: totalParams, total_size: totalSize }, weight_map: sorted };
    writeFileAtomic(join(outDir, "model.safetensors.index.json"), JSON.stringify(index, null, 2) + "\n");
    files.push("model.safetensors.index.json");
  }
  if (config) {
    config.dtype = TORCH_DTYPE[dt];
    if ("torch_dtype" in config) config.torch_dtype = TORCH_DTYPE[dt];
    if (q) config.quantization_config = quantizationConfig(q);
    else delete config.quantization_config; // (a 4-bit source written out dequantised)
    writeFileAtomic(join(outDir, "config.json"), JSON.stringify(config, null, 2) + "\n");
    files.push("config.json");
  }
  if (opts.sourceDir) {
    for (const f of HF_SIDE_FILES) {
      const p = join(opts.sourceDir, f);
      if (existsSync(p)) { namingPath("copy to", join(outDir, f), () => copyFileSync(p, join(outDir, f))); files.push(f); }
    }
  }
  return files;
}
