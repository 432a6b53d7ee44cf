// Evaluation: n sampled completions per prompt of a split (default 1), scored by the run's reward functions.
// Accuracy is the fraction of completions whose correctness reward (the reward named *correctness*, else the first)
// is full, i.e. positive: correctness rewards are all-or-nothing. A sample on which that reward failed (threw, timed
// out) is left out of the accuracy — neither a success nor a 0 — and counted in `errors`. Plain prompts go through
// the generation engine a chunk at a time (batchPrompts; default all at once, the engine splitting by its memory
// budget); with an agent each prompt is n multi-turn episodes.
import type { CausalLM } from "../models/model.ts";
import type { Message, Tokenizer } from "../tokenize/index.ts";
import type { Row } from "../data/index.ts";
import { computeRewards, meanStd, type Completion, type NamedReward } from "../rewards/index.ts";
import { rowsToColumns } from "../data/index.ts";
import { generate } from "../generate/generate.ts";
import { mixSeed } from "../engine/rng.ts";
import { encodeRow, stopIds, withoutStop } from "./rollout.ts";
import type { GRPOConfig } from "./config.ts";
import type { Metrics } from "./metrics.ts";
import { bareIds, episodeMetrics, runEpisodes, type Agent } from "../agents/rollout.ts";

export interface EvalResult {
  /** prompts evaluated */
  n: number;
  /** completions per prompt */
  generations: number;
  /** over the completions the accuracy reward scored (those in `errors` are left out) */
  accuracy: number;
  /** samples on which the accuracy reward failed */
  errors: number;
  /** which reward decided accuracy */
  accuracyReward: string;
  /** the weighted total reward's mean over completions (NaN samples left out) */
  reward: number;
  meanReward: Record<string, number>;
  stdReward: Record<string, number>;
  /** mean completion length in tokens */
  meanLength: number;
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
  /** completions per prompt (default 1) */
  n?: number;
  /** prompts per generation call (default all) */
  batchPrompts?: number;
  /** tools and/or an environment: each prompt is one multi-turn episode */
  agent?: Agent | null;
}

export async function evaluate(model: CausalLM, tok: Tokenizer, rows: Row[], funcs: NamedReward[], cfg: GRPOConfig, o: EvalOptions = {}): Promise<EvalResult> {
  const n = o.n ?? 1, chunk = o.batchPrompts ?? rows.length;
  const temperature = o.temperature ?? cfg.temperature, seed = o.seed ?? cfg.seed + 7919, maxTokens = o.maxTokens ?? cfg.maxCompletionLength;
  const eos = stopIds(model, tok);
  const prompts: (string | Message[])[] = [], completions: Completion[] = [], bare: number[][] = [], perRow: Row[] = [];
  let metrics: Metrics | undefined;
  if (o.agent) {
    const eps = await runEpisodes(model, tok, rows, o.agent, { ...cfg, temperature, maxCompletionLength: maxTokens, n, seed });
    for (const e of eps) {
      prompts.push(e.prompt);
      completions.push(e.messages);
      bare.push(bareIds(e, new Set(eos)));
      perRow.push(rows[e.row]);
    }
    metrics = episodeMetrics(eps);
  } else {
    for (let c0 = 0; c0 < rows.length; c0 += chunk) {
      const part = rows.slice(c0, c0 + chunk);
      const enc = part.map((r) => encodeRow(tok, r, cfg));
      const out = generate(model, enc.map((e) => e.ids), {
        n, maxTokens, temperature, topP: cfg.topP, topK: cfg.topK, minP: cfg.minP,
        stopTokenIds: eos, seed: c0 === 0 ? seed : mixSeed(seed, c0), memoryBudget: cfg.generationMemoryBudget, graphs: cfg.graphs, logprobs: false,
      });
      for (const c of out) {
        const ids = withoutStop(c), prompt = enc[c.prompt].prompt, t = tok.decode(ids, { skipSpecialTokens: true });
        bare.push(ids);
        prompts.push(prompt);
        completions.push(Array.isArray(prompt) ? [{ role: "assistant", content: t }] : t);
        perRow.push(part[c.prompt]);
      }
    }
  }
  const res = await computeRewards(funcs, cfg.rewardWeights, { ...rowsToColumns(perRow), prompts, completions, completionIds: bare }, { timeoutMs: cfg.rewardTimeoutMs, onError: "skip" });
  const accName = res.names.find((x) => /correct/.test(x)) ?? res.names[0];
  const acc = res.byName[accName];
  const mine = res.errors.filter((e) => e.reward === accName);
  const failed = new Set(mine.some((e) => e.index === null) ? acc.keys() : mine.map((e) => e.index!));
  const meanReward: Record<string, number> = {}, stdReward: Record<string, number> = {};
  for (const name of res.names) {
    const s = meanStd(res.byName[name]);
    meanReward[name] = s.mean;
    stdReward[name] = s.std;
  }
  return {
    n: rows.length,
    generations: n,
    accuracy: acc.filter((x, i) => !failed.has(i) && typeof x === "number" && x > 0).length / Math.max(1, completions.length - failed.size),
    errors: failed.size,
    accuracyReward: accName,
    reward: meanStd(res.total).mean,
    meanReward,
    stdReward,
    meanLength: bare.reduce((a, x) => a + x.length, 0) / Math.max(1, bare.length),
    samples: completions.slice(0, o.keep ?? 4).map((c, i) => ({ prompt: prompts[i], completion: c, rewards: Object.fromEntries(res.names.map((x) => [x, res.byName[x][i]])) })),
    metrics,
  };
}
