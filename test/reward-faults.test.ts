// Rewards that misbehave: a synchronous infinite loop (in a reward file or a self-contained function) runs in a
// worker thread and is cut at reward_timeout_ms, the worker replaced; a function that closes over local state runs
// inline (with a note) and its promise still times out; a batch is split across every worker at group boundaries,
// with the dataset's columns; reward_errors: skip prints each problem once per step, counts it in
// rewards/<name>/errors, and leaves the failed values out of the means and the advantages.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { computeRewards, placeRewards, resolveReward, type NamedReward, type RewardArgs } from "../src/rewards/index.ts";
import { GRPOTrainer } from "../src/grpo/trainer.ts";
import { evaluate } from "../src/grpo/eval.ts";
import { aha, metricsOf, model, trainConfig } from "./faults.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-reward-faults-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

function batch(n: number, columns: Record<string, unknown[]> = {}): RewardArgs {
  return { prompts: Array.from({ length: n }, (_, i) => `p${i}`), completions: Array.from({ length: n }, (_, i) => `c${i}`), completionIds: Array.from({ length: n }, () => [1]), ...columns };
}

test("a reward file that loops forever is cut at reward_timeout_ms: skip goes on with a fresh worker, stop ends the run", () => {
  const flag = join(tmp, "spin-once");
  const spin = join(tmp, "spin.ts");
  // the first call to see the flag file removes it and never returns; every later call answers
  writeFileSync(spin, `import { existsSync, rmSync } from "node:fs";
export function spin({ completions }: { completions: string[] }): number[] {
  if (existsSync(${JSON.stringify(flag)})) { rmSync(${JSON.stringify(flag)}); for (;;) {} }
  return completions.map((c) => c.length);
}
`);
  const run = (name: string, policy: string) => {
    writeFileSync(flag, "");
    return aha(["train", trainConfig(tmp, name, [`reward_funcs: [${spin}#spin]`, "reward_timeout_ms: 1500", `reward_errors: ${policy}`, "max_steps: 2", "save_steps: 0"])], {}, 90_000);
  };
  const skip = run("spin-skip", "skip");
  assert.equal(skip.status, 0, `the run did not finish (status ${skip.status}, signal ${skip.signal}): ${skip.stderr}`);
  assert.match(skip.stderr, /step 1: reward "spin" timeout on the whole batch: timed out after 1500 ms/);
  assert.deepEqual(metricsOf(join(tmp, "spin-skip")).map((m) => m["rewards/spin/errors"]), [8, 0], "step 2 ran in a fresh worker");
  const stop = run("spin-stop", "stop");
  assert.equal(stop.status, 1, `status ${stop.status}, signal ${stop.signal}: ${stop.stderr}`);
  assert.match(stop.stderr, /reward "spin" timed out after 1500 ms/);
});

test("a self-contained function moves to a worker (its loop is cut); one that closes over local state stays inline, with a note, and still times out", async () => {
  const limit = 3;
  const loops: NamedReward = { name: "loops", fn: ({ completions }) => { for (;;) { if (completions.length < 0) break; } return []; } };
  const waits: NamedReward = { name: "waits", fn: async ({ completions }) => { await new Promise((r) => setTimeout(r, 20_000).unref()); return completions.map((c) => (c.length > limit ? 1 : 0)); } };
  const len: NamedReward = { name: "len", fn: ({ completions }) => completions.map((c) => c.length) };
  const placed = await placeRewards([loops, waits, len], { workers: 1 });
  try {
    assert.equal(placed.notes.length, 1);
    assert.match(placed.notes[0], /reward "waits" runs on the main thread.*`limit`/);
    const t0 = Date.now();
    const r = await computeRewards(placed.rewards.slice(0, 2), undefined, batch(4), { timeoutMs: 800, onError: "skip" });
    assert.ok(Date.now() - t0 < 10_000, "the calls were not cut");
    assert.deepEqual(r.errors.map((e) => [e.reward, e.kind]), [["loops", "timeout"], ["waits", "timeout"]]);
    assert.ok(r.skipped.every(Boolean));
    // the pool's one worker was terminated and replaced: the next call runs
    assert.deepEqual((await computeRewards(placed.rewards.slice(2), undefined, batch(2), { timeoutMs: 800 })).total, [2, 2]);
  } finally {
    await placed.pool?.close();
  }
});

