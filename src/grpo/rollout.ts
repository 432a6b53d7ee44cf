// One rollout: encode a batch of dataset rows into prompt ids, sample num_generations completions per prompt from
// the model being trained, decode them, and score them with the reward functions. Produces the padded id
// tensors, masks and rewards the loss needs.
import type { CausalLM } from "../models/model.ts";
import type { Tokenizer, Message } from "../tokenize/index.ts";
import { generate } from "../generate/generate.ts";
import { mixSeed } from "../engine/rng.ts";
import { rowPrompt, rowsToColumns, type Row } from "../data/index.ts";
import { computeRewards, type Completion, type NamedReward, type RewardResult } from "../rewards/index.ts";
import type { Metrics } from "./metrics.ts";
import type { GRPOConfig } from "./config.ts";
import type { CompletionBatch } from "./loss.ts";

export interface Rollout {
  rows: Row[];
  /** each row's prompt (with an environment: the first episode's) */
  prompts: (string | Message[])[];
  promptIds: number[][];
  /** per prompt: tokens max_prompt_length cut from its left (0: whole); absent where not counted (agents) */
  promptCut?: number[];
  completionIds: number[][];
  texts: string[];
  /** what the rewards saw: the text, or for conversational prompts the messages after the prompt (whole trajectories with tools) */
  completions: Completion[];
  /** each completion's own prompt where they differ within a group (environments' resets) */
  completionPrompts?: Message[][];
  /** true when the completion ended without EOS (hit max_completion_length) */
  truncated: boolean[];
  rewards: RewardResult;
  /** all completions padded: prompts left-padded to P, completions right-padded to T */
  batch: CompletionBatch;
  /** more metrics of this rollout (agents: turns, tool calls, tool errors, episodes cut) */
  metrics?: Metrics;
}

/** The messages of a row's prompt: its message list, or its text as one user turn (after the system prompt). */
export function promptMessages(prompt: string | Message[], systemPrompt?: string): Message[] {
  return Array.isArray(prompt) ? prompt : [...(systemPrompt ? [{ role: "system", content: systemPrompt }] : []), { role: "user", content: prompt }];
}

/**
 * Prompt ids for a row: chat-templated (with the system prompt, chat_template_kwargs and tools) or plain, cut from the
 * left to maxLen (`cut` tokens). A chat_template of the config's own (a string) is already the tokenizer's
 * (trainer.loadConfigTokenizer).
 */
export function encodeRow(tok: Tokenizer, row: Row, cfg: Pick<GRPOConfig, "systemPrompt" | "chatTemplate" | "maxPromptLength" | "chatTemplateKwargs">, tools?: unknown[]): { prompt: string | Message[]; ids: number[]; cut: number } {
  const prompt = rowPrompt(row, { systemPrompt: cfg.systemPrompt });
  const chat = cfg.chatTemplate === undefined ? tok.hasChatTemplate : cfg.chatTemplate !== false;
  const ids = Array.isArray(prompt) || chat || tools
    ? chatIds(tok, promptMessages(prompt, cfg.systemPrompt), cfg, tools)
    : tok.encode(cfg.systemPrompt ? `${cfg.systemPrompt}\n\n${prompt}` : prompt);
  return { prompt, ...cutLeft(ids, cfg.maxPromptLength) };
}

/** Ids cut from the left to `max`; `cut`: how many tokens went. */
function cutLeft(ids: number[], max: number): { ids: number[]; cut: number } {
  const cut = Math.max(0, ids.length - max);
  return { ids: cut ? ids.slice(cut) : ids, cut };
}

/** A conversation's prompt ids, whole (generation prompt added; the tools and chat_template_kwargs to the template). */
function chatIds(tok: Tokenizer, messages: Message[], cfg: Pick<GRPOConfig, "chatTemplateKwargs">, tools?: unknown[]): number[] {
  return tok.encodeChat(messages, { addGenerationPrompt: true, tools, kwargs: cfg.chatTemplateKwargs });
}

/** A conversation's prompt ids (generation prompt added; the tools and chat_template_kwargs to the template), cut from the left to max_prompt_length. */
export function encodePrompt(tok: Tokenizer, messages: Message[], cfg: Pick<GRPOConfig, "maxPromptLength" | "chatTemplateKwargs">, tools?: unknown[]): number[] {
  return cutLeft(chatIds(tok, messages, cfg, tools), cfg.maxPromptLength).ids;
}

/**
 * Pad into one batch: each completion's prompt ids left-padded to P, its ids right-padded to T. `own[i]` marks the
 * tokens that take loss (null: all of them; agents: only the model's own); `counts[i]` false drops completion i
 * from the loss (masked truncation, failed rewards).
 */
