// The agent rollout: episodes of several turns in one batched generation (src/generate/turns.ts), with tools called
// and environments stepped between turns, and the GRPO rollout built from them.
// Is: after each turn that ends with the model's stop token, its text is parsed for tool calls (src/tools, the
// format of the model's family); the calls run concurrently (timeout; errors, unknown tools, bad arguments and
// unreadable calls go back as the tool's message), their results are rendered by the chat template as `tool`
// messages up to the next generation prompt and prefilled into the live KV cache; a turn without a call goes to the
// environment, if any, whose messages are appended the same way, else ends the episode. An episode also ends at
// max_tool_calling_iterations (a further call is "cut") or when the token budget (max_completion_length, sampled and
// appended tokens together) has no room for what would be appended ("cut"; the messages are dropped, as TRL does).
// The completion mask marks the model's own tokens only (template and tool tokens take no loss), and rewards get the
// whole trajectory as messages. Is not: the trainer (src/grpo/trainer.ts calls agentRollout instead of rollout).
import type { CausalLM } from "../models/model.ts";
import type { Message, Tokenizer } from "../tokenize/index.ts";
import type { Row } from "../data/index.ts";
import { rowPrompt, rowsToColumns } from "../data/index.ts";
import { mixSeed } from "../engine/rng.ts";
import { generateTurns, type MultiTurnCompletion } from "../generate/turns.ts";
import { computeRewards, type NamedReward } from "../rewards/index.ts";
import { parseToolCalls, runToolCall, toolCallFormatFor, toolSchemas, toTemplateToolCalls, resolveTools, type Tool, type ToolCallFormat, type ToolsInput } from "../tools/index.ts";
import type { GRPOConfig } from "../grpo/config.ts";
import { encodePrompt, padBatch, promptMessages, stopIds, type Rollout } from "../grpo/rollout.ts";
import type { Metrics } from "../grpo/metrics.ts";
import { checkStep, loadEnvironment, openEnvironment, type AssistantMessage, type Environment, type EnvironmentFactory } from "./environment.ts";
import { idsAfterTurn } from "./template.ts";

/** What an agent rollout needs besides the model: resolved once per run (createAgent). */
export interface Agent {
  tools: Tool[];
  /** the chat template's `tools` argument (undefined without tools) */
  templateTools?: unknown[];
  /** how the model writes tool calls (null without tools) */
  format: ToolCallFormat | null;
  environment: EnvironmentFactory | null;
  maxToolCallingIterations: number;
  toolTimeoutMs: number;
  chatTemplateKwargs?: Record<string, unknown>;
}

/** The agent of a config (null when it has neither tools nor an environment). Checks that the template renders tool calls. */
export async function createAgent(cfg: GRPOConfig, tok: Tokenizer, modelType?: string, baseDir?: string): Promise<Agent | null> {
  if (cfg.tools === undefined && cfg.environment === undefined) return null;
  const tools = cfg.tools === undefined ? [] : await resolveTools(cfg.tools as string | ToolsInput, baseDir);
  const environment = cfg.environment === undefined ? null
    : typeof cfg.environment === "string" ? await loadEnvironment(cfg.environment, baseDir) : (cfg.environment as EnvironmentFactory);
  const format = tools.length > 0 ? toolCallFormatFor(tok, { override: cfg.toolCallFormat, modelType, kwargs: cfg.chatTemplateKwargs }) : null;
  if (!tok.hasChatTemplate) throw new Error(`${tok.source}: tools and environments need a chat template (set chat_template)`);
  return {
    tools, templateTools: tools.length > 0 ? toolSchemas(tools) : undefined, format, environment,
    maxToolCallingIterations: cfg.maxToolCallingIterations ?? Infinity, toolTimeoutMs: cfg.toolTimeoutMs, chatTemplateKwargs: cfg.chatTemplateKwargs,
  };
}

