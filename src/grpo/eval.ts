// Evaluation: one sampled completion per prompt of a split, scored by the run's reward functions. Accuracy is the
// fraction of prompts whose correctness reward (the reward named *correctness*, else the first) is full, i.e.
// positive: correctness rewards are all-or-nothing.
import type { CausalLM } from "../models/model.ts";
import type { Tokenizer } from "../tokenize/index.ts";
import type { Row } from "../data/index.ts";
import { computeRewards, type NamedReward } from "../rewards/index.ts";
import { generate } from "../generate/generate.ts";
import { encodeRow } from "./rollout.ts";
import type { GRPOConfig } from "./config.ts";

export interface EvalResult {
  n: number;
  accuracy: number;
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
  const eos = [...new Set([...tok.eosTokenIds, ...model.config.eosTokenIds])];
  const temperature = o.temperature ?? cfg.temperature;
  const out = generate(model, enc.map((e) => e.ids), {
    n: 1, maxTokens: o.maxTokens ?? cfg.maxCompletionLength, temperature, topP: cfg.topP, topK: cfg.topK, minP: cfg.minP,
    stopTokenIds: eos, seed: o.seed ?? cfg.seed + 7919, memoryBudget: cfg.generationMemoryBudget, logprobs: false,
  });
  const texts = out.map((c) => tok.decode(c.finishReason === "stop" ? c.tokenIds.slice(0, -1) : c.tokenIds, { skipSpecialTokens: true }));
  const columns: Record<string, unknown[]> = {};
  for (const key of new Set(rows.flatMap((r) => Object.keys(r)))) if (key !== "prompt") columns[key] = rows.map((r) => r[key]);
  const res = await computeRewards(funcs, cfg.rewardWeights, { ...columns, prompts: enc.map((e) => e.prompt), completions: texts, completionIds: out.map((c) => c.tokenIds) }, { timeoutMs: cfg.rewardTimeoutMs, onError: "skip" });
  const accName = res.names.find((n) => /correct/.test(n)) ?? res.names[0];
  const acc = res.byName[accName];
  const meanReward: Record<string, number> = {};
  for (const n of res.names) {
    const v = res.byName[n].filter((x): x is number => typeof x === "number" && !Number.isNaN(x));
    meanReward[n] = v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
  }
  return {
    n: rows.length,
    accuracy: acc.filter((x) => typeof x === "number" && x > 0).length / rows.length,
    accuracyReward: accName,
    meanReward,
    samples: texts.slice(0, o.keep ?? 4).map((t, i) => ({ prompt: enc[i].prompt, completion: t, rewards: Object.fromEntries(res.names.map((n) => [n, res.byName[n][i]])) })),
  };
}
