// A request's completions as text: submits token ids to the Scheduler and turns each completion's tokens into text
// (CompletionText: incremental decoding, stop strings that end the completion), with the pieces streamed as they
// become final together with the log-probs of their tokens. Shared by /v1/chat/completions, /v1/completions and
// `aha chat`.
import type { Tokenizer } from "../tokenize/index.ts";
import type { SamplingParams } from "../generate/sampler.ts";
import { CompletionText } from "../text/completion-text.ts";
import type { FinishReason, Scheduler, TokenEvent } from "./scheduler.ts";

export interface TextRunOptions {
  promptIds: number[];
  n: number;
  maxTokens: number;
  sampling: SamplingParams;
  seed?: number;
  /** strings that end a completion (cut before them) */
  stops?: string[];
  /** log-probs per token: see SequenceRequest.topLogprobs */
  topLogprobs?: number;
  adapter?: string | null;
  /** keep going past end-of-sequence tokens (they stay out of the text) */
  ignoreEos?: boolean;
  /** strings that end the streamed text without ending the completion (a tool call's opening tag) */
  holdFrom?: string[];
  /** completion i's newly final text and the tokens drawn since the last piece (stop tokens left out) */
  onPiece?: (i: number, text: string, tokens: TokenEvent[]) => void;
}

export interface TextResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  /** every drawn token but end-of-sequence tokens */
  tokens: TokenEvent[];
}

export function runText(sch: Scheduler, tok: Tokenizer, o: TextRunOptions): { done: Promise<TextResult[]>; cancel: () => void } {
  const eos = tok.eosTokenIds, stops = o.stops ?? [];
  const per = Array.from({ length: o.n }, () => ({
    gen: new CompletionText(tok, stops, eos),
    shown: o.holdFrom?.length ? new CompletionText(tok, [...stops, ...o.holdFrom], eos) : null,
    tokens: [] as TokenEvent[],
    pending: [] as TokenEvent[],
  }));
  const sub = sch.submit({
    promptIds: o.promptIds, n: o.n, maxTokens: o.maxTokens, sampling: o.sampling, seed: o.seed, stopTokenIds: o.ignoreEos ? [] : eos,
    topLogprobs: o.topLogprobs, adapter: o.adapter,
    onToken: (i, ev) => {
      const c = per[i];
      if (!eos.includes(ev.token)) { c.tokens.push(ev); c.pending.push(ev); }
      const piece = c.gen.push(ev.token), shown = c.shown ? c.shown.push(ev.token) : piece;
      if (o.onPiece && shown) { o.onPiece(i, shown, c.pending); c.pending = []; }
      return c.gen.stopped;
    },
  });
  const done = sub.done.then((results) => results.map((r, i) => {
    const c = per[i], { text, rest } = c.gen.finish(r.tokenIds);
    const tail = c.shown ? c.shown.finish(r.tokenIds).rest : rest;
    if (o.onPiece && (tail || c.pending.length)) o.onPiece(i, tail, c.pending);
    return { text, tokenIds: r.tokenIds, finishReason: r.finishReason, tokens: c.tokens };
  }));
  return { done, cancel: sub.cancel };
}
