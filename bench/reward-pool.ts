// The reward worker pool's cost and gain (`npm run bench -- reward-pool`, or `node --import tsx bench/reward-pool.ts`):
//   1. overhead per call: a trivial reward on a batch of 8 completions through computeRewards, inline on the main
//      thread (the baseline) vs. in the pool (1 worker; 2 workers, the batch split in two);
//   2. speed-up: a CPU-heavy reward (a few ms of hashing per completion) on a batch of 16 completions in 4 groups,
//      inline vs. 1 worker vs. 2 workers (each takes 2 groups).
// Figures are medians of repeated rounds, measured in the same run as their baseline. The load average is printed:
// on a shared machine the figures move with it.
import { loadavg, availableParallelism } from "node:os";
import { computeRewards, placeRewards, type NamedReward, type RewardArgs } from "../src/rewards/index.ts";

function batch(n: number): RewardArgs {
  const completions = Array.from({ length: n }, (_, i) => `<think>\nstep ${i}: 12 + 30 = 42\n</think>\n<answer>\n42\n</answer>\n`.repeat(4));
  return { prompts: completions.map((_, i) => `question ${i}`), completions, completionIds: completions.map((c) => Array.from(c, (ch: string) => ch.charCodeAt(0))), answer: completions.map(() => "42") };
}

// (plain-text prompts: each completion is a string)
const trivial: NamedReward = { name: "trivial", fn: ({ completions }) => completions.map((c) => (String(c).includes("42") ? 1 : 0)) };
// ~10 ms per completion on an idle core of integer hashing (self-contained, so it moves to a worker)
const heavy: NamedReward = {
  name: "heavy",
  fn: ({ completions }) => completions.map((completion) => {
    const c = String(completion);
    let h = 2166136261;
    for (let r = 0; r < 6000; r++) for (let i = 0; i < c.length; i++) h = Math.imul(h ^ c.charCodeAt(i), 16777619);
    return (h >>> 0) / 2 ** 32;
  }),
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median ms per computeRewards call over `rounds` calls (after `warm` unmeasured ones); `cores`: the process's CPU
 *  time (every thread) over the wall time of the measured calls — how many cores the calls kept busy. */
async function time(rewards: NamedReward[], args: RewardArgs, rounds: number, warm = 5): Promise<number & { cores?: number }> {
  const ts: number[] = [];
  let cpu = 0;
  for (let i = 0; i < warm + rounds; i++) {
    const c0 = process.cpuUsage(), t0 = performance.now();
    await computeRewards(rewards, undefined, args);
    const c = process.cpuUsage(c0);
    if (i >= warm) { ts.push(performance.now() - t0); cpu += (c.user + c.system) / 1000; }
  }
  return Object.assign(median(ts), { cores: cpu / ts.reduce((a, b) => a + b, 0) });
}

async function placed(r: NamedReward, workers: number, groupSize: number) {
  const p = await placeRewards([r], { workers, groupSize });
  await p.pool?.start();
  return p;
}

export async function benchRewardPool(): Promise<void> {
  console.log(`reward pool — ${availableParallelism()} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")} (a shared machine: figures move with the load)`);
  const small = batch(8);
  const inline = await time([trivial], small, 300);
  console.log(`overhead per call, trivial reward, 8 completions: inline ${(inline * 1000).toFixed(0)} µs (baseline)`);
  for (const workers of [1, 2]) {
    const p = await placed(trivial, workers, 4);
    const t = await time(p.rewards, small, 300);
    console.log(`  ${workers} worker${workers > 1 ? "s" : " "}${workers > 1 ? " (batch split in 2)" : ""}: ${(t * 1000).toFixed(0)} µs, +${((t - inline) * 1000).toFixed(0)} µs per call`);
    await p.pool?.close();
  }
  const big = batch(16);
  const base = await time([heavy], big, 9, 1);
  console.log(`CPU-heavy reward, 16 completions in 4 groups: inline ${base.toFixed(1)} ms (baseline); ${base.cores!.toFixed(2)} cores busy`);
  let one = 0 as number;
  for (const workers of [1, 2]) {
    const p = await placed(heavy, workers, 4);
    const t = await time(p.rewards, big, 9, 2);
    if (workers === 1) one = t;
    console.log(`  ${workers} worker${workers > 1 ? "s" : " "}: ${t.toFixed(1)} ms, ×${(base / t).toFixed(2)} vs inline${workers > 1 ? `, ×${(one / t).toFixed(2)} vs 1 worker (the same code on one thread)` : ""}; ${t.cores!.toFixed(2)} cores busy`);
    await p.pool?.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchRewardPool();
