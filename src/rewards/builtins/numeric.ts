// Numeric proximity reward: partial credit for answers close to the reference number.
// Is: maxReward · max(0, 1 − |pred − answer| / max(|answer|, minScale)) — full at equal, linear in the relative
// error, 0 from 100 % off. Is not: a parser of expressions; the prediction is the recipe's extracted <answer>.
import { completionText, type NamedReward, type RewardArgs, type RewardValues } from "../types.ts";
import { extractXmlAnswer, parseNumber } from "./extract.ts";

export interface NumericProximityOptions {
  /** Reward at an exact match. Default 1. */
  maxReward?: number;
  /** Floor of the relative scale, so answers near 0 are judged on absolute error. Default 1. */
  minScale?: number;
  /** Dataset column with the reference number. Default "answer". */
  column?: string;
  /** How to read the prediction from a completion. Default: the text inside <answer>…</answer>. */
  extract?: (completion: string) => string;
  name?: string;
}

export function numericProximity(opts: NumericProximityOptions = {}): NamedReward {
  const { maxReward = 1, minScale = 1, column = "answer", extract = extractXmlAnswer, name = "numeric_proximity" } = opts;
  const fn = (args: RewardArgs): RewardValues => {
    const col = args[column];
    if (!Array.isArray(col)) throw new Error(`${name} needs a "${column}" column in the dataset`);
    return args.completions.map((c, i) => {
      const want = parseNumber(col[i]);
      if (want === null) return null; // no numeric reference: does not apply
      const got = parseNumber(extract(completionText(c)));
      if (got === null) return 0;
      const rel = Math.abs(got - want) / Math.max(Math.abs(want), minScale);
      return maxReward * Math.max(0, 1 - rel);
    });
  };
  return { name, fn };
}
