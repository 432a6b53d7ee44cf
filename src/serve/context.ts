// What every endpoint of `aha serve` shares: the scheduler, the tokenizer, the served names, and the small pieces of
// OpenAI's wire format used by more than one endpoint (ids, SSE, sampling fields, context-length errors, log-probs).
import type { ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { CausalLM } from "../models/model.ts";
import type { Tokenizer } from "../tokenize/index.ts";
import type { SamplingParams } from "../generate/sampler.ts";
import type { Scheduler, TokenEvent } from "./scheduler.ts";
import { ApiError } from "./errors.ts";

export interface ServeContext {
  sch: Scheduler;
  tok: Tokenizer;
  model: CausalLM;
  /** the base model's name in /v1/models and in requests' `model` */
  baseName: string;
  /** longest prompt + completion in tokens (the model's max_position_embeddings) */
  maxContext: number;
  /** the tool-call format of the chat template, once a request with tools has asked (src/tools) */
  toolFormat?: import("../tools/index.ts").ToolCallFormat;
}

/** The adapter a request's `model` names (null: the base model), or a 404. */
export function adapterFor(ctx: ServeContext, model: string): string | null {
  if (model === ctx.baseName) return null;
  if (ctx.sch.adapterNames.includes(model)) return model;
  throw new ApiError(404, `The model '${model}' does not exist (served: ${[ctx.baseName, ...ctx.sch.adapterNames].join(", ")})`, "model", "model_not_found");
}

export const newId = (prefix: string) => `${prefix}-${randomUUID().replace(/-/g, "")}`;
export const now = () => Math.floor(Date.now() / 1000);

export interface SamplingFields {
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
  stop?: string | string[] | null;
}

export function samplingOf(r: SamplingFields): SamplingParams {
  return { temperature: r.temperature ?? 1, topP: r.top_p ?? 1, topK: Math.max(0, r.top_k ?? 0), minP: r.min_p ?? 0, repetitionPenalty: r.repetition_penalty ?? 1 };
}

export function stopsOf(r: SamplingFields): string[] {
  return r.stop == null ? [] : (typeof r.stop === "string" ? [r.stop] : r.stop).filter((s) => s.length > 0);
}

/** New tokens a request may take: what it asked for, or the rest of the context; a 400 when that does not fit. */
export function completionBudget(ctx: ServeContext, promptTokens: number, requested: number | null | undefined, param: string): number {
  const room = ctx.maxContext - promptTokens, want = requested ?? room;
  if (room <= 0 || want > room)
    throw new ApiError(400, `This model's maximum context length is ${ctx.maxContext} tokens. However, you requested ${promptTokens + Math.max(want, 1)} tokens ` +
      `(${promptTokens} in the ${param}, ${Math.max(want, 1)} in the completion). Please reduce the length of the ${param} or completion.`, param, "context_length_exceeded");
  return want;
}

/** A token's text as log-prob entries show it. */
export function tokenText(tok: Tokenizer, id: number): string {
  return tok.decode([id]);
}

/** Chat log-prob entries ({token, logprob, bytes, top_logprobs}) of drawn tokens. */
export function chatLogprobs(tok: Tokenizer, evs: TokenEvent[]): { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number; bytes: number[] }[] }[] {
  const entry = (id: number, logprob: number) => { const token = tokenText(tok, id); return { token, logprob, bytes: [...Buffer.from(token, "utf8")] }; };
  return evs.map((e) => ({ ...entry(e.token, e.logprob ?? 0), top_logprobs: (e.top ?? []).map((t) => entry(t.token, t.logprob)) }));
}

/** A server-sent event stream of JSON chunks, ending with [DONE]. */
export class Sse {
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" });
  }
  send(chunk: unknown): void {
    if (!this.res.destroyed) this.res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }
  done(): void {
    if (this.res.destroyed) return;
    this.res.write("data: [DONE]\n\n");
    this.res.end();
  }
}
