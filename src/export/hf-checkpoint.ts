// Merged Hugging Face checkpoint writer (FORMATS.md §1.4–1.5): model.safetensors, or shards
// `model-0000i-of-0000n.safetensors` + model.safetensors.index.json, plus config.json (dtype updated),
// generation_config.json, tokenizer files and chat template copied from the base folder.
// Is: a streaming writer, one tensor in memory at a time, each shard written to a temp name and renamed; the index
// comes last, so a reader never sees an index whose shards are missing.
// Is not: a quantised (bnb/GPTQ) checkpoint writer; lm_head is dropped when the config ties it, as save_pretrained does.
// Hand-written: the safetensors npm writers buffer whole files (Node buffers stop at 4 GiB) or lack the index.
import { copyFileSync, existsSync, fsyncSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { f32ToBf16, f32ToF16, type StDType } from "../models/safetensors.js";
import { ensureDir, namingPath, writeAll, writeFileAtomic, writeFileVia } from "../files/atomic.ts";
import { assertFinite } from "../engine/finite.ts";
import type { WeightSet } from "./weights.js";

export type HfDtype = "f32" | "f16" | "bf16";

export interface SaveHfOptions {
  /** storage dtype for floating tensors (default bf16 when the source config says bfloat16, else f32) */
  dtype?: HfDtype;
  /** largest shard in bytes before a new shard starts (default 5e9, transformers 4.x's "5GB") */
  maxShardBytes?: number;
  /** base model folder to copy config, generation config, tokenizer and chat template from */
  sourceDir?: string;
  onProgress?: (done: number, total: number, name: string) => void;
}

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

/** Stream one safetensors file: header from shapes, then each tensor's bytes as produced. */
function writeShard(path: string, names: string[], shapes: Map<string, number[]>, dt: HfDtype, get: (n: string) => Uint8Array,
  onTensor: (n: string) => void): void {
  // all tensors share one dtype, so sorting by name alone is the reference writer's order (alignment, then name)
  const order = [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const n of order) {
    const len = shapes.get(n)!.reduce((a, b) => a * b, 1) * BYTES[dt];
    header[n] = { dtype: ST_DTYPE[dt], shape: shapes.get(n), data_offsets: [off, off + len] };
    off += len;
  }
  let hjson = JSON.stringify(header);
  while (Buffer.byteLength(hjson) % 8 !== 0) hjson += " ";
  const hb = Buffer.from(hjson, "utf8");
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(hb.length));
  writeFileVia(path, (fd) => {
    writeAll(fd, lenBuf);
    writeAll(fd, hb);
    for (const n of order) {
      const b = get(n);
      const want = shapes.get(n)!.reduce((a, c) => a * c, 1) * BYTES[dt];
      if (b.byteLength !== want) throw new Error(`tensor ${n}: ${b.byteLength} bytes, expected ${want}`);
      writeAll(fd, b);
      onTensor(n);
    }
    fsyncSync(fd);
  });
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
  const names = weights.names.filter((n) => !(tied && n === "lm_head.weight"));
  const shapes = new Map(names.map((n) => [n, weights.shape(n)] as const));
  const nbytes = (n: string) => shapes.get(n)!.reduce((a, b) => a * b, 1) * BYTES[dt];
  const shards = planShards(names, nbytes, maxShard);
  ensureDir(outDir);
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  let done = 0;
  shards.forEach((shard, i) => {
    const fname = shards.length === 1 ? "model.safetensors"
      : `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`;
    writeShard(join(outDir, fname), shard, shapes, dt, (n) => encode(n, weights.get(n), dt), (n) => opts.onProgress?.(++done, names.length, n));
    for (const n of shard) weightMap[n] = fname;
    files.push(fname);
  });
  if (shards.length > 1) {
    const sorted: Record<string, string> = {};
    for (const k of Object.keys(weightMap).sort()) sorted[k] = weightMap[k];
    const totalSize = names.reduce((a, n) => a + nbytes(n), 0);
    const totalParams = names.reduce((a, n) => a + shapes.get(n)!.reduce((x, y) => x * y, 1), 0);
    const index = { metadata: { total_parameters: totalParams, total_size: totalSize }, weight_map: sorted };
    writeFileAtomic(join(outDir, "model.safetensors.index.json"), JSON.stringify(index, null, 2) + "\n");
    files.push("model.safetensors.index.json");
  }
  if (config) {
    config.dtype = TORCH_DTYPE[dt];
    if ("torch_dtype" in config) config.torch_dtype = TORCH_DTYPE[dt];
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
