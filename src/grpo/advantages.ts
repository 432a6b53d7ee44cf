// Group-relative advantages as TRL computes them: rewards of each prompt's num_generations completions, minus
// the group mean, divided by the group's std (scale_rewards "group"), the whole batch's std ("batch"), or not
// at all ("none"); std is torch.std's unbiased estimate, plus 1e-4. Skipped samples (NaN rewards) are left out
// of the statistics and get advantage 0.
export type ScaleRewards = "group" | "batch" | "none";

export interface Advantages {
  advantages: Float32Array;
  /** per group: the std of its rewards (what TRL logs as reward_std, averaged) */
  groupStd: number[];
  /** fraction of groups whose rewards all agree (no learning signal) */
  fracZeroStd: number;
}

function meanStd(xs: number[]): [number, number] {
  const v = xs.filter((x) => !Number.isNaN(x));
  if (v.length === 0) return [NaN, NaN];
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  if (v.length < 2) return [m, 0];
  const s = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1));
  return [m, s];
}

export function groupAdvantages(rewards: ArrayLike<number>, groupSize: number, scale: ScaleRewards): Advantages {
  const n = rewards.length;
  if (n % groupSize !== 0) throw new Error(`advantages: ${n} rewards are not whole groups of ${groupSize}`);
  const adv = new Float32Array(n);
  const groupStd: number[] = [];
  let zero = 0;
  const [, batchStd] = meanStd(Array.from(rewards));
  for (let g = 0; g < n / groupSize; g++) {
    const r = Array.from({ length: groupSize }, (_, i) => rewards[g * groupSize + i]);
    const [m, s] = meanStd(r);
    groupStd.push(Number.isNaN(s) ? 0 : s);
    if (!(s > 0)) zero++;
    const denom = scale === "group" ? s + 1e-4 : scale === "batch" ? batchStd + 1e-4 : 1;
    r.forEach((x, i) => { adv[g * groupSize + i] = Number.isNaN(x) ? 0 : (x - m) / denom; });
  }
  return { advantages: adv, groupStd, fracZeroStd: zero / (n / groupSize) };
}
