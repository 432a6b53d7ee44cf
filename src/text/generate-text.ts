// The caller-facing text layer over the token-id generator: chat-templated prompts, streaming of decoded text,
// stop strings checked on the decoded text (the completion is cut before the stop string, as vLLM and TRL do).
import type { CausalLM } from "../models/model.ts";
import type { Tokenizer, Message } from "../tokenize/index.ts";
import { generate, type GenerateOptions } from "../generate/generate.ts";

export interface TextGenerateOptions extends Omit<GenerateOptions, "onToken"> {
  /** render prompts with the chat template (default: true when the tokenizer has one) */
  chat?: boolean;
  system?: string;
  /** strings that end a completion (not included in its text) */
  stop?: string[];
  /** called with (completion number, new text) as text completes */
  onText?: (completion: number, text: string) => void;
}

export interface TextCompletion {
  prompt: number;
  index: number;
  text: string;
  tokenIds: number[];
  finishReason: "stop" | "length";
  logprobs: number[];
}

/** Prompt token ids for a text or a conversation. */
export function encodePrompt(tok: Tokenizer, prompt: string | Message[], opts: { chat?: boolean; system?: string } = {}): number[] {
  const chat = opts.chat ?? tok.hasChatTemplate;
  if (!chat) {
    if (typeof prompt !== "string") throw new Error("a conversation prompt needs a chat template");
    return tok.encode(prompt);
  }
  const messages: Message[] = typeof prompt === "string" ? [{ role: "user", content: prompt }] : [...prompt];
  if (opts.system && messages[0]?.role !== "system") messages.unshift({ role: "system", content: opts.system });
  return tok.encodeChat(messages, { addGenerationPrompt: true });
}

export function generateText(model: CausalLM, tok: Tokenizer, prompts: (string | Message[])[], opts: TextGenerateOptions = {}): TextCompletion[] {
  const ids = prompts.map((p) => encodePrompt(tok, p, opts));
  const stops = opts.stop ?? [];
  const decoders = new Map<number, ReturnType<Tokenizer["createStreamDecoder"]>>();
  const texts = new Map<number, string>();
  const emitted = new Map<number, number>();
  const holdBack = Math.max(0, ...stops.map((s) => s.length - 1));
  const eos = opts.stopTokenIds ?? tok.eosTokenIds;
  const onToken = (c: number, token: number): boolean => {
    let d = decoders.get(c);
    if (!d) { d = tok.createStreamDecoder({ skipSpecialTokens: true }); decoders.set(c, d); }
    if (eos.includes(token)) return false;
    const text = (texts.get(c) ?? "") + d.push(token);
    texts.set(c, text);
    const hit = firstStop(text, stops);
    const safe = hit >= 0 ? hit : Math.max(0, text.length - holdBack);
    const done = emitted.get(c) ?? 0;
    if (opts.onText && safe > done) opts.onText(c, text.slice(done, safe));
    emitted.set(c, Math.max(done, safe));
    return hit >= 0;
  };
  const out = generate(model, ids, { ...opts, stopTokenIds: eos, onToken });
  return out.map((c, i) => {
    let text = tok.decode(c.tokenIds, { skipSpecialTokens: true });
    const hit = firstStop(text, stops);
    if (hit >= 0) text = text.slice(0, hit);
    const done = emitted.get(i) ?? 0;
    if (opts.onText && text.length > done) opts.onText(i, text.slice(done));
    return { prompt: c.prompt, index: c.index, text, tokenIds: c.tokenIds, finishReason: c.finishReason, logprobs: c.logprobs };
  });
}

function firstStop(text: string, stops: string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}