/** One episode: a prompt, the model's turns and what answered them. */
export interface Episode {
  /** index of its row */
  row: number;
  prompt: Message[];
  promptIds: number[];
  completion: MultiTurnCompletion;
  /** the conversation after the prompt: assistant turns (with tool_calls), tool results, the environment's messages */
  messages: Message[];
  toolCalls: number;
  toolErrors: number;
  /** why the episode was cut short, if it was */
  cut: "iterations" | "budget" | null;
  /** the sum of the environment's step rewards (null: it gave none) */
  envReward: number | null;
  toolRounds: number;
  env: Environment | null;
}

export interface EpisodeOptions extends Pick<GRPOConfig, "maxCompletionLength" | "maxPromptLength" | "systemPrompt" | "chatTemplateKwargs" | "temperature" | "topP" | "topK" | "minP" | "repetitionPenalty" | "generationMemoryBudget"> {
  /** episodes per row */
  n: number;
  seed: number;
}

/** Run n episodes per row in one batched multi-turn generation; prompt-major (row r's episodes are r·n … r·n + n-1). */
export async function runEpisodes(model: CausalLM, tok: Tokenizer, rows: Row[], agent: Agent, o: EpisodeOptions): Promise<Episode[]> {
  const stop = stopIds(model, tok);
  const episodes: Episode[] = [];
  for (const [r, row] of rows.entries()) {
    for (let i = 0; i < o.n; i++) {
      const env = agent.environment ? await openEnvironment(agent.environment, row, `row ${r}`) : null;
      const reset = env ? await env.reset() : null;
      const prompt = reset && reset.length > 0 ? reset : promptMessages(rowPrompt(row, { systemPrompt: o.systemPrompt, where: `row ${r}` }), o.systemPrompt);
      episodes.push({ row: r, prompt, promptIds: encodePrompt(tok, prompt, o, agent.templateTools), completion: null!, messages: [], toolCalls: 0, toolErrors: 0, cut: null, envReward: null, toolRounds: 0, env });
    }
  }
  // without an environment the n episodes of a row share their prompt: prefilled once (n completions per prompt)
  const shared = !agent.environment;
  const prompts = shared ? rows.map((_, r) => episodes[r * o.n].promptIds) : episodes.map((e) => e.promptIds);
  const tpl = { tools: agent.templateTools, kwargs: agent.chatTemplateKwargs, stopIds: stop };
  const append = (ep: Episode, after: Message, next: Message[], room: number): number[] | null => {
    const ids = idsAfterTurn(tok, after, next, tpl);
    if (ids.length >= room) { ep.cut = "budget"; return null; }
    ep.messages.push(...next);
    return ids;
  };
  const out = await generateTurns(model, prompts, {
    n: shared ? o.n : 1, maxTokens: o.maxCompletionLength, stopTokenIds: stop, seed: o.seed, memoryBudget: o.generationMemoryBudget,
    temperature: o.temperature, topP: o.topP, topK: o.topK, minP: o.minP, repetitionPenalty: o.repetitionPenalty,
    onTurnEnd: async ({ seq, ids, finish, room }) => {
      const ep = episodes[seq];
      const own = finish === "stop" ? ids.slice(0, -1) : ids;
      const parsed = agent.format ? parseToolCalls(tok.decode(own), agent.format) : { content: tok.decode(own, { skipSpecialTokens: true }), calls: [], invalid: [] };
      const msg: AssistantMessage = { role: "assistant", content: parsed.content };
      if (parsed.calls.length > 0) msg.tool_calls = toTemplateToolCalls(parsed.calls, ep.toolCalls);
      ep.messages.push(msg);
      if (finish === "length") { ep.cut = "budget"; return null; }
      if (agent.tools.length > 0 && (parsed.calls.length > 0 || parsed.invalid.length > 0)) {
        if (ep.toolRounds >= agent.maxToolCallingIterations) { ep.cut = "iterations"; return null; }
        ep.toolRounds++;
        const results = [
          ...(await Promise.all(parsed.calls.map((c) => runToolCall(c, agent.tools, agent.toolTimeoutMs)))),
          ...parsed.invalid.map((x) => ({ name: x.name ?? "invalid_tool_call", content: JSON.stringify({ error: x.error }), error: true })),
        ];
        ep.toolCalls += results.length;
        ep.toolErrors += results.filter((x) => x.error).length;
        const calls = (msg.tool_calls as { id: string }[] | undefined) ?? [];
        return append(ep, msg, results.map((x, i) => ({ role: "tool", name: x.name, ...(calls[i] ? { tool_call_id: calls[i].id } : {}), content: x.content })), room);
      }
      if (ep.env) {
        const step = checkStep(await ep.env.step(msg), `row ${ep.row}`);
        if (step.reward !== undefined) ep.envReward = (ep.envReward ?? 0) + step.reward;
        return step.done ? null : append(ep, msg, step.messages!, room);
      }
      return null;
    },
  });
  out.forEach((c, i) => { episodes[i].completion = c; });
  return episodes;
}

