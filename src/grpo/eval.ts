// Evaluation: one sampled completion per prompt of a split, scored by the run's reward functions. Accuracy is the
// fraction of prompts whose correctness reward (the reward named *correctness*, else the first) is full, i.e.
// positive: correctness rewards are all-or-nothing. A sample on which that reward failed (threw, timed out) is left out
// of the accuracy — neither a success nor a 0 — and counted in `errors`.
import type { CausalLM } from "../models/model.ts";
import type { Tokenizer } from "../tokenize/index.ts";
import type { Row } from "../data/index.ts";
import { computeRewards, meanStd, type NamedReward } from "../rewards/index.ts";
import { rowsToColumns } from "../data/index.ts";
import { generate } from "../generate/generate.ts";
import { encodeRow, stopIds, withoutStop } from "./rollout.ts";
import type { GRPOConfig } from "./config.ts";

export interface EvalResult {
  n: number;
  /** over the samples the accuracy reward scored (those in `errors` are left out) */
  accuracy: number;
  /** samples on which the accuracy reward failed */
  errors: number;
  /** which reward decided accuracy */
  accuracyReward: string;
  meanReward: Record<string, number>;
  samples: { prompt: unknown; completion: string; rewards: Record<string, number | null> }[];
}

export interface EvalOptions {
  temperature?: number;
  maxTokens?: number;
  seed?: number;
  /** samples to return (default 4) */
  keep?: number;
}

export async function evaluate(model: CausalLM, tok: Tokenizer, rows: Row[], funcs: NamedReward[], cfg: GRPOConfig, o: EvalOptions = {}): Promise<EvalResult> {
  const enc = rows.map((r) => encodeRow(tok, r, cfg));
  const eos = stopIds(model, tok);
  const temperature = o.temperature ?? cfg.temperature;
  const out = generate(model, enc.map((e) => e.ids), {
    n: 1, maxTokens: o.maxTokens ?? cfg.maxCompletionLength, temperature, topP: cfg.topP, topK: cfg.topK, minP: cfg.minP,
    stopTokenIds: eos, seed: o.seed ?? cfg.seed + 7919, memoryBudget: cfg.generationMemoryBudget, graphs: cfg.graphs, logprobs: false,
  });
  const bare = out.map(withoutStop);
  const texts = bare.map((ids) => tok.decode(ids, { skipSpecialTokens: true }));
  const res = await computeRewards(funcs, cfg.rewardWeights, { ...rowsToColumns(rows), prompts: enc.map((e) => e.prompt), completions: texts, completionIds: bare }, { timeoutMs: cfg.rewardTimeoutMs, onError: "skip" });
  const accName = res.names.find((n) => /correct/.test(n)) ?? res.names[0];
  const acc = res.byName[accName];
  const mine = res.errors.filter((e) => e.reward === accName);
  const failed = new Set(mine.some((e) => e.index === null) ? acc.keys() : mine.map((e) => e.index!));
  const meanReward: Record<string, number> = {};
  for (const n of res.names) meanReward[n] = meanStd(res.byName[n]).mean;
  return {
    n: rows.length,
    accuracy: acc.filter((x, i) => !failed.has(i) && typeof x === "number" && x > 0).length / Math.max(1, rows.length - failed.size),
    errors: failed.size,
    accuracyReward: accName,
    meanReward,
    samples: texts.slice(0, o.keep ?? 4).map((t, i) => ({ prompt: enc[i].prompt, completion: t, rewards: Object.fromEntries(res.names.map((n) => [n, res.byName[n][i]])) })),
  };
}
