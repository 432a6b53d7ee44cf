// fromVerifier: turn a per-sample yes/no check into a reward function.
// Is: runs the verifier on every sample concurrently; true → correct, false → incorrect. The row holds the sample's
// other dataset columns (answer, …). Is not: a sandbox — verify untrusted code elsewhere.
import type { Message } from "../../tokenize/index.ts";
import { completionText, type NamedReward, type RewardArgs, type RewardValues } from "../types.ts";

export type Verifier = (
  prompt: string | Message[],
  completion: string,
  row: Record<string, unknown>,
) => boolean | null | Promise<boolean | null>;

export interface VerifierRewardOptions {
  /** Reward when the verifier says true. Default 1. */
  correct?: number;
  /** Reward when it says false. Default 0. (null from the verifier → null: does not apply.) */
  incorrect?: number;
}

export function fromVerifier(name: string, verify: Verifier, opts: VerifierRewardOptions = {}): NamedReward {
  const { correct = 1, incorrect = 0 } = opts;
  const fn = async (args: RewardArgs): Promise<RewardValues> => {
    const cols = Object.entries(args).filter(([k]) => k !== "prompts" && k !== "completions" && k !== "completionIds");
    return Promise.all(
      args.completions.map(async (c, i) => {
        const row: Record<string, unknown> = {};
        for (const [k, v] of cols) row[k] = v[i];
        const ok = await verify(args.prompts[i]!, completionText(c), row);
        if (ok === null) return null;
        if (typeof ok !== "boolean") throw new Error(`verifier returned ${typeof ok}, expected true, false or null`);
        return ok ? correct : incorrect;
      }),
    );
  };
  return { name, fn };
}