/** An episode's completion ids as rewards see them: without the stop token that ended it. */
export function bareIds(ep: Episode, stop: Set<number>): number[] {
  const c = ep.completion.tokenIds;
  return c.length > 0 && stop.has(c[c.length - 1]) ? c.slice(0, -1) : c;
}

/** Turn and tool metrics of a set of episodes (TRL's tools/call_frequency and tools/failure_frequency among them). */
export function episodeMetrics(eps: Episode[]): Metrics {
  const n = Math.max(1, eps.length), sum = (f: (e: Episode) => number) => eps.reduce((a, e) => a + f(e), 0);
  const calls = sum((e) => e.toolCalls), errors = sum((e) => e.toolErrors);
  return {
    "episodes/turns_mean": sum((e) => e.completion.turns) / n,
    "episodes/cut_by_iterations": sum((e) => Number(e.cut === "iterations")) / n,
    "episodes/cut_by_budget": sum((e) => Number(e.cut === "budget")) / n,
    "tools/calls": calls,
    "tools/errors": errors,
    "tools/call_frequency": calls / n,
    "tools/failure_frequency": calls > 0 ? errors / calls : 0,
  };
}

/** The GRPO rollout of rows with tools or an environment: num_generations episodes per row, scored, padded, masked. */
export async function agentRollout(model: CausalLM, tok: Tokenizer, rows: Row[], rewardFuncs: NamedReward[], cfg: GRPOConfig, step: number, agent: Agent): Promise<Rollout> {
  const G = cfg.numGenerations;
  const eps = await runEpisodes(model, tok, rows, agent, { ...cfg, n: G, seed: mixSeed(cfg.seed, step) });
  const stop = new Set(stopIds(model, tok));
  const ids = eps.map((e) => e.completion.tokenIds);
  const bare = eps.map((e) => bareIds(e, stop));
  const truncated = eps.map((e) => e.completion.finishReason === "length");
  const funcs = agent.environment && eps.some((e) => e.envReward !== null)
    ? [...rewardFuncs, { name: "environment", fn: () => eps.map((e) => e.envReward) }] : rewardFuncs;
  const weights = cfg.rewardWeights && funcs.length > rewardFuncs.length ? [...cfg.rewardWeights, 1] : cfg.rewardWeights;
  const rewards = await computeRewards(funcs, weights, {
    ...rowsToColumns(eps.map((e) => rows[e.row])), prompts: eps.map((e) => e.prompt), completions: eps.map((e) => e.messages), completionIds: bare,
  }, { timeoutMs: cfg.rewardTimeoutMs, onError: cfg.rewardErrors });
  const counts = eps.map((_, i) => !(cfg.maskTruncatedCompletions && truncated[i]) && !rewards.skipped[i]);
  const batch = padBatch(eps.map((e) => e.promptIds), ids, eps.map((e) => e.completion.own), counts, tok.padTokenId ?? [...stop][0] ?? 0);
  const first = rows.map((_, r) => eps[r * G]);
  return {
    rows, prompts: first.map((e) => e.prompt), promptIds: first.map((e) => e.promptIds), completionIds: ids,
    texts: eps.map((e) => tok.decode(e.completion.tokenIds, { skipSpecialTokens: false })), completions: eps.map((e) => e.messages),
    completionPrompts: agent.environment ? eps.map((e) => e.prompt) : undefined, truncated, rewards, batch, metrics: episodeMetrics(eps),
  };
}
