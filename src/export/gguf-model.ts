// HF model (+ optional merged LoRA) → one GGUF file llama.cpp loads (FORMATS.md §2–§6).
// Is: the glue: names and transforms from gguf-arch.ts, vocab from gguf-vocab.ts, per-tensor types from quant-mix.ts,
// bytes through gguf-writer.ts (temp name + rename, one tensor in memory at a time).
// Is not: a GGUF reader or a re-quantiser of existing GGUF files.
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { archKVs, extraTensors, ggufArchOf, ggufTensorName, textConfig, transformTensor, type GgufArch, type HfConfig } from "./gguf-arch.js";
import { FILE_TYPE, GGML_BLOCK, GGUF_EXPORT_TYPES, type GgmlType, type GgufExportType } from "./gguf-types.js";
import { vocabKVs } from "./gguf-vocab.js";
import { writeGguf, type GgufKV, type GgufTensorPlan } from "./gguf-writer.js";
import { chooseGgmlType, encodeGgml } from "./quant-mix.js";
import type { WeightSet } from "./weights.js";
import { assertFinite } from "../engine/finite.ts";

export interface GgufExportOptions {
  /** tensor type mix (default f16) */
  type?: GgufExportType;
  /** general.name (default: the model folder's name) */
  name?: string;
  onProgress?: (done: number, total: number, tensor: string) => void;
  /** test-only negative control: write llama q/k without the rope row permutation */
  skipQkPermute?: boolean;
}

export interface GgufExportResult {
  arch: GgufArch;
  bytes: number;
  /** GGUF tensor name → ggml type name */
  types: Record<string, string>;
  stopTokens: string[];
  chatTemplate?: string;
  warnings: string[];
}

export function readHfConfig(dir: string): HfConfig {
  const p = join(dir, "config.json");
  if (!existsSync(p)) throw new Error(`${dir}: no config.json (not a Hugging Face model folder?)`);
  return JSON.parse(readFileSync(p, "utf8")) as HfConfig;
}

/** Write `weights` (HF names, from model folder `srcDir`) as a GGUF at `outPath`. */
export function exportGguf(srcDir: string, weights: WeightSet, outPath: string, opts: GgufExportOptions = {}): GgufExportResult {
  const type = opts.type ?? "f16";
  if (!GGUF_EXPORT_TYPES.includes(type)) throw new Error(`GGUF export: type '${type}' is not one of ${GGUF_EXPORT_TYPES.join(", ")}`);
  const cfg = textConfig(readHfConfig(srcDir));
  const arch = ggufArchOf(cfg);
  const tied = cfg.tie_word_embeddings === true || !weights.names.some((n) => /(^|\.)lm_head\.weight$/.test(n));
  const embedName = weights.names.find((n) => ggufTensorNameSafe(arch, n) === "token_embd.weight");
  if (!embedName) throw new Error(`${srcDir}: no embed_tokens weight found`);
  const nVocab = weights.shape(embedName)[0];
  const vocab = vocabKVs(srcDir, arch, cfg, nVocab);

  const plans: GgufTensorPlan[] = [];
  const types: Record<string, string> = {};
  const ctx = { nLayer: cfg.num_hidden_layers, tiedOutput: tied };
  const add = (name: string, shape: number[], produce: () => Float32Array) => {
    const ne = [...shape].reverse();
    const t: GgmlType = chooseGgmlType(type, name, ne, ctx);
    types[name] = GGML_BLOCK[t].name;
    plans.push({ name, ne, type: t, data: () => {
      const x = produce();
      assertFinite(`tensor '${name}'`, x, "refusing to export values that are not finite");
      return encodeGgml(t, x);
    } });
  };
  for (const { name, data } of extraTensors(arch, cfg)) add(name, [data.length], () => data);
  for (const hf of weights.names) {
    const g = ggufTensorName(arch, hf);
    if (g === null || (tied && g === "output.weight")) continue;
    const shape = weights.shape(hf);
    add(g, shape, () => transformTensor(arch, cfg, g, shape, weights.get(hf), { skipPermute: opts.skipQkPermute }));
  }
  // llama.cpp sets token attributes on "</s>", "<unk>", "<s>", "<|endoftext|>" when general.name contains phi3/phi-3
  // and aborts (std::out_of_range) if the vocab lacks one; keep such names away from that branch
  let name = opts.name ?? basename(srcDir);
  const phiTokens = ["</s>", "<unk>", "<s>", "<|endoftext|>"];
  if (/phi-?3/i.test(name) && !phiTokens.every((t) => vocab.tokens.includes(t))) {
    const renamed = name.replace(/phi(-?)3/gi, "phi$1_3");
    vocab.warnings.push(`general.name '${name}' renamed to '${renamed}': llama.cpp's Phi-3 vocab rule needs tokens ${phiTokens.join(" ")}`);
    name = renamed;
  }
  const kvs: GgufKV[] = [
    ["general.architecture", { type: "string", value: arch }],
    ["general.type", { type: "string", value: "model" }],
    ["general.name", { type: "string", value: name }],
    ["general.file_type", { type: "u32", value: FILE_TYPE[type] }],
    ["general.quantization_version", { type: "u32", value: 2 }], // the converter always writes it
    ...archKVs(arch, cfg),
    ...vocab.kvs,
  ];
  const bytes = writeGguf(outPath, kvs, plans, { onTensor: opts.onProgress });
  return { arch, bytes, types, stopTokens: vocab.stopTokens, chatTemplate: vocab.chatTemplate, warnings: vocab.warnings };
}

function ggufTensorNameSafe(arch: GgufArch, hf: string): string | null {
  try { return ggufTensorName(arch, hf); } catch { return null; }
}