export function padBatch(prompts: number[][], completions: number[][], own: (number[] | null)[], counts: boolean[], pad: number): CompletionBatch {
  const N = completions.length;
  const P = Math.max(...prompts.map((p) => p.length));
  const T = Math.max(1, ...completions.map((c) => c.length));
  const promptIds = new Int32Array(N * P), promptMask = new Int32Array(N * P);
  const cIds = new Int32Array(N * T), cMask = new Float32Array(N * T);
  for (let i = 0; i < N; i++) {
    const p = prompts[i], c = completions[i];
    promptIds.fill(pad, i * P, (i + 1) * P);
    promptIds.set(p, i * P + P - p.length);
    promptMask.fill(1, i * P + P - p.length, (i + 1) * P);
    cIds.fill(pad, i * T, (i + 1) * T);
    cIds.set(c, i * T);
    if (!counts[i]) continue;
    const o = own[i];
    if (o) o.forEach((m, t) => { cMask[i * T + t] = m; });
    else cMask.fill(1, i * T, i * T + c.length);
  }
  return { promptIds, promptMask, completionIds: cIds, completionMask: cMask, B: N, P, T };
}

/** Token ids that end a completion: the tokenizer's EOS ids and the model config's. */
export function stopIds(model: CausalLM, tok: Tokenizer): number[] {
  return [...new Set([...tok.eosTokenIds, ...model.config.eosTokenIds])];
}

/** A completion's ids as rewards see them: without the EOS token that stopped it. */
export function withoutStop(c: { tokenIds: number[]; finishReason: "stop" | "length" }): number[] {
  return c.finishReason === "stop" ? c.tokenIds.slice(0, -1) : c.tokenIds;
}

export async function rollout(model: CausalLM, tok: Tokenizer, rows: Row[], rewardFuncs: NamedReward[], cfg: GRPOConfig, step: number): Promise<Rollout> {
  const G = cfg.numGenerations;
  const enc = rows.map((r) => encodeRow(tok, r, cfg));
  const eos = stopIds(model, tok);
  const out = generate(model, enc.map((e) => e.ids), {
    n: G, maxTokens: cfg.maxCompletionLength, temperature: cfg.temperature, topP: cfg.topP, topK: cfg.topK, minP: cfg.minP,
    repetitionPenalty: cfg.repetitionPenalty, stopTokenIds: eos, seed: mixSeed(cfg.seed, step), memoryBudget: cfg.generationMemoryBudget, graphs: cfg.graphs,
    logprobs: false,
  });
  const completionIds = out.map((c) => c.tokenIds);
  const truncated = out.map((c) => c.finishReason === "length");
  // rewards see the text and ids without the EOS token; conversational prompts get message lists (TRL's contract)
  const bare = out.map(withoutStop);
  const texts = bare.map((ids) => tok.decode(ids, { skipSpecialTokens: true }));
  const completions: Completion[] = out.map((c, i) => (Array.isArray(enc[c.prompt].prompt) ? [{ role: "assistant", content: texts[i] }] : texts[i]));
  const rewards = await computeRewards(rewardFuncs, cfg.rewardWeights, {
    ...rowsToColumns(out.map((c) => rows[c.prompt])), prompts: out.map((c) => enc[c.prompt].prompt), completions, completionIds: bare,
  }, { timeoutMs: cfg.rewardTimeoutMs, onError: cfg.rewardErrors });
  const counts = out.map((_, i) => !(cfg.maskTruncatedCompletions && truncated[i]) && !rewards.skipped[i]);
  const batch = padBatch(out.map((c) => enc[c.prompt].ids), completionIds, out.map(() => null), counts, tok.padTokenId ?? eos[0] ?? 0);
  return { rows, prompts: enc.map((e) => e.prompt), promptIds: enc.map((e) => e.ids), promptCut: enc.map((e) => e.cut), completionIds, texts, completions, truncated, rewards, batch };
}

/** Rows [b0, b1) of a padded batch (a micro-batch). */
export function sliceBatch(b: CompletionBatch, b0: number, b1: number): CompletionBatch {
  const { P, T } = b;
  return {
    promptIds: b.promptIds.subarray(b0 * P, b1 * P), promptMask: b.promptMask?.subarray(b0 * P, b1 * P),
    completionIds: b.completionIds.subarray(b0 * T, b1 * T), completionMask: b.completionMask.subarray(b0 * T, b1 * T),
    B: b1 - b0, P, T,
  };
}
