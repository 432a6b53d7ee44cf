// One rollout: encode a batch of dataset rows into prompt ids, sample num_generations completions per prompt from
// the model being trained, decode them, and score them with the reward functions. Produces the padded id
// tensors, masks and rewards the loss needs.
import type { CausalLM } from "../models/model.ts";
import type { Tokenizer, Message } from "../tokenize/index.ts";
import { generate } from "../generate/generate.ts";
import { mixSeed } from "../engine/rng.ts";
import { rowPrompt, rowsToColumns, type Row } from "../data/index.ts";
import { computeRewards, type NamedReward, type RewardResult } from "../rewards/index.ts";
import type { GRPOConfig } from "./config.ts";
import type { CompletionBatch } from "./loss.ts";

export interface Rollout {
  rows: Row[];
  prompts: (string | Message[])[];
  promptIds: number[][];
  completionIds: number[][];
  texts: string[];
  /** true when the completion ended without EOS (hit max_completion_length) */
  truncated: boolean[];
  rewards: RewardResult;
  /** all completions padded: prompts left-padded to P, completions right-padded to T */
  batch: CompletionBatch;
}

/**
 * Prompt ids for a row: chat-templated (with the system prompt and chat_template_kwargs) or plain, cut from the left
 * to maxLen. A chat_template of the config's own (a string) is already the tokenizer's (trainer.loadConfigTokenizer).
 */
export function encodeRow(tok: Tokenizer, row: Row, cfg: Pick<GRPOConfig, "systemPrompt" | "chatTemplate" | "chatTemplateKwargs" | "maxPromptLength">): { prompt: string | Message[]; ids: number[] } {
  const prompt = rowPrompt(row, { systemPrompt: cfg.systemPrompt });
  const chat = cfg.chatTemplate === undefined ? tok.hasChatTemplate : cfg.chatTemplate !== false;
  let ids: number[];
  if (Array.isArray(prompt) || chat) {
    const messages: Message[] = Array.isArray(prompt) ? prompt : [...(cfg.systemPrompt ? [{ role: "system", content: cfg.systemPrompt }] : []), { role: "user", content: prompt }];
    ids = tok.encodeChat(messages, { addGenerationPrompt: true, kwargs: cfg.chatTemplateKwargs });
  } else ids = tok.encode(cfg.systemPrompt ? `${cfg.systemPrompt}\n\n${prompt}` : prompt);
  if (ids.length > cfg.maxPromptLength) ids = ids.slice(ids.length - cfg.maxPromptLength);
  return { prompt, ids };
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
  // rewards see the text and ids without the EOS token
  const bare = out.map(withoutStop);
  const texts = bare.map((ids) => tok.decode(ids, { skipSpecialTokens: true }));
  const N = out.length;
  const columns = rowsToColumns(out.map((c) => rows[c.prompt]));
  const rewards = await computeRewards(rewardFuncs, cfg.rewardWeights, {
    ...columns, prompts: out.map((c) => enc[c.prompt].prompt), completions: texts, completionIds: bare,
  }, { timeoutMs: cfg.rewardTimeoutMs, onError: cfg.rewardErrors });

  // pad into one batch
  const P = Math.max(...enc.map((e) => e.ids.length));
  const T = Math.max(1, ...completionIds.map((c) => c.length));
  const promptIds = new Int32Array(N * P), promptMask = new Int32Array(N * P);
  const cIds = new Int32Array(N * T), cMask = new Float32Array(N * T);
  const pad = tok.padTokenId ?? eos[0] ?? 0;
  out.forEach((c, i) => {
    const p = enc[c.prompt].ids;
    promptIds.fill(pad, i * P, (i + 1) * P);
    promptIds.set(p, i * P + P - p.length);
    promptMask.fill(1, i * P + P - p.length, (i + 1) * P);
    cIds.fill(pad, i * T, (i + 1) * T);
    cIds.set(c.tokenIds, i * T);
    const counts = !(cfg.maskTruncatedCompletions && truncated[i]) && !rewards.skipped[i];
    if (counts) cMask.fill(1, i * T, i * T + c.tokenIds.length);
  });
  return {
    rows, prompts: enc.map((e) => e.prompt), promptIds: enc.map((e) => e.ids), completionIds, texts, truncated, rewards,
    batch: { promptIds, promptMask, completionIds: cIds, completionMask: cMask, B: N, P, T },
  };
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
