// Group-relative advantages as TRL computes them. sum_then_normalize (default): the weighted sum of the reward
// functions, minus the group mean, divided by the group's std (scale_rewards "group"), the whole batch's std
// ("batch"), the group mean ("mean": MaxRL, |mean| + 1e-4) or not at all ("none"). normalize_then_sum (GDPO): each
// function normalised within its group, the weighted sum, then normalised over the batch. std is torch.std's unbiased
// estimate, plus 1e-4. Skipped samples (NaN totals) are left out of the statistics and get advantage 0.
import { meanStd } from "../rewards/index.ts";

export type ScaleRewards = "group" | "batch" | "none" | "mean";
export type Aggregation = "sum_then_normalize" | "normalize_then_sum";

export interface Advantages {
  advantages: Float32Array;
  /** per group: the std of its total rewards (what TRL logs as reward_std, averaged) */
  groupStd: number[];
  /** per group: whether its rewards differ at all (else every advantage in it is 0: no learning signal) */
  spread: boolean[];
  /** fraction of groups without spread */
  fracZeroStd: number;
}

/** [mean, unbiased std] ignoring NaN; a single value has std 0 (no spread), none gives NaN. */
function groupStats(xs: number[]): [number, number] {
  const s = meanStd(xs);
  return [s.mean, s.count === 1 ? 0 : s.std];
}

const groupOf = (xs: ArrayLike<number>, g: number, G: number) => Array.from({ length: G }, (_, i) => xs[g * G + i]);

export function groupAdvantages(rewards: ArrayLike<number>, groupSize: number, scale: ScaleRewards): Advantages {
  const n = rewards.length;
  if (n % groupSize !== 0) throw new Error(`advantages: ${n} rewards are not whole groups of ${groupSize}`);
  const adv = new Float32Array(n);
  const groupStd: number[] = [], spread: boolean[] = [];
  const [, batchStd] = groupStats(Array.from(rewards));
  for (let g = 0; g < n / groupSize; g++) {
    const r = groupOf(rewards, g, groupSize);
    const [m, s] = groupStats(r);
    groupStd.push(Number.isNaN(s) ? 0 : s);
    spread.push(s > 0);
    const denom = scale === "group" ? s + 1e-4 : scale === "batch" ? batchStd + 1e-4 : scale === "mean" ? Math.abs(m) + 1e-4 : 1;
    r.forEach((x, i) => { adv[g * groupSize + i] = Number.isNaN(x) ? 0 : (x - m) / denom; });
  }
  return { advantages: adv, groupStd, spread, fracZeroStd: spread.filter((x) => !x).length / spread.length };
}

/**
 * GDPO (normalize_then_sum): perFunc[f][i] (null = not applicable), total[i] (NaN = skipped: left out), weights per
 * function. Each function's rewards become (r − group mean)/(group std + 1e-4), their weighted sum is normalised over
 * the batch: (x − mean)/(std + 1e-4).
 */
export function gdpoAdvantages(perFunc: readonly (readonly (number | null)[])[], total: ArrayLike<number>, weights: readonly number[], groupSize: number): Advantages {
  const n = total.length;
  if (n % groupSize !== 0) throw new Error(`advantages: ${n} rewards are not whole groups of ${groupSize}`);
  const summed = new Float64Array(n);
  const spread: boolean[] = [];
  for (let g = 0; g < n / groupSize; g++) {
    let any = false;
    perFunc.forEach((vals, f) => {
      const r = Array.from({ length: groupSize }, (_, i) => (Number.isNaN(total[g * groupSize + i]) ? NaN : vals[g * groupSize + i] ?? NaN));
      const [m, s] = groupStats(r);
      if (s > 0) any = true;
      r.forEach((x, i) => { if (!Number.isNaN(x) && !Number.isNaN(s)) summed[g * groupSize + i] += weights[f] * ((x - m) / (s + 1e-4)); });
    });
    spread.push(any);
  }
  for (let i = 0; i < n; i++) if (Number.isNaN(total[i])) summed[i] = NaN;
  const [m, s] = groupStats(Array.from(summed));
  const adv = Float32Array.from(summed, (x) => (Number.isNaN(x) ? 0 : (x - m) / ((Number.isNaN(s) ? 0 : s) + 1e-4)));
  const groupStd = Array.from({ length: n / groupSize }, (_, g) => { const s = groupStats(groupOf(total, g, groupSize))[1]; return Number.isNaN(s) ? 0 : s; });
  return { advantages: adv, groupStd, spread, fracZeroStd: spread.filter((x) => !x).length / spread.length };
}

/** The advantages a config asks for, from one rollout's rewards. */
export function computeAdvantages(r: { perFunc: readonly (readonly (number | null)[])[]; total: ArrayLike<number> }, c: { numGenerations: number; scaleRewards: ScaleRewards; multiObjectiveAggregation: Aggregation; rewardWeights?: number[] }): Advantages {
  if (c.multiObjectiveAggregation === "normalize_then_sum") return gdpoAdvantages(r.perFunc, r.total, c.rewardWeights ?? r.perFunc.map(() => 1), c.numGenerations);
  return groupAdvantages(r.total, c.numGenerations, c.scaleRewards);
}
