// POST /v1/completions (prompt text or token ids, one or several prompts, n each, echo, log-probs in the legacy
// {tokens, token_logprobs, top_logprobs, text_offset} shape, streaming) and POST /v1/embeddings (mean-pooled,
// normalised final hidden states; float or base64 as the openai client asks by default).
import type { ServerResponse } from "node:http";
import { ApiError, parseBody } from "./errors.ts";
import { completionRequest, embeddingRequest } from "./protocol.ts";
import { adapterFor, completionBudget, newId, now, samplingOf, stopsOf, Sse, tokenText, type ServeContext } from "./context.ts";
import { runText } from "./text-run.ts";
import type { TokenEvent } from "./scheduler.ts";

/** A prompt field (text, texts, ids, lists of ids) as token-id lists, each checked against the vocabulary. */
function promptList(ctx: ServeContext, p: string | string[] | number[] | number[][], param: string): number[][] {
  const list = typeof p === "string" ? [p] : p.length && typeof p[0] === "number" ? [p as number[]] : (p as (string | number[])[]);
  return list.map((x, i) => {
    const ids = typeof x === "string" ? ctx.tok.encode(x) : x;
    if (ids.length === 0) throw new ApiError(400, "the input is empty", list.length > 1 ? `${param}[${i}]` : param);
    const bad = ids.find((t) => t >= ctx.model.config.vocabSize);
    if (bad !== undefined) throw new ApiError(400, `token id ${bad} is outside the vocabulary (${ctx.model.config.vocabSize})`, list.length > 1 ? `${param}[${i}]` : param);
    return ids;
  });
}

function legacyLogprobs(ctx: ServeContext, evs: TokenEvent[], offset0: number) {
  const tokens = evs.map((e) => tokenText(ctx.tok, e.token));
  let off = offset0;
  const text_offset = tokens.map((t) => { const o = off; off += t.length; return o; });
  const top_logprobs = evs.map((e) => {
    const o: Record<string, number> = {}; // keyed by text: of tokens that decode alike, the likeliest stays
    for (const t of e.top ?? []) o[tokenText(ctx.tok, t.token)] ??= t.logprob;
    return o;
  });
  return { tokens, token_logprobs: evs.map((e) => e.logprob), top_logprobs, text_offset };
}

export async function completions(ctx: ServeContext, body: unknown, res: ServerResponse): Promise<void> {
  const r = parseBody(completionRequest, body);
  const adapter = adapterFor(ctx, r.model);
  if (r.echo && r.logprobs != null) throw new ApiError(400, "echo with logprobs is not supported (no prompt log-probs)", "echo");
  const n = r.n ?? 1;
  if (r.best_of != null && r.best_of !== n) throw new ApiError(400, "best_of must equal n", "best_of");
  const prompts = promptList(ctx, r.prompt, "prompt");
  const budgets = prompts.map((p) => completionBudget(ctx, p.length, r.max_tokens ?? 16, "prompt"));
  const id = newId("cmpl"), created = now();
  const head = { id, object: "text_completion", created, model: r.model };
  const sse = r.stream ? new Sse(res) : null;
  const echoText = (p: number) => (r.echo ? ctx.tok.decode(prompts[p]) : "");
  const runs = prompts.map((promptIds, p) => {
    if (sse && r.echo) for (let i = 0; i < n; i++) sse.send({ ...head, choices: [{ index: p * n + i, text: echoText(p), logprobs: null, finish_reason: null }] });
    const offsets = new Array(n).fill(0);
    return runText(ctx.sch, ctx.tok, {
      promptIds, n, maxTokens: budgets[p], sampling: samplingOf(r), seed: r.seed ?? undefined, stops: stopsOf(r), adapter, ignoreEos: r.ignore_eos ?? false,
      topLogprobs: r.logprobs ?? undefined,
      onPiece: sse ? (i, text, evs) => {
        if (!text && !(r.logprobs != null && evs.length)) return;
        const lp = r.logprobs != null ? legacyLogprobs(ctx, evs, offsets[i]) : null;
        offsets[i] += text.length;
        sse.send({ ...head, choices: [{ index: p * n + i, text, logprobs: lp, finish_reason: null }] });
      } : undefined,
    });
  });
  res.on("close", () => { if (!res.writableFinished) for (const run of runs) run.cancel(); });
  const results = await Promise.all(runs.map((x) => x.done));
  const finish = (f: string) => (f === "cancelled" ? "abort" : f);
  const completionTokens = results.flat().reduce((a, c) => a + c.tokenIds.length, 0);
  const promptTokens = prompts.reduce((a, p) => a + p.length, 0);
  const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  if (sse) {
    results.forEach((cs, p) => cs.forEach((c, i) => sse.send({ ...head, choices: [{ index: p * n + i, text: "", logprobs: null, finish_reason: finish(c.finishReason) }] })));
    if (r.stream_options?.include_usage) sse.send({ ...head, choices: [], usage });
    sse.done();
    return;
  }
  const choices = results.flatMap((cs, p) => cs.map((c, i) => ({
    index: p * n + i, text: echoText(p) + c.text, finish_reason: finish(c.finishReason),
    logprobs: r.logprobs != null ? legacyLogprobs(ctx, c.tokens, 0) : null,
  })));
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ ...head, choices, usage }));
}

export function embeddings(ctx: ServeContext, body: unknown, res: ServerResponse): void {
  const r = parseBody(embeddingRequest, body);
  const adapter = adapterFor(ctx, r.model);
  const C = ctx.model.config.hidden;
  if (r.dimensions != null && r.dimensions !== C) throw new ApiError(400, `this model's embeddings have ${C} dimensions`, "dimensions");
  const inputs = promptList(ctx, r.input, "input");
  inputs.forEach((ids, i) => {
    if (ids.length > ctx.maxContext)
      throw new ApiError(400, `This model's maximum context length is ${ctx.maxContext} tokens. However, you requested ${ids.length} tokens in the input.`, inputs.length > 1 ? `input[${i}]` : "input", "context_length_exceeded");
  });
  const vecs = ctx.sch.embed(inputs, adapter);
  const data = vecs.map((v, index) => ({
    object: "embedding", index,
    embedding: r.encoding_format === "base64" ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : Array.from(v),
  }));
  const tokens = inputs.reduce((a, x) => a + x.length, 0);
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ object: "list", data, model: r.model, usage: { prompt_tokens: tokens, total_tokens: tokens } }));
}
