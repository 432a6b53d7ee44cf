// The GRPO family compared on the default task (`npx aha train`'s run: the embedded tiny-arith model, full
// fine-tuning, arithmetic word problems, rewards gsm8k/correctness + gsm8k/strict_format; src/defaults/run.ts):
// each algorithm trains for N steps from the same start, seeded, and is scored on the same held-out problems.
//
//   node --import tsx bench/algorithms.ts [--steps N] [--held-out K] [--only name,name] [--out FILE]
//
// Every algorithm row uses steps_per_generation 4 (TRL's GSPO recipe): one generation round of 32 prompts × 8
// completions feeds 4 optimiser steps, 3 of them off-policy. On-policy (one update per generation, the default run's
// batching) the variants' gradients coincide — dapo = cispo, grpo = GSPO = sapo — so the first row is the default run
// itself for reference. Per-row settings follow TRL's docs: GSPO's ε 3e-4 / 4e-4, CISPO's ε_max 5.
// Prints a markdown table (held-out accuracy sampled at temperature 1 and greedy, training wall-clock) and writes it
// to bench/results/algorithms.md unless --out says otherwise. Wall-clock is of the training only (evaluations apart).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { GRPOTrainer } from "../src/grpo/trainer.ts";
import { evaluate } from "../src/grpo/eval.ts";
import { validateConfig, type GRPOConfigInput } from "../src/grpo/config.ts";
import { DEFAULT_CONFIG } from "../src/defaults/run.ts";
import { arithRows } from "../src/defaults/arith.ts";

const arg = (name: string, d: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : d; };
const steps = Number(arg("steps", "100")), heldOutN = Number(arg("held-out", "500"));
const only = arg("only", "").split(",").filter(Boolean);
const outFile = arg("out", "bench/results/algorithms.md");

const off = { stepsPerGeneration: 4 };
const rows: [string, Partial<GRPOConfigInput>][] = [
  ["dapo, on-policy (the default run)", {}],
  ["dapo", { ...off }],
  ["grpo", { ...off, lossType: "grpo", epsilonHigh: undefined }],
  ["GSPO", { ...off, lossType: "grpo", importanceSamplingLevel: "sequence", epsilon: 3e-4, epsilonHigh: 4e-4 }],
  ["cispo", { ...off, lossType: "cispo", epsilonHigh: 5 }],
  ["sapo", { ...off, lossType: "sapo" }],
  ["dapo + dynamic sampling", { ...off, dynamicSampling: true }],
];

const seed = DEFAULT_CONFIG.seed ?? 0;
const train = arithRows("train", 20000, seed), heldOut = arithRows("test", heldOutN, seed + 1);
const tmp = mkdtempSync(join(tmpdir(), "aha-algorithms-"));
const results: string[] = [];
let baseline = "";
try {
  for (const [name, over] of rows) {
    if (only.length && !only.includes(name)) continue;
    const cfg = validateConfig({ ...DEFAULT_CONFIG, ...over, maxSteps: steps, outputDir: join(tmp, name.replace(/\W+/g, "-")) });
    const t = await GRPOTrainer.create(cfg, { rows: train, quiet: true });
    const score = async (temperature: number) => (await evaluate(t.model, t.tokenizer, heldOut, t.rewardFuncs, cfg, { temperature, seed: seed + 17 })).accuracy;
    if (!baseline) baseline = `before training: ${(100 * (await score(1))).toFixed(1)}% sampled, ${(100 * (await score(0))).toFixed(1)}% greedy`;
    const t0 = performance.now();
    const ms = await t.train();
    const secs = (performance.now() - t0) / 1000;
    const [sampled, greedy] = [await score(1), await score(0)];
    const last = ms.slice(-10), meanOf = (k: string) => last.reduce((a, m) => a + ((m[k] as number) ?? 0), 0) / last.length;
    const extra = cfg.dynamicSampling ? `, ${ms.reduce((a, m) => a + ((m["dynamic_sampling/extra_rounds"] as number) ?? 0), 0)} extra rounds` : "";
    const line = `| ${name} | ${(100 * sampled).toFixed(1)}% | ${(100 * greedy).toFixed(1)}% | ${meanOf("reward").toFixed(2)} | ${secs.toFixed(0)} s (${(secs / steps).toFixed(2)} s/step${extra}) |`;
    results.push(line);
    process.stdout.write(line + "\n");
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const table = [
  `GRPO family on the default task: ${steps} steps each, seed ${seed}, ${heldOutN} held-out problems; ${baseline}.`,
  "",
  "| algorithm | held-out accuracy (sampled, T = 1) | greedy | train reward (last 10 steps) | training wall-clock |",
  "| --- | --- | --- | --- | --- |",
  ...results,
  "",
  `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "CPU"}; command: \`node --import tsx bench/algorithms.ts --steps ${steps} --held-out ${heldOutN}\`.`,
].join("\n");
process.stdout.write("\n" + table + "\n");
if (outFile !== "-") writeFileSync(outFile, `# GRPO family on the default task (bench/algorithms.ts, ${new Date().toISOString().slice(0, 10)})\n\n${table}\n`);
