// DAPO's dynamic sampling: a generation batch made only of groups whose rewards have spread. Groups where every
// completion scored the same have advantage 0 everywhere (no policy gradient, yet they dilute dapo's token
// normaliser); they are dropped and more prompts are generated until `need` groups with spread are in hand, surplus
// ones left out. Each extra round asks for about as many prompts as the deficit needs at the keep rate seen so far.
// When max_resample_rounds runs out, the batch is topped up with the latest zero-spread groups (which carry no policy
// gradient), so the batch keeps its size and shapes, and the caller is told so (exhausted).
// Is not: a replay buffer of past groups (TRL's experimental GRPOWithReplayBuffer).
import type { Rollout } from "./rollout.ts";
import { padBatch } from "./rollout.ts";
import type { RewardResult } from "../rewards/index.ts";

export interface SamplingStats {
  /** zero-spread groups left out of the batch */
  groupsDropped: number;
  /** generation rounds beyond the first */
  extraRounds: number;
  /** groups generated in all */
  groupsGenerated: number;
  /** the rounds ran out before `need` groups with spread were found (the batch holds zero-spread ones) */
  exhausted: boolean;
}

/**
 * Draw rollouts until `need` groups (of G completions) have spread, or maxRounds extra rounds are spent.
 * draw(n): a rollout of the next n prompts; spread(ro): per group of ro, whether its rewards differ.
 */
export async function sampleWithSpread(draw: (prompts: number) => Promise<Rollout>, spread: (ro: Rollout) => boolean[], need: number, G: number, maxRounds: number): Promise<{ ro: Rollout; stats: SamplingStats }> {
  const kept: [Rollout, number][] = [], zero: [Rollout, number][] = [];
  let generated = 0, rounds = 0;
  const consider = (ro: Rollout) => {
    spread(ro).forEach((s, g) => (s ? kept : zero).push([ro, g]));
    generated += ro.rows.length;
  };
  consider(await draw(need));
  while (kept.length < need && rounds < maxRounds) {
    rounds++;
    const deficit = need - kept.length;
    const ask = kept.length > 0 ? Math.ceil((deficit * generated) / kept.length) : need;
    consider(await draw(Math.min(need, Math.max(1, ask))));
  }
  const exhausted = kept.length < need;
  const picks = kept.slice(0, need);
  const filler = exhausted ? zero.slice(zero.length - (need - picks.length)) : [];
  return {
    ro: pickGroups([...picks, ...filler], G),
    stats: { groupsDropped: zero.length - filler.length, extraRounds: rounds, groupsGenerated: generated, exhausted },
  };
}

/** One rollout made of groups (rollout, group index) of others, re-padded into one batch. */
export function pickGroups(picks: [Rollout, number][], G: number): Rollout {
  if (picks.length === 0) throw new Error("dynamic sampling: no groups to train on");
  const each = <T>(f: (ro: Rollout, i: number) => T): T[] => picks.flatMap(([ro, g]) => Array.from({ length: G }, (_, j) => f(ro, g * G + j)));
  const r0 = picks[0][0].rewards;
  const perFunc = r0.names.map((_, f) => each((ro, i) => ro.rewards.perFunc[f][i]));
  const total = each((ro, i) => ro.rewards.total[i]);
  const rewards: RewardResult = {
    names: r0.names, perFunc, byName: Object.fromEntries(r0.names.map((n, f) => [n, perFunc[f]])), total,
    skipped: each((ro, i) => ro.rewards.skipped[i]),
    allNull: total.flatMap((t, i) => (Number.isNaN(t) && perFunc.every((v) => v[i] === null) ? [i] : [])),
    errors: [...new Set(picks.map(([ro]) => ro))].flatMap((ro) => ro.rewards.errors),
  };
  const completionIds = each((ro, i) => ro.completionIds[i]), counts = each((ro, i) => ro.counts[i]);
  const pad = picks[0][0].pad;
  return {
    rows: picks.map(([ro, g]) => ro.rows[g]), prompts: picks.map(([ro, g]) => ro.prompts[g]), promptIds: picks.map(([ro, g]) => ro.promptIds[g]),
    completionIds, texts: each((ro, i) => ro.texts[i]), truncated: each((ro, i) => ro.truncated[i]), rewards, counts, pad,
    batch: padBatch(each((ro, i) => ro.promptIds[Math.floor(i / G)]), completionIds, counts, pad),
  };
}
