// The text of one completion as its tokens arrive: incremental decoding (StreamDecoder), stop strings checked on the
// decoded text, and text held back while it could still be the start of a stop string, so that what is streamed is
// never taken back. The completion is cut before the first stop string, as vLLM and TRL do.
// Is: the shared text logic of generateText, `aha serve` and `aha chat`. Is not: a tokenizer (decoding is the
// tokenizer's). Simplifies: end-of-sequence tokens are not text (skipped, like every special token).
import type { Tokenizer } from "../tokenize/index.ts";

export class CompletionText {
  private readonly decoder;
  private readonly holdBack: number;
  private text = "";
  private emitted = 0;
  /** true once a stop string appeared (the caller ends the completion) */
  stopped = false;

  constructor(private readonly tok: Tokenizer, private readonly stops: string[] = [], private readonly eos: readonly number[] = tok.eosTokenIds) {
    this.decoder = tok.createStreamDecoder({ skipSpecialTokens: true });
    this.holdBack = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /** Take one token; returns the text that became final ("" while held back). */
  push(token: number): string {
    if (this.stopped || this.eos.includes(token)) return "";
    this.text += this.decoder.push(token);
    const hit = firstStop(this.text, this.stops);
    if (hit >= 0) this.stopped = true;
    return this.release(hit >= 0 ? hit : Math.max(0, this.text.length - this.holdBack));
  }

  /**
   * The completion's whole text from all its token ids (decoded at once, cut at a stop string), and the part of it
   * not yet returned by push.
   */
  finish(tokenIds: readonly number[]): { text: string; rest: string } {
    let text = this.tok.decode(tokenIds, { skipSpecialTokens: true });
    const hit = firstStop(text, this.stops);
    if (hit >= 0) text = text.slice(0, hit);
    const rest = text.length > this.emitted ? text.slice(this.emitted) : "";
    this.emitted = Math.max(this.emitted, text.length);
    return { text, rest };
  }

  private release(safe: number): string {
    if (safe <= this.emitted) return "";
    const out = this.text.slice(this.emitted, safe);
    this.emitted = safe;
    return out;
  }
}

/** Index of the earliest stop string in text, or -1. */
export function firstStop(text: string, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}