test("a batch is split across every worker at group boundaries; the dataset's columns and async functions work there", async () => {
  const file = join(tmp, "who.ts");
  // each chunk waits (Atomics, up to 20 s) until both have started: they must run at the same time, on two threads
  writeFileSync(file, `import { threadId } from "node:worker_threads";
export async function who(a: { completions: string[]; answer: string[]; barrier: Int32Array }): Promise<number[]> {
  Atomics.add(a.barrier, 0, 1);
  const t0 = Date.now();
  while (Atomics.load(a.barrier, 0) < 2 && Date.now() - t0 < 20000) Atomics.wait(a.barrier, 1, 0, 50);
  await new Promise((r) => setTimeout(r, 1));
  return a.completions.map((_, i) => (Atomics.load(a.barrier, 0) < 2 ? -1 : threadId * 1000 + Number(a.answer[i])));
}
`);
  const placed = await placeRewards([await resolveReward(`${file}#who`)], { workers: 2, groupSize: 4 });
  try {
    const args = { ...batch(16, { answer: Array.from({ length: 16 }, (_, i) => String(i)) }), barrier: new Int32Array(new SharedArrayBuffer(8)) } as unknown as RewardArgs;
    const v = (await placed.rewards[0].fn(args)) as number[];
    assert.ok(!v.includes(-1), "the two halves of the batch did not run at the same time");
    assert.deepEqual(v.map((x) => x % 1000), Array.from({ length: 16 }, (_, i) => i), "the answer column reached the worker");
    const threads = v.map((x) => Math.floor(x / 1000));
    assert.equal(new Set(threads).size, 2, `threads ${threads}`);
    assert.ok(!threads.includes(0), "ran on the main thread");
    for (let g = 0; g < 4; g++) assert.equal(new Set(threads.slice(g * 4, g * 4 + 4)).size, 1, "a group was split between threads");
  } finally {
    await placed.pool?.close();
  }
});

test("reward_errors: skip prints each problem once per step, counts it, and leaves failed values out of the means and advantages", async () => {
  const flaky: NamedReward = { name: "flaky", fn: ({ completions }) => completions.map((c) => { if (String(c).charCodeAt(0) % 2) throw new Error(`odd first character\nsecond line`); return 1; }) };
  const rows = Array.from({ length: 16 }, (_, i) => ({ prompt: `question ${i}: what is ${i} + ${i}?` }));
  let log = "";
  const dir = join(tmp, "skip");
  const t = await GRPOTrainer.create({ model, maxCompletionLength: 6, numGenerations: 4, perDeviceTrainBatchSize: 8, seed: 5, maxSteps: 3, logCompletions: 8, rewardErrors: "skip", rewardWorkers: 0, outputDir: dir } as never,
    { rows, rewardFuncs: [flaky, { name: "len", fn: ({ completions }) => completions.map((c) => c.length) }], console: { write: (s: string) => (log += s) } });
  await t.train();
  const completions = readFileSync(join(dir, "completions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  let failedSomewhere = false;
  for (const m of metricsOf(dir)) {
    const mine = completions.filter((c) => c.step === m.step);
    const failed = mine.flatMap((c, i) => (c.rewards.flaky === null ? [i] : []));
    failedSomewhere ||= failed.length > 0;
    assert.equal(m["rewards/flaky/errors"], failed.length, `step ${m.step}: errors counted`);
    assert.equal(m["rewards/len/errors"], 0);
    const lines = log.split("\n").filter((l) => l.startsWith(`step ${m.step}: reward "flaky"`));
    if (failed.length) assert.deepEqual(lines, [`step ${m.step}: reward "flaky" threw on sample${failed.length > 1 ? "s" : ""} ${failed.join(", ")}: threw Error: odd first character`]);
    else assert.deepEqual(lines, []);
    for (const i of failed) {
      assert.equal(mine[i].reward, null, "a failed sample has no total reward");
      assert.equal(mine[i].advantage, 0, "a failed sample has no advantage");
    }
    const ok = mine.filter((c) => c.reward !== null).map((c) => c.reward as number);
    assert.ok(Math.abs((m.reward as number) - ok.reduce((a, b) => a + b, 0) / ok.length) < 1e-9, `step ${m.step}: reward is the mean of the samples that scored`);
    if (failed.length) assert.ok(log.includes(`reward ${(m.reward as number).toFixed(3)} (±`) && log.includes(`over ${8 - failed.length} of 8 samples (${failed.length} skipped)`));
  }
  assert.ok(failedSomewhere, "no sample failed: the test shows nothing");

  // evaluation too: a sample the accuracy reward failed on is neither a success nor a 0
  const res = await evaluate(t.model, t.tokenizer, rows, [{ name: "correctness", fn: flaky.fn }], t.config);
  assert.ok(res.errors > 0 && res.errors < rows.length, `errors ${res.errors}`);
  assert.equal(res.accuracy, 1, "every sample the reward scored got 1");
});
