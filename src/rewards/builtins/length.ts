// Length penalty factory: −penalty for each character or token beyond a target length.
// Is: −penaltyPer · max(0, length − target), 0 at or under the target. Tokens are counted from completionIds (the
// ids the model generated), so no tokenizer is needed. Is not: DAPO's soft overlong punishment (builtins/overlong.ts).
import { completionText, type NamedReward, type RewardArgs, type RewardValues } from "../types.ts";

export interface LengthPenaltyOptions {
  /** Length allowed without penalty. */
  target: number;
  /** Penalty per unit over the target (a positive number; the reward is its negative). */
  penaltyPer: number;
  /** Count characters of the completion text or generated tokens. Default "tokens". */
  unit?: "chars" | "tokens";
  name?: string;
}

export function lengthPenalty(opts: LengthPenaltyOptions): NamedReward {
  const { target, penaltyPer, unit = "tokens", name = `length_penalty` } = opts;
  if (!(target >= 0) || !(penaltyPer >= 0)) throw new Error(`lengthPenalty: target and penaltyPer must be ≥ 0 (got ${target}, ${penaltyPer})`);
  return {
    name,
    fn: (args: RewardArgs): RewardValues =>
      args.completions.map((c, i) => {
        const len = unit === "chars" ? [...completionText(c)].length : (args.completionIds[i]?.length ?? 0);
        const over = Math.max(0, len - target);
        return over === 0 ? 0 : -penaltyPer * over;
      }),
  };
}
