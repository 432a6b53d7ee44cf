// tokenizer.json / tokenizer_config.json → `tokenizer.ggml.*` and `tokenizer.chat_template` (FORMATS.md §3.4).
// Is: the converter's `_set_vocab_gpt2` + SpecialVocab for byte-level BPE tokenizers (Llama 3, Qwen2/2.5/3, Phi-4,
// Mistral-Nemo-style and the fixtures): tokens padded to the embedding row count with [PAD{id}], token types,
// merges, special ids, add_bos/add_eos, and the pre-tokenizer name read off the Split regex instead of hashing a
// test string through the HF tokenizer (which needs Python).
// Is not: SentencePiece (tokenizer.model, Llama 2 / Gemma / Phi-3 mini) vocabularies — those throw a clear error.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { GgufArch, HfConfig } from "./gguf-arch.js";
import type { GgufKV } from "./gguf-writer.js";

const LLAMA3_REGEX_MARK = "\\p{N}{1,3}";
const TT = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 };

interface TokJson {
  added_tokens?: { id: number; content: string; special?: boolean }[];
  pre_tokenizer?: any;
  post_processor?: any;
  decoder?: any;
  model: { type?: string; vocab: Record<string, number>; merges?: (string | [string, string])[]; byte_fallback?: boolean };
}

function collect(pt: any, out: any[] = []): any[] {
  if (!pt) return out;
  out.push(pt);
  for (const p of pt.pretokenizers ?? pt.processors ?? []) collect(p, out);
  return out;
}

/** llama.cpp pre-tokenizer name from tokenizer.json's pre_tokenizer; `guessed` when it fell back to the family. */
export function detectPre(tok: TokJson, arch: GgufArch): { pre: string; guessed: boolean } {
  const parts = collect(tok.pre_tokenizer);
  const split = parts.find((p) => p.type === "Split");
  const regex: string | undefined = split?.pattern?.Regex;
  const byteLevel = parts.find((p) => p.type === "ByteLevel");
  if (!split && byteLevel && byteLevel.use_regex !== false) return { pre: "gpt-2", guessed: false };
  if (regex) {
    if (regex.includes(LLAMA3_REGEX_MARK) && regex.includes("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+")) return { pre: "llama-bpe", guessed: false };
    if (regex.includes("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|")) return { pre: "qwen2", guessed: false };
    if (regex.includes("[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+")) return { pre: "gpt-4o", guessed: false };
  }
  return { pre: arch === "llama" ? "llama-bpe" : arch === "qwen2" || arch === "qwen3" ? "qwen2" : "gpt-2", guessed: true };
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return undefined;
}

export interface VocabResult {
  kvs: GgufKV[];
  /** EOS-like token strings (eos, eot, <|im_end|>…) for Modelfile stop lines */
  stopTokens: string[];
  chatTemplate?: string;
  warnings: string[];
  /** token strings by id (padded) */
  tokens: string[];
}

