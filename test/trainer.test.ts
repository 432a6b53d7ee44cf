// The GRPO loop on a fixture model: parameters change after a step, batch 1 × 8 accumulation equals batch 8 × 1,
// a run killed and resumed logs the same metrics as one that was not, config validation names every bad field,
// and a throwing reward stops the run with the sample named.
import { runMetrics } from "../src/grpo/metrics.ts";
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { GRPOTrainer } from "../src/grpo/trainer.ts";
import { ConfigError, loadConfigFile, validateConfig } from "../src/grpo/config.ts";
import { completionText, type NamedReward } from "../src/rewards/index.ts";

const modelDir = fixtureModels().find((d) => d.endsWith("llama")) ?? fixtureModels()[0];
const tmp = mkdtempSync(join(tmpdir(), "aha-train-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

// rewards: prefer completions with many distinct characters (any signal with variance will do)
const variety: NamedReward = { name: "variety", fn: ({ completions }) => completions.map((c) => new Set(completionText(c)).size / 10) };
const rows = Array.from({ length: 16 }, (_, i) => ({ prompt: `question ${i}: what is ${i} + ${i}?`, answer: String(2 * i) }));

const base = {
  model: modelDir, maxCompletionLength: 8, numGenerations: 4, learningRate: 1e-2, lossType: "grpo" as const,
  rewardFuncs: ["unused"], seed: 3, logCompletions: 2, beta: 0.04,
  rewardWorkers: 0, // the reward pool has its own tests (reward-pool.test.ts); these stay on the main thread
};

async function trainer(extra: Record<string, unknown>, outputDir: string, opts: Record<string, unknown> = {}) {
  return GRPOTrainer.create({ ...base, outputDir, ...extra } as never, { rows, rewardFuncs: [variety], quiet: true, ...opts });
}

const loraState = (t: GRPOTrainer) => t.model.parameters().map((p) => p.f32());

test("parameters change after a step, and metrics carry TRL's names", async () => {
  const t = await trainer({ maxSteps: 1, perDeviceTrainBatchSize: 8 }, join(tmp, "one"));
  const before = loraState(t);
  const [m] = await t.train();
  const after = loraState(t);
  const changed = before.filter((b, i) => b.some((v, j) => v !== after[i][j])).length;
  assert.ok(changed > 0, "no parameter changed");
  for (const k of ["step", "loss", "reward", "reward_std", "rewards/variety/mean", "rewards/variety/std", "frac_reward_zero_std", "kl", "entropy",
    "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "completions/mean_length", "completions/min_length",
    "completions/max_length", "completions/clipped_ratio", "grad_norm", "learning_rate", "num_tokens", "step_time"]) assert.ok(k in m, `metric ${k} missing`);
  const lines = readFileSync(join(tmp, "one", "metrics.jsonl"), "utf8").trim().split("\n");
  assert.equal(lines.length, 1);
  assert.equal(readFileSync(join(tmp, "one", "completions.jsonl"), "utf8").trim().split("\n").length, 2);
  assert.ok(existsSync(join(tmp, "one", "final", "adapter_model.safetensors")));
});

test("batch 1 × 8 accumulation gives the same update as batch 8 × 1", async () => {
  const a = await trainer({ maxSteps: 1, perDeviceTrainBatchSize: 8, gradientAccumulationSteps: 1 }, join(tmp, "acc-a"));
  const b = await trainer({ maxSteps: 1, perDeviceTrainBatchSize: 1, gradientAccumulationSteps: 8 }, join(tmp, "acc-b"));
  await a.train();
  await b.train();
  const pa = loraState(a), pb = loraState(b);
  let num = 0, den = 0, moved = 0;
  const init = loraState(await trainer({ maxSteps: 1 }, join(tmp, "acc-c")));
  pa.forEach((x, i) => x.forEach((v, j) => { num += (v - pb[i][j]) ** 2; den += (v - init[i][j]) ** 2; moved++; }));
  assert.ok(den > 0, "the update moved nothing");
  assert.ok(Math.sqrt(num / den) < 1e-3, `updates differ: relative ${Math.sqrt(num / den)}`);
});

test("a run killed after 2 steps and resumed logs the same metrics as an uninterrupted one", async () => {
  const cfg = { maxSteps: 4, perDeviceTrainBatchSize: 4, gradientAccumulationSteps: 2, saveSteps: 2, numIterations: 2 };
  const full = await trainer(cfg, join(tmp, "full"));
  await full.train();
  const part = await trainer(cfg, join(tmp, "part"), { stopAfter: 2 });
  await part.train();
  const resumed = await trainer(cfg, join(tmp, "part"), { resume: true });
  await resumed.train();
  const read = (d: string) => readFileSync(join(tmp, d, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => runMetrics(JSON.parse(l)));
  const a = read("full"), b = read("part");
  assert.equal(b.length, 4);
  assert.deepEqual(b, a);
});

test("config validation names every bad field (snake_case from YAML)", () => {
  const p = join(tmp, "bad.yaml");
  writeFileSync(p, "model: ./m\nlearning_rate: -1\nloss_type: ppo\nnum_generations: 3\nper_device_train_batch_size: 8\nreward_funcs: [gsm8k/correctness]\nbogus_option: 1\ngradient_checkpointing: 2.5\n");
  assert.throws(() => loadConfigFile(p), (e: ConfigError) => {
    assert.ok(e instanceof ConfigError);
    const msg = e.message;
    for (const f of ["learning_rate", "loss_type", "bogus_option", "per_device_train_batch_size"]) assert.ok(msg.includes(f), `${f} not named in:\n${msg}`);
    assert.match(msg, /gradient_checkpointing: true, false, or how many of the first layers/);
    assert.ok(msg.includes(p));
    return true;
  });
  assert.throws(() => validateConfig({ model: "m", rewardFuncs: [] }), /rewardFuncs/);
  assert.equal(validateConfig({ model: "m", rewardFuncs: ["x"], gradientCheckpointing: 12 }).gradientCheckpointing, 12);
  const ok = validateConfig({ model: "m", rewardFuncs: ["x"] });
  assert.equal(ok.lossType, "dapo");
  assert.equal(ok.scaleRewards, "group");
});

test("a reward that throws stops the run and names the function and the sample", async () => {
  const boom: NamedReward = { name: "boom", fn: ({ completions }) => completions.map((c, i) => { if (i === 3) throw new Error("kaput"); return c.length; }) };
  const t = await GRPOTrainer.create({ ...base, maxSteps: 1, perDeviceTrainBatchSize: 8, outputDir: join(tmp, "boom") } as never, { rows, rewardFuncs: [boom], quiet: true });
  await assert.rejects(t.train(), (e: Error) => e.message.includes("boom") && e.message.includes("kaput") && e.message.includes("question"));
});

test("save_steps writes checkpoints; save_total_limit keeps only the newest", async () => {
  const out = join(tmp, "ckpts");
  const t = await trainer({ maxSteps: 3, perDeviceTrainBatchSize: 8, saveSteps: 1, saveTotalLimit: 2 }, out);
  await t.train();
  const { readdirSync } = await import("node:fs");
  const left = readdirSync(out).filter((n) => n.startsWith("checkpoint-")).sort();
  assert.deepEqual(left, ["checkpoint-2", "checkpoint-3"]);
  for (const f of ["adapter_model.safetensors", "adapter_config.json", "optimizer.safetensors", "trainer_state.json"])
    assert.ok(existsSync(join(out, "checkpoint-3", f)), f);
  assert.ok(!readdirSync(out).some((n) => n.includes(".tmp-")), "no temporary folders left");
});

test("full fine-tuning with beta > 0 keeps the KL against the starting weights, not the policy of each rollout", async () => {
  // two rollouts of one update each: at the second, the policy has moved away from the starting weights, so the KL
  // is above 0 (with the policy itself as the reference it would be exactly 0 at every first iteration)
  const t = await trainer({ maxSteps: 2, perDeviceTrainBatchSize: 8, fullFinetune: true, numIterations: 1 }, join(tmp, "full-kl"));
  const [m1, m2] = await t.train();
  assert.equal(m1.kl, 0, "the first step's policy is the reference");
  assert.ok((m2.kl ?? 0) > 0, `the second step's KL against the starting weights is ${m2.kl}`);
});
