// `aha generate`: sample completions from a model folder (optionally with a LoRA adapter); streams text to a
// terminal, or prints one JSON object per completion with --json.
import { readFileSync } from "node:fs";
import { CausalLM } from "../models/model.ts";
import { loadTokenizer, type Message } from "../tokenize/index.ts";
import { generateText } from "../text/generate-text.ts";
import { generate } from "../generate/generate.ts";
import type { Quant4Settings } from "../models/bnb4.ts";

export interface GenerateArgs {
  model: string;
  revision?: string;
  adapter?: string;
  prompt?: string;
  prompts?: string;
  promptIds?: string;
  chat?: boolean;
  system?: string;
  n: number;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  repetitionPenalty: number;
  seed: number;
  stop?: string[];
  json?: boolean;
  /** quantise the linear layers to 4 bits at load (--load-in-4bit) */
  quantization?: Quant4Settings | null;
}

export function runGenerate(a: GenerateArgs, out: NodeJS.WritableStream = process.stdout): void {
  const given = [a.prompt, a.prompts, a.promptIds].filter((x) => x !== undefined).length;
  if (given !== 1) throw new Error("give exactly one of --prompt, --prompts or --prompt-ids");
  const model = CausalLM.load(a.model, { adapter: a.adapter, revision: a.revision, quantization: a.quantization });
  const sampling = { n: a.n, maxTokens: a.maxTokens, temperature: a.temperature, topP: a.topP, topK: a.topK, minP: a.minP, repetitionPenalty: a.repetitionPenalty, seed: a.seed };
  if (a.promptIds !== undefined) {
    const ids = a.promptIds.split(",").map((s, i) => {
      const v = Number(s.trim());
      if (!Number.isInteger(v) || v < 0 || v >= model.config.vocabSize) throw new Error(`--prompt-ids: item ${i + 1} '${s}' is not a token id of this model`);
      return v;
    });
    for (const c of generate(model, [ids], { ...sampling, stopTokenIds: model.config.eosTokenIds })) {
      out.write(JSON.stringify({ prompt: c.prompt, index: c.index, token_ids: c.tokenIds, finish_reason: c.finishReason, logprobs: c.logprobs }) + "\n");
    }
    return;
  }
  const tok = loadTokenizer(a.model, { revision: a.revision });
  let prompts: (string | Message[])[];
  if (a.prompts !== undefined) {
    prompts = readFileSync(a.prompts, "utf8").split("\n").filter((l) => l.trim()).map((l, i) => {
      let row: { prompt?: unknown; messages?: unknown };
      try { row = JSON.parse(l); } catch (e) { throw new Error(`${a.prompts}: line ${i + 1}: malformed JSON (${(e as Error).message})`); }
      const p = row.prompt ?? row.messages;
      if (typeof p !== "string" && !Array.isArray(p)) throw new Error(`${a.prompts}: line ${i + 1}: needs a 'prompt' string or message list`);
      return p as string | Message[];
    });
  } else prompts = [a.prompt!];
  // one completion streams as it is decoded; several (decoded side by side) print as each set finishes
  const streaming = !a.json && prompts.length * a.n === 1;
  const res = generateText(model, tok, prompts, {
    ...sampling, chat: a.chat, system: a.system, stop: a.stop,
    onText: streaming ? (_c, text) => out.write(text) : undefined,
  });
  if (streaming) { out.write("\n"); return; }
  if (!a.json) {
    for (const c of res) out.write(`--- prompt ${c.prompt + 1}, completion ${c.index + 1} (${c.finishReason}) ---\n${c.text}\n`);
    return;
  }
  for (const c of res) {
    out.write(JSON.stringify({ prompt: c.prompt, index: c.index, text: c.text, token_ids: c.tokenIds, finish_reason: c.finishReason, logprobs: c.logprobs }) + "\n");
  }
}
