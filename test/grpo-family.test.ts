// The 2025–26 GRPO family in the trainer, on a fixture model: every loss variant trains with num_iterations > 1,
// beta > 0 and gradient accumulation (batch 1 × 8 accumulation = batch 8 × 1); TRL's steps_per_generation /
// generation_batch_size (rounds per step, checks); dynamic sampling keeps every batch full of groups with reward
// spread, and says so when its rounds run out; evaluation during training is logged at the right steps and resumes
// exactly; sync_ref_model refreshes the KL reference (LoRA and full fine-tuning); disable_dropout, shuffle_dataset;
// the overlong_penalty reward; the new options' validation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { GRPOTrainer } from "../src/grpo/trainer.ts";
import { ConfigError, configWarnings, loadConfigFile, validateConfig } from "../src/grpo/config.ts";
import { sampleWithSpread } from "../src/grpo/dynamic-sampling.ts";
import { runMetrics } from "../src/grpo/metrics.ts";
import type { Rollout } from "../src/grpo/rollout.ts";
import { completionText, resolveReward, type NamedReward } from "../src/rewards/index.ts";

const modelDir = fixtureModels().find((d) => d.endsWith("llama")) ?? fixtureModels()[0];
const tmp = mkdtempSync(join(tmpdir(), "aha-family-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const variety: NamedReward = { name: "variety", fn: ({ completions }) => completions.map((c) => new Set(completionText(c)).size / 10) };
const rows = Array.from({ length: 32 }, (_, i) => ({ prompt: `question ${i}: what is ${i} + ${i}?`, answer: String(2 * i), i }));
const base = { model: modelDir, maxCompletionLength: 8, numGenerations: 4, learningRate: 1e-2, rewardFuncs: ["unused"], seed: 3, logCompletions: 2 };
let dirs = 0;
const trainer = (extra: Record<string, unknown>, opts: Record<string, unknown> = {}, outputDir = join(tmp, `run-${dirs++}`)) =>
  GRPOTrainer.create({ ...base, outputDir, ...extra } as never, { rows, rewardFuncs: [variety], quiet: true, ...opts });
const params = (t: GRPOTrainer) => t.model.parameters().map((p) => p.f32());
const lines = (dir: string) => readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);

const variants: [string, Record<string, unknown>][] = [
  ["GSPO", { lossType: "grpo", importanceSamplingLevel: "sequence" }],
  ["cispo", { lossType: "cispo", epsilonHigh: 5 }],
  ["sapo", { lossType: "sapo" }],
  ["luspo", { lossType: "luspo", importanceSamplingLevel: "sequence" }],
  ["dapo + off-policy mask + bias-corrected KL", { lossType: "dapo", offPolicyMaskThreshold: 0.01, useBiasCorrectionKl: true }],
];

for (const [name, v] of variants) test(`${name}: batch 1 × 8 accumulation gives the update of batch 8 × 1; two iterations with beta > 0 train`, async () => {
  const cfg = { ...v, beta: 0.04, maxSteps: 1 };
  const a = await trainer({ ...cfg, perDeviceTrainBatchSize: 8, gradientAccumulationSteps: 1 });
  const b = await trainer({ ...cfg, perDeviceTrainBatchSize: 1, gradientAccumulationSteps: 8 });
  const init = params(a);
  await a.train();
  await b.train();
  const pa = params(a), pb = params(b);
  let num = 0, den = 0;
  pa.forEach((x, i) => x.forEach((y, j) => { num += (y - pb[i][j]) ** 2; den += (y - init[i][j]) ** 2; }));
  assert.ok(den > 0, "the update moved nothing");
  assert.ok(Math.sqrt(num / den) < 1e-3, `updates differ: relative ${Math.sqrt(num / den)}`);
  // num_iterations 2: the second step is off-policy (old log-probs, ratios away from 1), with accumulation and KL
  const c = await trainer({ ...v, beta: 0.04, maxSteps: 2, numIterations: 2, perDeviceTrainBatchSize: 4, gradientAccumulationSteps: 2 });
  const ms = await c.train();
  assert.equal(ms.length, 2);
  for (const m of ms) for (const k of ["loss", "kl", "entropy", "grad_norm"]) assert.ok(Number.isFinite(m[k]), `${k} ${m[k]}`);
  assert.ok(ms[1].kl! > 0, "the policy moved away from the reference");
});

test("steps_per_generation and generation_batch_size: one generation round feeds that many micro-batches (TRL)", async () => {
  // 4 completions × 2 accumulation per step; rounds of 16 completions (4 prompts) feed 2 steps each
  const a = await trainer({ maxSteps: 4, perDeviceTrainBatchSize: 4, gradientAccumulationSteps: 2, stepsPerGeneration: 4 });
  assert.equal(a.promptsPerRound, 4);
  assert.ok(a.recordsOldLogprobs, "later steps of a round are off-policy: old log-probs recorded");
  await a.train();
  assert.equal(a.state.rounds, 2);
  const b = await trainer({ maxSteps: 4, perDeviceTrainBatchSize: 4, gradientAccumulationSteps: 2, generationBatchSize: 16 });
  await b.train();
  assert.deepEqual(params(b), params(a));
  // rounds smaller than a step: 2 rounds per step, all on-policy
  const c = await trainer({ maxSteps: 2, perDeviceTrainBatchSize: 4, gradientAccumulationSteps: 2, stepsPerGeneration: 1 });
  assert.ok(!c.recordsOldLogprobs);
  await c.train();
  assert.equal(c.state.rounds, 4);
  // the default (steps_per_generation = gradient_accumulation_steps) is the same run as saying so
  const d = await trainer({ maxSteps: 2, perDeviceTrainBatchSize: 4, gradientAccumulationSteps: 2 });
  const e = await trainer({ maxSteps: 2, perDeviceTrainBatchSize: 4, gradientAccumulationSteps: 2, stepsPerGeneration: 2 });
  await d.train();
  await e.train();
  assert.deepEqual(params(d), params(e));
});

test("dynamic sampling: with a reward that makes most groups uniform, every batch is full of groups with spread", async () => {
  // only prompts with i % 4 == 0 get a reward with spread; the others score 1 whatever the completion
  const mostlyUniform: NamedReward = { name: "mostly_uniform", fn: ({ completions, i }) => completions.map((c, k) => ((i[k] as number) % 4 === 0 ? new Set(completionText(c)).size / 10 : 1)) };
  const t = await trainer({ maxSteps: 3, perDeviceTrainBatchSize: 8, dynamicSampling: true }, { rewardFuncs: [mostlyUniform] });
  const ms = await t.train();
  assert.equal(ms.length, 3);
  for (const m of ms) {
    assert.equal(m.frac_reward_zero_std, 0, `step ${m.step}: a zero-spread group was trained on`);
    assert.ok(m["dynamic_sampling/extra_rounds"]! >= 1, `step ${m.step}: extra rounds ${m["dynamic_sampling/extra_rounds"]}`);
    assert.ok(m["dynamic_sampling/groups_dropped"]! > 0);
    assert.equal(m["dynamic_sampling/exhausted"], 0);
  }
  // without dynamic sampling most groups are uniform
  const plain = await trainer({ maxSteps: 1, perDeviceTrainBatchSize: 8 }, { rewardFuncs: [mostlyUniform] });
  assert.ok((await plain.train())[0].frac_reward_zero_std! > 0);
  // no extra rounds allowed: the run says so and trains on what it has, the batch topped up to its size
  const out = join(tmp, "ds-exhausted");
  const short = await trainer({ maxSteps: 1, perDeviceTrainBatchSize: 8, dynamicSampling: true, maxResampleRounds: 0 }, { rewardFuncs: [mostlyUniform] }, out);
  const writes: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  (short as unknown as { opts: { quiet: boolean } }).opts.quiet = false;
  process.stderr.write = ((s: string) => { writes.push(String(s)); return true; }) as typeof process.stderr.write;
  let m;
  try {
    [m] = await short.train();
  } finally {
    process.stderr.write = orig;
  }
  assert.equal(m["dynamic_sampling/exhausted"], 1);
  assert.ok(m.frac_reward_zero_std! > 0);
  assert.ok(writes.some((w) => /dynamic sampling: 0 extra rounds found \d of 2 groups with reward spread; training on what it has/.test(w)), writes.join(""));
});

test("dynamic sampling picks exactly the groups needed, with spread first, asking for more prompts by the keep rate", async () => {
  // fake rollouts: group g of draw d has spread when (d + g) % 3 == 0; rows record (draw, group)
  let draws = 0;
  const asked: number[] = [];
  const fake = (n: number): Promise<Rollout> => {
    const d = draws++;
    asked.push(n);
    const G = 2, N = n * G;
    const total = Array.from({ length: N }, (_, i) => ((d + Math.floor(i / G)) % 3 === 0 ? i % 2 : 1));
    // a padded batch whose completion ids say where they came from: [draw, row, 7]; prompts of d + 1 tokens
    const P = d + 1, T = 3;
    const batch = {
      promptIds: Int32Array.from({ length: N * P }, () => 1), promptMask: Int32Array.from({ length: N * P }, () => 1),
      completionIds: Int32Array.from({ length: N * T }, (_, k) => [d, Math.floor(k / T), 7][k % T]), completionMask: new Float32Array(N * T).fill(1), B: N, P, T,
    };
    return Promise.resolve({
      rows: Array.from({ length: n }, (_, g) => ({ d, g })), prompts: Array(n).fill("p"), promptIds: Array(n).fill(Array(P).fill(1)),
      completionIds: Array.from({ length: N }, (_, i) => [d, i, 7]), texts: Array(N).fill("x"), completions: Array(N).fill("x"), truncated: Array(N).fill(false),
      rewards: { names: ["r"], perFunc: [total], byName: { r: total }, total, skipped: Array(N).fill(false), allNull: [], errors: [], details: {} },
      batch,
    });
  };
  const spread = (ro: Rollout) => ro.rows.map((_, g) => ro.rewards.total[2 * g] !== ro.rewards.total[2 * g + 1]);
  const { ro, stats } = await sampleWithSpread(fake, spread, 4, 2, 10);
  assert.equal(ro.rows.length, 4);
  assert.equal(ro.batch.B, 8);
  // the batch's rows are the picked completions, prompts re-padded on the left (mask 0 where the prompt was shorter)
  const { P, T } = ro.batch;
  assert.equal(P, Math.max(...ro.rows.map((r) => (r as { d: number }).d)) + 1);
  ro.completionIds.forEach((ids, k) => {
    assert.deepEqual(Array.from(ro.batch.completionIds.subarray(k * T, k * T + 3)), ids);
    const d = ids[0];
    assert.equal(ro.batch.promptMask!.subarray(k * P, (k + 1) * P).reduce((a, b) => a + b, 0), d + 1);
  });
  assert.ok(spread(ro).every(Boolean), "only groups with spread");
  assert.ok(!stats.exhausted && stats.extraRounds >= 1);
  assert.equal(stats.groupsGenerated, asked.reduce((a, b) => a + b, 0));
  assert.ok(asked.slice(1).every((n) => n >= 1 && n <= 4), `asked ${asked}`);
});

test("evaluation during training: eval/ metrics at step 0, every eval_steps and the last step; a resumed run logs the same", async () => {
  const evalRows = rows.slice(0, 4);
  const cfg = { maxSteps: 4, perDeviceTrainBatchSize: 4, evalStrategy: "steps", evalSteps: 3, evalOnStart: true, numGenerationsEval: 2, perDeviceEvalBatchSize: 4, saveSteps: 2, beta: 0.04, syncRefModel: true, refModelSyncSteps: 1 };
  const full = join(tmp, "eval-full"), part = join(tmp, "eval-part");
  await (await trainer(cfg, { evalRows }, full)).train();
  const evals = lines(full).filter((l) => "eval/accuracy" in l);
  assert.deepEqual(evals.map((l) => l.step), [0, 3, 4]);
  for (const l of evals) for (const k of ["eval/accuracy", "eval/reward", "eval/rewards/variety/mean", "eval/rewards/variety/std", "eval/completions/mean_length"]) assert.ok(Number.isFinite(l[k]), `${k} at step ${l.step}`);
  assert.equal(evals[0]["eval/num_prompts"], 4);
  // killed after 2 steps, resumed from checkpoint-2 (with its kept reference adapter): the same lines
  await (await trainer(cfg, { evalRows, stopAfter: 2 }, part)).train();
  assert.ok(existsSync(join(part, "checkpoint-2", "ref_model.safetensors")), "the synced reference is in the checkpoint");
  await (await trainer(cfg, { evalRows, resume: true }, part)).train();
  const strip = (ls: Record<string, number>[]) => ls.map(runMetrics);
  assert.deepEqual(strip(lines(part)), strip(lines(full)));
});

for (const full of [false, true]) test(`sync_ref_model (${full ? "full fine-tuning" : "LoRA: a kept reference adapter"}): alpha 1 makes the reference the policy; alpha 0 keeps it`, async () => {
  const cfg = { maxSteps: 2, perDeviceTrainBatchSize: 8, beta: 0.04, syncRefModel: true, refModelSyncSteps: 1, fullFinetune: full, learningRate: full ? 1e-3 : 1e-2 };
  const [, s1] = await (await trainer({ ...cfg, refModelMixupAlpha: 1 })).train();
  // the reference at step 2's rollout is the policy after step 1, which is the policy that step 2 starts from
  assert.ok(Math.abs(s1.kl!) < 1e-6, `kl ${s1.kl} with the reference synced to the policy`);
  const [, k0] = await (await trainer({ ...cfg, refModelMixupAlpha: 0 })).train();
  const [, plain] = await (await trainer({ ...cfg, syncRefModel: false })).train();
  assert.ok(plain.kl! > 1e-6);
  assert.ok(Math.abs(k0.kl! - plain.kl!) <= 1e-6 * Math.max(1, plain.kl!), `alpha 0: kl ${k0.kl} vs never synced ${plain.kl}`);
  const [, half] = await (await trainer({ ...cfg, refModelMixupAlpha: 0.5 })).train();
  assert.ok(half.kl! > 1e-7 && half.kl! < plain.kl!, `alpha 0.5: kl ${half.kl} between 0 and ${plain.kl}`);
});

test("disable_dropout turns LoRA dropout off; shuffle_dataset false visits the prompts in order", async () => {
  const t = await trainer({ maxSteps: 1, perDeviceTrainBatchSize: 8, lora: { r: 4, loraDropout: 0.3 }, disableDropout: true });
  assert.equal(t.model.dropout, 0);
  assert.equal((await trainer({ maxSteps: 1, lora: { r: 4, loraDropout: 0.3 } })).model.dropout, 0.3);
  const out = join(tmp, "in-order");
  await (await trainer({ maxSteps: 2, perDeviceTrainBatchSize: 8, shuffleDataset: false, logCompletions: 8 }, {}, out)).train();
  const prompts = readFileSync(join(out, "completions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).prompt);
  assert.deepEqual([...new Set(prompts)], [rows[0].prompt, rows[1].prompt, rows[2].prompt, rows[3].prompt]);
  const shuffled = join(tmp, "shuffled");
  await (await trainer({ maxSteps: 1, perDeviceTrainBatchSize: 8, logCompletions: 8 }, {}, shuffled)).train();
  const first = readFileSync(join(shuffled, "completions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).prompt);
  assert.notDeepEqual([...new Set(first)], [rows[0].prompt, rows[1].prompt]);
});

test("overlong_penalty: DAPO's soft length penalty, max_length from max_completion_length", async () => {
  const r = await resolveReward({ type: "overlong_penalty", buffer_length: 4, penalty: 0.5 }, { maxCompletionLength: 10 });
  const ids = [6, 7, 8, 10, 12].map((n) => Array(n).fill(1));
  assert.deepEqual(await r.fn({ prompts: [], completions: ids.map(() => ""), completionIds: ids }), [0, -0.125, -0.25, -0.5, -0.5]);
  const own = await resolveReward({ type: "overlong_penalty", buffer_length: 2, max_length: 4 });
  assert.deepEqual(await own.fn({ prompts: [], completions: ["", ""], completionIds: [[1, 2, 3], [1]] }), [-0.5, 0]);
  await assert.rejects(resolveReward({ type: "overlong_penalty", buffer_length: 4 }), /max_length/);
  await assert.rejects(resolveReward({ type: "overlong_penalty", buffer_length: 20 }, { maxCompletionLength: 10 }), /buffer_length must be an integer in 1\.\.max_length \(10\)/);
});

test("config: the family's options with TRL's names and defaults, and TRL's checks", () => {
  const d = validateConfig({ model: "m", rewardFuncs: ["x"] });
  assert.equal(d.importanceSamplingLevel, "token");
  assert.equal(d.sapoTemperaturePos, 1);
  assert.equal(d.sapoTemperatureNeg, 1.05);
  assert.equal(d.topEntropyQuantile, 1);
  assert.equal(d.multiObjectiveAggregation, "sum_then_normalize");
  assert.equal(d.useBiasCorrectionKl, false);
  assert.equal(d.offPolicyMaskThreshold, undefined);
  assert.equal(d.evalStrategy, "no");
  assert.equal(d.refModelMixupAlpha, 0.6);
  assert.equal(d.refModelSyncSteps, 512);
  assert.equal(d.shuffleDataset, true);
  const p = join(tmp, "family.yaml");
  writeFileSync(p, "model: ./m\nreward_funcs: [x]\nloss_type: luspo\nimportance_sampling_level: sequence\ntop_entropy_quantile: 0.2\nscale_rewards: mean\n" +
    "multi_objective_aggregation: normalize_then_sum\noff_policy_mask_threshold: 0.5\nuse_bias_correction_kl: true\ncast_lm_head_to_fp32: true\n" +
    "dynamic_sampling: true\nmax_resample_rounds: 3\nsteps_per_generation: 2\neval_strategy: steps\neval_steps: 5\nnum_generations_eval: 2\n" +
    "disable_dropout: true\nshuffle_dataset: false\nsapo_temperature_neg: 2\n");
  const c = loadConfigFile(p);
  assert.equal(c.lossType, "luspo");
  assert.equal(c.topEntropyQuantile, 0.2);
  assert.equal(c.scaleRewards, "mean");
  assert.equal(c.castLmHeadToFp32, true);
  assert.equal(c.stepsPerGeneration, 2);
  assert.deepEqual(configWarnings(c), []);
  const bad = (cfg: Record<string, unknown>, re: RegExp) => assert.throws(() => validateConfig({ model: "m", rewardFuncs: ["x"], ...cfg }, "cfg", true), (e: ConfigError) => re.test(e.message));
  bad({ stepsPerGeneration: 2, generationBatchSize: 16 }, /generation_batch_size and steps_per_generation cannot both be set/);
  bad({ generationBatchSize: 12 }, /generation_batch_size \(12\) must be a multiple of per_device_train_batch_size \(8\)/);
  bad({ generationBatchSize: 24, numGenerations: 16 }, /generation_batch_size: the generation batch \(generation_batch_size = 24\) must be a multiple of num_generations \(16\)/);
  bad({ perDeviceTrainBatchSize: 4, stepsPerGeneration: 1 }, /per_device_train_batch_size: the generation batch \(per_device_train_batch_size × steps_per_generation = 4\) must be a multiple of num_generations \(8\)/);
  bad({ evalStrategy: "steps", numGenerationsEval: 3 }, /per_device_eval_batch_size \(8\) must be a multiple of the eval generations per prompt/);
  bad({ syncRefModel: true }, /sync_ref_model needs beta > 0/);
  bad({ topEntropyQuantile: 1.5 }, /top_entropy_quantile/);
  bad({ importanceSamplingLevel: "batch" }, /importance_sampling_level/);
  bad({ lossType: "vespo" }, /loss_type/);
  // a generation batch that fits num_generations although one step's does not (TRL checks the generation batch)
  assert.equal(validateConfig({ model: "m", rewardFuncs: ["x"], perDeviceTrainBatchSize: 4, stepsPerGeneration: 2 }).stepsPerGeneration, 2);
  // what TRL warns about, we warn about
  const w = configWarnings(validateConfig({ model: "m", rewardFuncs: ["x"], lossType: "cispo" }));
  assert.ok(w.some((x) => /cispo caps the importance weight at epsilon_high itself/.test(x)), w.join("\n"));
  assert.ok(configWarnings(validateConfig({ model: "m", rewardFuncs: ["x"], lossType: "luspo" })).some((x) => /luspo with importance_sampling_level token/.test(x)));
  assert.ok(configWarnings(validateConfig({ model: "m", rewardFuncs: ["x"], importanceSamplingLevel: "sequence" })).some((x) => /weights each sequence by its length/.test(x)));
});