/** Build the tokenizer keys for a model folder whose embedding has `nVocab` rows. */
export function vocabKVs(dir: string, arch: GgufArch, cfg: HfConfig, nVocab: number): VocabResult {
  const tjPath = join(dir, "tokenizer.json");
  if (!existsSync(tjPath)) {
    throw new Error(`${dir}: GGUF export needs tokenizer.json${existsSync(join(dir, "tokenizer.model")) ? " (SentencePiece tokenizer.model vocabularies are not supported yet)" : ""}`);
  }
  const tok = JSON.parse(readFileSync(tjPath, "utf8")) as TokJson;
  const tcPath = join(dir, "tokenizer_config.json");
  const tc = existsSync(tcPath) ? (JSON.parse(readFileSync(tcPath, "utf8")) as Record<string, any>) : {};
  const isByteLevel = collect(tok.pre_tokenizer).some((p) => p.type === "ByteLevel") || collect(tok.decoder).some((p) => p.type === "ByteLevel");
  if (tok.model.type !== "BPE" || !isByteLevel || tok.model.byte_fallback)
    throw new Error(`${tjPath}: only byte-level BPE tokenizers are supported for GGUF export (this one is ${tok.model.type}${tok.model.byte_fallback ? " with byte_fallback, i.e. SentencePiece-style" : ""})`);
  const warnings: string[] = [];
  const tokens: string[] = new Array(nVocab);
  const types: number[] = new Array(nVocab).fill(TT.NORMAL);
  const byContent = new Map<string, number>();
  for (const [s, id] of Object.entries(tok.model.vocab)) {
    if (id >= nVocab) throw new Error(`${tjPath}: token id ${id} is beyond the embedding's ${nVocab} rows`);
    tokens[id] = s;
    byContent.set(s, id);
  }
  for (const a of tok.added_tokens ?? []) {
    if (a.id >= nVocab) throw new Error(`${tjPath}: added token ${a.content} id ${a.id} is beyond the embedding's ${nVocab} rows`);
    tokens[a.id] = a.content;
    byContent.set(a.content, a.id);
    const looksSpecial = /^<\|.*\|>$/.test(a.content) || /^<unused\d+>$/.test(a.content);
    types[a.id] = a.special || looksSpecial ? TT.CONTROL : TT.USER_DEFINED;
  }
  for (let i = 0; i < nVocab; i++) if (tokens[i] === undefined) { tokens[i] = `[PAD${i}]`; types[i] = TT.UNUSED; }
  const merges = (tok.model.merges ?? []).map((m) =>
    typeof m === "string" ? m : m.map((part) => part.replace(/ /g, "\u0120")).join(" "));
  const { pre, guessed } = detectPre(tok, arch);
  if (guessed) warnings.push(`tokenizer.json pre-tokenizer not recognised; wrote tokenizer.ggml.pre='${pre}' from the ${arch} family`);
  const kvs: GgufKV[] = [
    ["tokenizer.ggml.model", { type: "string", value: "gpt2" }],
    ["tokenizer.ggml.pre", { type: "string", value: pre }],
    ["tokenizer.ggml.tokens", { type: "array", itemType: "string", value: tokens }],
    ["tokenizer.ggml.token_type", { type: "array", itemType: "i32", value: types }],
    ["tokenizer.ggml.merges", { type: "array", itemType: "string", value: merges }],
  ];
  const idOf = (field: string, cfgKey: string): number | undefined => {
    const c = tokenContent(tc[field]);
    if (c !== undefined && byContent.has(c)) return byContent.get(c);
    const v = cfg[cfgKey];
    const n = Array.isArray(v) ? v[0] : v;
    return typeof n === "number" && n < nVocab ? n : undefined;
  };
  const bos = idOf("bos_token", "bos_token_id"), eos = idOf("eos_token", "eos_token_id");
  const unk = idOf("unk_token", "unk_token_id"), padId = idOf("pad_token", "pad_token_id");
  if (bos !== undefined) kvs.push(["tokenizer.ggml.bos_token_id", { type: "u32", value: bos }]);
  if (eos !== undefined) kvs.push(["tokenizer.ggml.eos_token_id", { type: "u32", value: eos }]);
  if (unk !== undefined) kvs.push(["tokenizer.ggml.unknown_token_id", { type: "u32", value: unk }]);
  if (padId !== undefined) kvs.push(["tokenizer.ggml.padding_token_id", { type: "u32", value: padId }]);
  // add_bos: tokenizer_config's flag, else a leading SpecialToken in the TemplateProcessing post-processor
  let addBos: boolean | undefined = typeof tc.add_bos_token === "boolean" ? tc.add_bos_token : undefined;
  if (addBos === undefined) {
    const tp = collect(tok.post_processor).find((p) => p.type === "TemplateProcessing");
    const first = tp?.single?.[0]?.SpecialToken?.id;
    if (tp) addBos = first !== undefined && bos !== undefined && byContent.get(first) === bos;
  }
  if (addBos !== undefined) kvs.push(["tokenizer.ggml.add_bos_token", { type: "bool", value: addBos }]);
  if (typeof tc.add_eos_token === "boolean") kvs.push(["tokenizer.ggml.add_eos_token", { type: "bool", value: tc.add_eos_token }]);
  let chatTemplate: string | undefined;
  if (existsSync(join(dir, "chat_template.jinja"))) chatTemplate = readFileSync(join(dir, "chat_template.jinja"), "utf8");
  else if (existsSync(join(dir, "chat_template.json"))) chatTemplate = JSON.parse(readFileSync(join(dir, "chat_template.json"), "utf8")).chat_template;
  else if (typeof tc.chat_template === "string") chatTemplate = tc.chat_template;
  if (chatTemplate) kvs.push(["tokenizer.chat_template", { type: "string", value: chatTemplate }]);
  const stops = new Set<string>();
  if (eos !== undefined) stops.add(tokens[eos]);
  for (const t of ["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"]) if (byContent.has(t) && types[byContent.get(t)!] === TT.CONTROL) stops.add(t);
  return { kvs, stopTokens: [...stops], chatTemplate, warnings, tokens };
}
