// The caller-facing text layer over the token-id generator: chat-templated prompts, streaming of decoded text,
// stop strings checked on the decoded text (the completion is cut before the stop string, as vLLM and TRL do).
import type { CausalLM } from "../models/model.ts";
import type { Tokenizer, Message } from "../tokenize/index.ts";
import { generate, type GenerateOptions } from "../generate/generate.ts";
import { CompletionText } from "./completion-text.ts";

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
  const eos = opts.stopTokenIds ?? tok.eosTokenIds;
  const texts = new Map<number, CompletionText>();
  const textOf = (c: number) => {
    let t = texts.get(c);
    if (!t) texts.set(c, (t = new CompletionText(tok, opts.stop ?? [], eos)));
    return t;
  };
  const onToken = (c: number, token: number): boolean => {
    const t = textOf(c), piece = t.push(token);
    if (opts.onText && piece) opts.onText(c, piece);
    return t.stopped;
  };
  const out = generate(model, ids, { ...opts, stopTokenIds: eos, onToken });
  return out.map((c, i) => {
    const { text, rest } = textOf(i).finish(c.tokenIds);
    if (opts.onText && rest) opts.onText(i, rest);
    return { prompt: c.prompt, index: c.index, text, tokenIds: c.tokenIds, finishReason: c.finishReason, logprobs: c.logprobs };
  });
}
