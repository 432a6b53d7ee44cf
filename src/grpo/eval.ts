// Evaluation: one sampled completion per prompt of a split, scored by the run's reward functions. Accuracy is the
// fraction of prompts whose correctness reward (the reward named *correctness*, else the first) is full, i.e.
// positive: correctness rewards are all-or-nothing. A sample on which that reward failed (threw, timed out) is left out
// of the accuracy — neither a success nor a 0 — and counted in `errors`.
import type { CausalLM } from "../models/model.ts";
import type { Message, Tokenizer } from "../tokenize/index.ts";
import type { Row } from "../data/index.ts";
import { computeRewards, meanStd, type Completion, type NamedReward } from "../rewards/index.ts";
import { rowsToColumns } from "../data/index.ts";
import { generate } from "../generate/generate.ts";
import { encodeRow, stopIds, withoutStop } from "./rollout.ts";
import type { GRPOConfig } from "./config.ts";
import type { Metrics } from "./metrics.ts";
import { bareIds, episodeMetrics, runEpisodes, type Agent } from "../agents/rollout.ts";

export interface EvalResult {
  n: number;
  /** over the samples the accuracy reward scored (those in `errors` are left out) */
  accuracy: number;
  /** samples on which the accuracy reward failed */
  errors: number;
  /** which reward decided accuracy */
  accuracyReward: string;
  meanReward: Record<string, number>;
  samples: { prompt: unknown; completion: unknown; rewards: Record<string, number | null> }[];
  /** with an agent: turns, tool calls and errors, episodes cut (episodeMetrics) */
  metrics?: Metrics;
}

export interface EvalOptions {
  temperature?: number;
  maxTokens?: number;
  seed?: number;
  /** samples to return (default 4) */
  keep?: number;
  /** tools and/or an environment: each prompt is one multi-turn episode */
  agent?: Agent | null;
}

export async function evaluate(model: CausalLM, tok: Tokenizer, rows: Row[], funcs: NamedReward[], cfg: GRPOConfig, o: EvalOptions = {}): Promise<EvalResult> {
  const temperature = o.temperature ?? cfg.temperature, seed = o.seed ?? cfg.seed + 7919, maxTokens = o.maxTokens ?? cfg.maxCompletionLength;
  const eos = stopIds(model, tok);
  let prompts: (string | Message[])[], completions: Completion[], bare: number[][], metrics: Metrics | undefined;
  if (o.agent) {
    const eps = await runEpisodes(model, tok, rows, o.agent, { ...cfg, temperature, maxCompletionLength: maxTokens, n: 1, seed });
    prompts = eps.map((e) => e.prompt);
    completions = eps.map((e) => e.messages);
    bare = eps.map((e) => bareIds(e, new Set(eos)));
    metrics = episodeMetrics(eps);
  } else {
    const enc = rows.map((r) => encodeRow(tok, r, cfg));
    const out = generate(model, enc.map((e) => e.ids), {
      n: 1, maxTokens, temperature, topP: cfg.topP, topK: cfg.topK, minP: cfg.minP,
      stopTokenIds: eos, seed, memoryBudget: cfg.generationMemoryBudget, graphs: cfg.graphs, logprobs: false,
    });
    bare = out.map(withoutStop);
    prompts = enc.map((e) => e.prompt);
    completions = bare.map((ids, i) => { const t = tok.decode(ids, { skipSpecialTokens: true }); return Array.isArray(prompts[i]) ? [{ role: "assistant", content: t }] : t; });
  }
  const res = await computeRewards(funcs, cfg.rewardWeights, { ...rowsToColumns(rows), prompts, completions, completionIds: bare }, { timeoutMs: cfg.rewardTimeoutMs, onError: "skip" });
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
    samples: completions.slice(0, o.keep ?? 4).map((c, i) => ({ prompt: prompts[i], completion: c, rewards: Object.fromEntries(res.names.map((n) => [n, res.byName[n][i]])) })),
    metrics,
  };
}
