// POST /v1/chat/completions: messages through the model's chat template (tools rendered by it, the model's tool
// calls parsed back into `tool_calls` by src/tools in the format the template uses), n completions sharing the batch,
// stop strings, seed, log-probs, usage, and streaming as OpenAI's chat.completion.chunk events ending with [DONE].
// Streamed with tools: text before a Hermes/Qwen <tool_call> streams as it comes; the calls arrive in one tool_calls
// delta at the end. Other formats mark calls with special tokens or a whole-turn JSON object, so their answers are
// held and sent at the end.
import type { ServerResponse } from "node:http";
import type { Message } from "../tokenize/index.ts";
import { ApiError, parseBody } from "./errors.ts";
import { chatRequest, type ChatMessageIn, type ChatRequest } from "./protocol.ts";
import { adapterFor, chatLogprobs, completionBudget, newId, now, samplingOf, stopsOf, Sse, type ServeContext } from "./context.ts";
import { runText, type TextResult } from "./text-run.ts";
import { firstStop } from "../text/completion-text.ts";
import { parseToolCalls, toolCallFormatFor, ToolTemplateError, type ToolCallFormat } from "../tools/index.ts";

/** OpenAI messages → the messages a Hugging Face chat template expects (text parts joined, tool-call arguments as objects). */
export function templateMessages(msgs: ChatMessageIn[]): Message[] {
  return msgs.map((m, i) => {
    const content = Array.isArray(m.content) ? m.content.map((p) => p.text).join("") : (m.content ?? "");
    const out: Message = { ...m, role: m.role === "developer" ? "system" : m.role, content };
    if (m.tool_calls) out.tool_calls = m.tool_calls.map((c, j) => {
      let args: unknown;
      try { args = JSON.parse(c.function.arguments); } catch {
        throw new ApiError(400, "tool call arguments must be a JSON string", `messages[${i}].tool_calls[${j}].function.arguments`);
      }
      return { id: c.id, type: "function", function: { name: c.function.name, arguments: args } };
    });
    return out;
  });
}

/** The answer's content and tool calls (OpenAI's shape), read from its tokens decoded with special tokens kept. */
function toolCallsOut(ctx: ServeContext, tokenIds: number[], format: ToolCallFormat, stops: string[]) {
  let raw = ctx.tok.decode(tokenIds.filter((t) => !ctx.tok.eosTokenIds.includes(t)));
  const hit = firstStop(raw, stops);
  if (hit >= 0) raw = raw.slice(0, hit);
  const { content, calls } = parseToolCalls(raw, format);
  return { content: content || null, calls: calls.map((c, index) => ({ index, id: newId("call"), type: "function" as const, function: { name: c.name, arguments: JSON.stringify(c.arguments) } })) };
}

/** The tool-call format of the served model's template (checked once), or a 400 naming `tools`. */
function toolFormat(ctx: ServeContext): ToolCallFormat {
  try {
    return (ctx.toolFormat ??= toolCallFormatFor(ctx.tok, { modelType: ctx.model.config.arch }));
  } catch (e) {
    if (e instanceof ToolTemplateError) throw new ApiError(400, e.message, "tools");
    throw e;
  }
}

export async function chatCompletions(ctx: ServeContext, body: unknown, res: ServerResponse): Promise<void> {
  const r: ChatRequest = parseBody(chatRequest, body);
  const adapter = adapterFor(ctx, r.model);
  if (!ctx.tok.hasChatTemplate) throw new ApiError(400, "this model has no chat template: use /v1/completions", "messages");
  const tools = r.tools?.length && r.tool_choice !== "none" ? r.tools : undefined;
  const format = tools ? toolFormat(ctx) : null;
  if (r.top_logprobs && !r.logprobs) throw new ApiError(400, "top_logprobs needs logprobs: true", "top_logprobs");
  let promptIds: number[];
  try {
    promptIds = ctx.tok.encodeChat(templateMessages(r.messages), { addGenerationPrompt: true, tools });
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(400, `the chat template could not render these messages: ${(e as Error).message}`, "messages");
  }
  const maxTokens = completionBudget(ctx, promptIds.length, r.max_completion_tokens ?? r.max_tokens, "messages");
  const n = r.n ?? 1, id = newId("chatcmpl"), created = now();
  const head = { id, object: "chat.completion.chunk", created, model: r.model, system_fingerprint: null };
  const sse = r.stream ? new Sse(res) : null;
  if (sse) for (let i = 0; i < n; i++) sse.send({ ...head, choices: [{ index: i, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }] });
  const run = runText(ctx.sch, ctx.tok, {
    promptIds, n, maxTokens, sampling: samplingOf(r), seed: r.seed ?? undefined, stops: stopsOf(r), adapter, ignoreEos: r.ignore_eos ?? false,
    topLogprobs: r.logprobs ? (r.top_logprobs ?? 0) : undefined,
    holdFrom: format === "hermes" ? ["<tool_call>"] : undefined,
    onPiece: sse && (!format || format === "hermes") ? (i, text, evs) => {
      if (!text && !(r.logprobs && evs.length)) return;
      sse.send({ ...head, choices: [{ index: i, delta: { content: text }, logprobs: r.logprobs ? { content: chatLogprobs(ctx.tok, evs) } : null, finish_reason: null }] });
    } : undefined,
  });
  res.on("close", () => { if (!res.writableFinished) run.cancel(); }); // the client went away: stop its sequences
  const results = await run.done;
  const finish = (c: TextResult, calls: unknown[]) => (calls.length && c.finishReason === "stop" ? "tool_calls" : c.finishReason === "cancelled" ? "abort" : c.finishReason);
  const completionTokens = results.reduce((a, c) => a + c.tokenIds.length, 0);
  const usage = { prompt_tokens: promptIds.length, completion_tokens: completionTokens, total_tokens: promptIds.length + completionTokens };
  const outs = results.map((c) => (format ? toolCallsOut(ctx, c.tokenIds, format, stopsOf(r)) : { content: c.text, calls: [] }));
  if (sse) {
    results.forEach((c, i) => {
      const t = outs[i];
      if (format && format !== "hermes" && t.content) sse.send({ ...head, choices: [{ index: i, delta: { content: t.content }, logprobs: null, finish_reason: null }] }); // held until now
      if (t.calls.length) sse.send({ ...head, choices: [{ index: i, delta: { tool_calls: t.calls }, logprobs: null, finish_reason: null }] });
      sse.send({ ...head, choices: [{ index: i, delta: {}, logprobs: null, finish_reason: finish(c, t.calls) }] });
    });
    if (r.stream_options?.include_usage) sse.send({ ...head, choices: [], usage });
    sse.done();
    return;
  }
  const choices = results.map((c, i) => {
    const t = outs[i];
    const message: Record<string, unknown> = { role: "assistant", content: t.content, refusal: null };
    if (t.calls.length) message.tool_calls = t.calls.map(({ index: _i, ...call }) => call);
    return { index: i, message, logprobs: r.logprobs ? { content: chatLogprobs(ctx.tok, c.tokens) } : null, finish_reason: finish(c, t.calls) };
  });
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ id, object: "chat.completion", created, model: r.model, system_fingerprint: null, choices, usage }));
}
