// Regex reward factory: a fixed reward when the completion matches a pattern.
// Is: `pattern.test(completion)` → reward, else otherwise. A string pattern is compiled with the "s" flag (dot
// matches newlines); pass a RegExp for other flags. Is not: a scorer of capture groups.
import { completionText, type NamedReward, type RewardArgs, type RewardValues } from "../types.ts";

export interface RegexRewardOptions {
  /** Reward on a match. Default 1. */
  reward?: number;
  /** Reward otherwise. Default 0. */
  otherwise?: number;
  name?: string;
}

export function regexReward(pattern: RegExp | string, opts: RegexRewardOptions = {}): NamedReward {
  const re = typeof pattern === "string" ? new RegExp(pattern, "s") : new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ""));
  const { reward = 1, otherwise = 0, name = `regex:${re.source.slice(0, 40)}` } = opts;
  return { name, fn: (args: RewardArgs): RewardValues => args.completions.map((c) => (re.test(completionText(c)) ? reward : otherwise)) };
}
