// DAPO's soft overlong punishment (its Eq. 13; TRL's get_soft_overlong_punishment) as a reward built-in.
// Is: 0 up to max_length − buffer_length generated tokens, then a linear ramp to −penalty at max_length, −penalty
// beyond. Tokens are counted from completionIds (EOS excluded), so a truncated completion (max_length tokens) gets
// −penalty. Is not: the hard "truncated = 0 reward" rule (that is mask_truncated_completions in the trainer).
import type { NamedReward, RewardArgs, RewardValues } from "../types.ts";

export interface OverlongPenaltyOptions {
  /** L_max: the completion budget (the trainer fills in max_completion_length). */
  maxLength: number;
  /** L_cache: the tokens before L_max over which the penalty ramps up. */
  bufferLength: number;
  /** The penalty at L_max (a positive number; the reward is its negative). Default 1 (DAPO, TRL). */
  penalty?: number;
  name?: string;
}

export function overlongPenalty(o: OverlongPenaltyOptions): NamedReward {
  const { maxLength, bufferLength, penalty = 1, name = "overlong_penalty" } = o;
  if (!(Number.isInteger(maxLength) && maxLength > 0)) throw new Error(`reward "overlong_penalty": max_length must be a positive integer, got ${maxLength}`);
  if (!(Number.isInteger(bufferLength) && bufferLength > 0 && bufferLength <= maxLength))
    throw new Error(`reward "overlong_penalty": buffer_length must be an integer in 1..max_length (${maxLength}), got ${bufferLength}`);
  if (!(penalty >= 0)) throw new Error(`reward "overlong_penalty": penalty must be ≥ 0 (the reward is its negative), got ${penalty}`);
  const start = maxLength - bufferLength;
  return {
    name,
    fn: (args: RewardArgs): RewardValues =>
      args.completionIds.map((ids) => {
        const len = ids.length;
        if (len <= start) return 0;
        if (len <= maxLength) return (-penalty * (len - start)) / bufferLength;
        return -penalty;
      }),
  };
}
