// Group-relative advantages as TRL computes them: rewards of each prompt's num_generations completions, minus
// the group mean, divided by the group's std (scale_rewards "group"), the whole batch's std ("batch"), or not
// at all ("none"); std is torch.std's unbiased estimate, plus 1e-4. Skipped samples (NaN rewards) are left out
// of the statistics and get advantage 0.
import { meanStd } from "../rewards/index.ts";

export type ScaleRewards = "group" | "batch" | "none";

export interface Advantages {
  advantages: Float32Array;
  /** per group: the std of its rewards (what TRL logs as reward_std, averaged) */
  groupStd: number[];
  /** fraction of groups whose rewards all agree (no learning signal) */
  fracZeroStd: number;
}

/** [mean, unbiased std] ignoring NaN; a single value has std 0 (no spread), none gives NaN. */
function groupStats(xs: number[]): [number, number] {
  const s = meanStd(xs);
  return [s.mean, s.count === 1 ? 0 : s.std];
}

export function groupAdvantages(rewards: ArrayLike<number>, groupSize: number, scale: ScaleRewards): Advantages {
  const n = rewards.length;
  if (n % groupSize !== 0) throw new Error(`advantages: ${n} rewards are not whole groups of ${groupSize}`);
  const adv = new Float32Array(n);
  const groupStd: number[] = [];
  let zero = 0;
  const [, batchStd] = groupStats(Array.from(rewards));
  for (let g = 0; g < n / groupSize; g++) {
    const r = Array.from({ length: groupSize }, (_, i) => rewards[g * groupSize + i]);
    const [m, s] = groupStats(r);
    groupStd.push(Number.isNaN(s) ? 0 : s);
    if (!(s > 0)) zero++;
    const denom = scale === "group" ? s + 1e-4 : scale === "batch" ? batchStd + 1e-4 : 1;
    r.forEach((x, i) => { adv[g * groupSize + i] = Number.isNaN(x) ? 0 : (x - m) / denom; });
  }
  return { advantages: adv, groupStd, fracZeroStd: zero / (n / groupSize) };
}
