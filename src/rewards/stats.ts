// Reward metrics with TRL's names: rewards/<name>/mean and rewards/<name>/std per function (nulls ignored),
// reward and reward_std for the weighted total (NaN entries ignored); what rewards attached with withDetails:
// rewards/<name>/<part>/mean per sub-score and rewards/<name>/<count> per count.
// Is: plain statistics over one batch. Is not: logging. std is TRL's nanstd (sample std, Bessel-corrected): NaN with
// fewer than two values, as is the mean with none.
import type { RewardDetails } from "./types.ts";

export function meanStd(values: readonly (number | null)[]): { mean: number; std: number; count: number } {
  const xs = values.filter((v): v is number => v !== null && !Number.isNaN(v));
  const count = xs.length;
  if (count === 0) return { mean: NaN, std: NaN, count };
  const mean = xs.reduce((a, b) => a + b, 0) / count;
  if (count < 2) return { mean, std: NaN, count };
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (count - 1);
  return { mean, std: Math.sqrt(variance), count };
}

/**
 * Metrics for a RewardResult-like object; with `errors`, also rewards/<name>/errors: the samples that function failed
 * on (left out of its mean, as skipped samples are left out of `reward` and of the advantages).
 */
export function rewardMetrics(result: { names: string[]; perFunc: (number | null)[][]; total?: number[]; details?: Record<string, RewardDetails>; errors?: { reward: string; index: number | null }[] }): Record<string, number> {
  const out: Record<string, number> = {};
  result.names.forEach((name, f) => {
    const s = meanStd(result.perFunc[f]!);
    out[`rewards/${name}/mean`] = s.mean;
    out[`rewards/${name}/std`] = s.std;
    const d = result.details?.[name];
    for (const [part, values] of Object.entries(d?.parts ?? {})) out[`rewards/${name}/${part}/mean`] = meanStd(values).mean;
    for (const [key, count] of Object.entries(d?.counts ?? {})) out[`rewards/${name}/${key}`] = count;
    if (result.errors) {
      const mine = result.errors.filter((e) => e.reward === name);
      out[`rewards/${name}/errors`] = mine.some((e) => e.index === null) ? result.perFunc[f]!.length : new Set(mine.map((e) => e.index)).size;
    }
  });
  if (result.total) {
    const s = meanStd(result.total);
    out.reward = s.mean;
    out.reward_std = s.std;
  }
  return out;
}
