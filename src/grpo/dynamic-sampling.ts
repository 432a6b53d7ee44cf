// DAPO's dynamic sampling: a generation batch made only of groups whose rewards have spread. Groups where every
// completion scored the same have advantage 0 everywhere (no policy gradient, yet they dilute dapo's token
// normaliser); they are dropped and more prompts are generated until `need` groups with spread are in hand, surplus
// ones left out. Each extra round asks for about as many prompts as the deficit needs at the keep rate seen so far.
// When max_resample_rounds runs out, the batch is topped up with the latest zero-spread groups (which carry no policy
// gradient), so the batch keeps its size and shapes, and the caller is told so (exhausted).
// Is not: a replay buffer of past groups (TRL's experimental GRPOWithReplayBuffer).
import type { Rollout } from "./rollout.ts";
import type { CompletionBatch } from "./loss.ts";
import type { Metrics } from "./metrics.ts";
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

/**
 * One rollout made of groups (rollout, group index) of others: the picked rows of their padded batches re-padded into
 * one (prompts left-padded, completions right-padded; the fill id is 0, masked out everywhere), their rewards, texts
 * and per-completion details. Metrics of the rollouts (agents' turns and tool calls) are averaged over the sources.
 */
export function pickGroups(picks: [Rollout, number][], G: number): Rollout {
  if (picks.length === 0) throw new Error("dynamic sampling: no groups to train on");
  const each = <T>(f: (ro: Rollout, i: number) => T): T[] => picks.flatMap(([ro, g]) => Array.from({ length: G }, (_, j) => f(ro, g * G + j)));
  const r0 = picks[0][0].rewards, sources = [...new Set(picks.map(([ro]) => ro))];
  const perFunc = r0.names.map((_, f) => each((ro, i) => ro.rewards.perFunc[f][i]));
  const total = each((ro, i) => ro.rewards.total[i]);
  const details: RewardResult["details"] = {};
  for (const name of Object.keys(r0.details)) {
    const has = (k: "samples" | "parts") => picks.every(([ro]) => ro.rewards.details[name]?.[k]);
    details[name] = {
      ...(has("samples") ? { samples: each((ro, i) => ro.rewards.details[name].samples![i]) } : {}),
      ...(has("parts") ? { parts: Object.fromEntries(Object.keys(r0.details[name].parts!).map((k) => [k, each((ro, i) => ro.rewards.details[name].parts![k]?.[i] ?? null)])) } : {}),
    };
  }
  const rewards: RewardResult = {
    names: r0.names, perFunc, byName: Object.fromEntries(r0.names.map((n, f) => [n, perFunc[f]])), total,
    skipped: each((ro, i) => ro.rewards.skipped[i]),
    allNull: total.flatMap((t, i) => (Number.isNaN(t) && perFunc.every((v) => v[i] === null) ? [i] : [])),
    errors: sources.flatMap((ro) => ro.rewards.errors), details,
  };
  const withPrompts = picks.some(([ro]) => ro.completionPrompts);
  const metrics: Metrics = {};
  for (const k of Object.keys(picks[0][0].metrics ?? {})) metrics[k] = sources.reduce((a, ro) => a + ((ro.metrics?.[k] as number) ?? 0), 0) / sources.length;
  return {
    rows: picks.map(([ro, g]) => ro.rows[g]), prompts: picks.map(([ro, g]) => ro.prompts[g]), promptIds: picks.map(([ro, g]) => ro.promptIds[g]),
    completionIds: each((ro, i) => ro.completionIds[i]), texts: each((ro, i) => ro.texts[i]), completions: each((ro, i) => ro.completions[i]),
    completionPrompts: withPrompts ? each((ro, i) => ro.completionPrompts?.[i] ?? (ro.prompts[Math.floor(i / G)] as never)) : undefined,
    truncated: each((ro, i) => ro.truncated[i]), rewards, batch: batchRows(each((ro, i) => [ro.batch, i] as [CompletionBatch, number])),
    ...(picks[0][0].metrics ? { metrics } : {}),
  };
}

/** Rows of padded batches as one padded batch: P and T the largest of theirs. */
export function batchRows(rows: [CompletionBatch, number][]): CompletionBatch {
  const N = rows.length, P = Math.max(...rows.map(([b]) => b.P)), T = Math.max(...rows.map(([b]) => b.T));
  const promptIds = new Int32Array(N * P), promptMask = new Int32Array(N * P), completionIds = new Int32Array(N * T), completionMask = new Float32Array(N * T);
  rows.forEach(([b, i], n) => {
    const off = P - b.P; // left padding grows by off
    promptIds.set(b.promptIds.subarray(i * b.P, (i + 1) * b.P), n * P + off);
    if (b.promptMask) promptMask.set(b.promptMask.subarray(i * b.P, (i + 1) * b.P), n * P + off);
    else promptMask.fill(1, n * P + off, (n + 1) * P);
    completionIds.set(b.completionIds.subarray(i * b.T, (i + 1) * b.T), n * T);
    completionMask.set(b.completionMask.subarray(i * b.T, (i + 1) * b.T), n * T);
  });
  return { promptIds, promptMask, completionIds, completionMask, B: N, P, T };
}
