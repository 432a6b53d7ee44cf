// Evaluation: n sampled completions per prompt of a split (default 1), scored by the run's reward functions.
// Accuracy is the fraction of completions whose correctness reward (the reward named *correctness*, else the first)
// is full, i.e. positive: correctness rewards are all-or-nothing. Prompts go through the generation engine a chunk
// at a time (batchPrompts; default all at once, the engine splitting by its memory budget).
import type { CausalLM } from "../models/model.ts";
import type { Tokenizer } from "../tokenize/index.ts";
import type { Row } from "../data/index.ts";
import { computeRewards, meanStd, type NamedReward } from "../rewards/index.ts";
import { rowsToColumns } from "../data/index.ts";
import { generate } from "../generate/generate.ts";
import { mixSeed } from "../engine/rng.ts";
import { encodeRow, stopIds, withoutStop } from "./rollout.ts";
import type { GRPOConfig } from "./config.ts";

export interface EvalResult {
  /** prompts evaluated */
  n: number;
  /** completions per prompt */
  generations: number;
  accuracy: number;
  /** which reward decided accuracy */
  accuracyReward: string;
  /** the weighted total reward's mean over completions (NaN samples left out) */
  reward: number;
  meanReward: Record<string, number>;
  stdReward: Record<string, number>;
  /** mean completion length in tokens */
  meanLength: number;
  samples: { prompt: unknown; completion: string; rewards: Record<string, number | null> }[];
}

export interface EvalOptions {
  temperature?: number;
  maxTokens?: number;
  seed?: number;
  /** samples to return (default 4) */
  keep?: number;
  /** completions per prompt (default 1) */
  n?: number;
  /** prompts per generation call (default all) */
  batchPrompts?: number;
}

export async function evaluate(model: CausalLM, tok: Tokenizer, rows: Row[], funcs: NamedReward[], cfg: GRPOConfig, o: EvalOptions = {}): Promise<EvalResult> {
  const n = o.n ?? 1, chunk = o.batchPrompts ?? rows.length;
  const eos = stopIds(model, tok);
  const temperature = o.temperature ?? cfg.temperature;
  const seed = o.seed ?? cfg.seed + 7919;
  const prompts: unknown[] = [], texts: string[] = [], ids: number[][] = [];
  let perRow: Row[] = [];
  for (let c0 = 0; c0 < rows.length; c0 += chunk) {
    const part = rows.slice(c0, c0 + chunk);
    const enc = part.map((r) => encodeRow(tok, r, cfg));
    const out = generate(model, enc.map((e) => e.ids), {
      n, maxTokens: o.maxTokens ?? cfg.maxCompletionLength, temperature, topP: cfg.topP, topK: cfg.topK, minP: cfg.minP,
      stopTokenIds: eos, seed: c0 === 0 ? seed : mixSeed(seed, c0), memoryBudget: cfg.generationMemoryBudget, graphs: cfg.graphs, logprobs: false,
    });
    for (const c of out) {
      const bare = withoutStop(c);
      ids.push(bare);
      texts.push(tok.decode(bare, { skipSpecialTokens: true }));
      prompts.push(enc[c.prompt].prompt);
    }
    perRow = perRow.concat(out.map((c) => part[c.prompt]));
  }
  const res = await computeRewards(funcs, cfg.rewardWeights, { ...rowsToColumns(perRow), prompts: prompts as never, completions: texts, completionIds: ids }, { timeoutMs: cfg.rewardTimeoutMs, onError: "skip" });
  const accName = res.names.find((x) => /correct/.test(x)) ?? res.names[0];
  const acc = res.byName[accName];
  const meanReward: Record<string, number> = {}, stdReward: Record<string, number> = {};
  for (const name of res.names) {
    const s = meanStd(res.byName[name]);
    meanReward[name] = s.mean;
    stdReward[name] = s.std;
  }
  return {
    n: rows.length,
    generations: n,
    accuracy: acc.filter((x) => typeof x === "number" && x > 0).length / Math.max(1, texts.length),
    accuracyReward: accName,
    reward: meanStd(res.total).mean,
    meanReward,
    stdReward,
    meanLength: ids.reduce((a, x) => a + x.length, 0) / Math.max(1, ids.length),
    samples: texts.slice(0, o.keep ?? 4).map((t, i) => ({ prompt: prompts[i], completion: t, rewards: Object.fromEntries(res.names.map((x) => [x, res.byName[x][i]])) })),
  };
}
