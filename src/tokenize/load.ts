// loadTokenizer: build a Tokenizer from a Hugging Face model folder.
// Is: file reading and reconciliation — tokenizer.json, tokenizer_config.json, special_tokens_map.json (older
// checkpoints), chat_template.jinja / chat_template.json / tokenizer_config's chat_template, generation_config.json
// and config.json for the bos/eos/pad ids. Is not: downloading from the Hub, or slow (sentencepiece .model) tokenizers.
// Simplifies: a token given as an AddedToken object ({content, …}) is reduced to its content string.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import { ChatTemplates, type ChatTemplateSource } from "./chat-template.ts";
import { resolveHubPath } from "../hub/cache.ts";
import { type SpecialTokens, Tokenizer } from "./tokenizer.ts";

type Json = Record<string, unknown>;

function readJson(path: string): Json | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Json;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** A token as tokenizer_config writes it: a string, {content: string}, or null. */
function tokenString(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as Json).content === "string") return (v as Json).content as string;
  return null;
}

function idList(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

export interface LoadTokenizerOptions {
  /** Use this chat template text instead of the folder's (e.g. to give a base model a ChatML template). */
  chatTemplate?: string;
  /** where `dir` is a hub id: the ref or commit of the cached snapshot (default "main"; hub/cache.ts) */
  revision?: string;
}

/** Load the tokenizer of a local Hugging Face model folder, or of a hub id from the local hub cache (needs tokenizer.json). */
export function loadTokenizer(dir: string, opts: LoadTokenizerOptions = {}): Tokenizer {
  dir = resolveHubPath(dir, { revision: opts.revision });
  const tokPath = join(dir, "tokenizer.json");
  const tokJson = readJson(tokPath);
  if (!tokJson) {
    throw new Error(`${tokPath}: not found (aha reads "fast" tokenizers only; convert a sentencepiece model with transformers first)`);
  }
  const rawConfig = readJson(join(dir, "tokenizer_config.json")) ?? {};
  const specialMap = readJson(join(dir, "special_tokens_map.json")) ?? {};
  const genConfig = readJson(join(dir, "generation_config.json")) ?? {};
  const modelConfig = readJson(join(dir, "config.json")) ?? {};
  // Multimodal configs nest the text model's ids.
  const textConfig = (modelConfig.text_config as Json | undefined) ?? {};

  const pick = (key: string): string | null => tokenString(rawConfig[key]) ?? tokenString(specialMap[key]);
  const additional = [
    ...((rawConfig.additional_special_tokens as unknown[] | undefined) ?? (specialMap.additional_special_tokens as unknown[] | undefined) ?? []),
    ...(Array.isArray(rawConfig.extra_special_tokens) ? rawConfig.extra_special_tokens : []),
  ]
    .map(tokenString)
    .filter((s): s is string => s !== null);
  const special: SpecialTokens = {
    bos_token: pick("bos_token"),
    eos_token: pick("eos_token"),
    pad_token: pick("pad_token"),
    unk_token: pick("unk_token"),
    additional_special_tokens: [...new Set(additional)],
  };

  // The library reads a few keys from the config; hand it plain strings.
  const libConfig: Json = { ...rawConfig, ...special };
  let hf: HFTokenizer;
  try {
    hf = new HFTokenizer(tokJson, libConfig);
  } catch (e) {
    throw new Error(`${tokPath}: cannot build the tokenizer (${(e as Error).message})`);
  }

  const idOf = (t: string | null): number | null => (t === null ? null : (hf.token_to_id(t) ?? null));
  const firstNumber = (...vs: unknown[]): number | null => {
    for (const v of vs) {
      const l = idList(v);
      if (l.length > 0) return l[0]!;
    }
    return null;
  };

  const bosTokenId = idOf(special.bos_token) ?? firstNumber(genConfig.bos_token_id, modelConfig.bos_token_id, textConfig.bos_token_id);
  const padTokenId = idOf(special.pad_token) ?? firstNumber(genConfig.pad_token_id, modelConfig.pad_token_id, textConfig.pad_token_id);
  const eos = new Set<number>();
  const genEos = idList(genConfig.eos_token_id);
  for (const id of genEos.length > 0 ? genEos : [...idList(modelConfig.eos_token_id), ...idList(textConfig.eos_token_id)]) eos.add(id);
  const tokEos = idOf(special.eos_token);
  if (tokEos !== null) eos.add(tokEos);

  let template: ChatTemplateSource | undefined;
  if (opts.chatTemplate !== undefined) template = opts.chatTemplate;
  else if (existsSync(join(dir, "chat_template.jinja"))) template = readFileSync(join(dir, "chat_template.jinja"), "utf8");
  else if (rawConfig.chat_template !== undefined && rawConfig.chat_template !== null) template = rawConfig.chat_template as ChatTemplateSource;
  else {
    const ct = readJson(join(dir, "chat_template.json"));
    if (ct && ct.chat_template) template = ct.chat_template as ChatTemplateSource;
  }

  const context: Json = { ...special };
  for (const [k, v] of Object.entries(rawConfig)) {
    // Named extra tokens (boi_token, image_token, …) are template variables in transformers too.
    if (k.endsWith("_token") && !(k in context)) {
      const s = tokenString(v);
      if (s !== null) context[k] = s;
    }
  }
  if (rawConfig.extra_special_tokens && !Array.isArray(rawConfig.extra_special_tokens)) {
    for (const [k, v] of Object.entries(rawConfig.extra_special_tokens as Json)) {
      const s = tokenString(v);
      if (s !== null && !(k in context)) context[k] = s;
    }
  }

  return new Tokenizer({
    hf,
    templates: ChatTemplates.from(template, context),
    specialTokens: special,
    bosTokenId,
    eosTokenIds: [...eos],
    padTokenId,
    cleanUpTokenizationSpaces: rawConfig.clean_up_tokenization_spaces === true,
    source: dir,
  });
}
