// The GRPO family compared on the default task (`npx aha train`'s run: the embedded tiny-arith model, full
// fine-tuning, arithmetic word problems, rewards gsm8k/correctness + gsm8k/strict_format; src/defaults/run.ts):
// each algorithm trains for N steps from the same start, seeded, and is scored on the same held-out problems.
//
//   npm run bench -- algorithms [--steps N] [--held-out K] [--only name,name] [--out FILE|-]
//   (or node --import tsx bench/algorithms.ts with the same flags)
//
// Every algorithm row uses steps_per_generation 4 (TRL's GSPO recipe): one generation round of 32 prompts × 8
// completions feeds 4 optimiser steps, 3 of them off-policy. On-policy (one update per generation, the default run's
// batching) the variants' gradients coincide — dapo = cispo, grpo = GSPO = sapo — so the first row is the default run
// itself for reference. Per-row settings follow TRL's docs: GSPO's ε 3e-4 / 4e-4, CISPO's ε_max 5.
// Prints a markdown table (held-out accuracy sampled at temperature 1 and greedy, training wall-clock and the
// process's CPU-seconds, which a shared machine inflates less) and writes it to bench/results/algorithms.md unless
// --out says otherwise. Times are of the training only (evaluations apart). Not run by a bare `npm run bench`
// (about 45 CPU-minutes at 60 steps).
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GRPOTrainer } from "../src/grpo/trainer.ts";
import { evaluate } from "../src/grpo/eval.ts";
import { validateConfig, type GRPOConfigInput } from "../src/grpo/config.ts";
import { DEFAULT_CONFIG } from "../src/defaults/run.ts";
import { arithRows } from "../src/defaults/arith.ts";

const off = { stepsPerGeneration: 4 };
const ROWS: [string, Partial<GRPOConfigInput>][] = [
  ["dapo, on-policy (the default run)", {}],
  ["dapo", { ...off }],
  ["grpo", { ...off, lossType: "grpo", epsilonHigh: undefined }],
  ["GSPO", { ...off, lossType: "grpo", importanceSamplingLevel: "sequence", epsilon: 3e-4, epsilonHigh: 4e-4 }],
  ["cispo", { ...off, lossType: "cispo", epsilonHigh: 5 }],
  ["sapo", { ...off, lossType: "sapo" }],
  ["dapo + dynamic sampling", { ...off, dynamicSampling: true }],
];

const NOTES = `Notes:
- One sampled completion per problem: the accuracies' sampling noise is ±NOISE points (1σ at the held-out size), so
  rows closer than about twice that are not told apart.
- All rows but the first use steps_per_generation 4 (3 of every 4 steps off-policy; TRL's GSPO recipe): on-policy the
  variants' gradients coincide (dapo = cispo, grpo = GSPO = sapo). GSPO with the paper's ε 3e-4 / 4e-4, CISPO with
  ε_max 5, SAPO with τ 1.0 / 1.05, dapo with ε 0.2 / 0.28 (the default run's).
- dynamic sampling: its extra generation rounds are sized by the keep rate seen so far; every trained batch is free of
  zero-spread groups unless max_resample_rounds ran out.
- CPU-seconds are the whole process's (every thread) over the training; the wall clock moves with the machine's load,
  printed above.`;

export async function benchAlgorithms(argv: string[] = process.argv.slice(2)): Promise<void> {
  const arg = (name: string, d: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : d; };
  const steps = Number(arg("steps", "60")), heldOutN = Number(arg("held-out", "500"));
  const only = arg("only", "").split(",").filter(Boolean);
  const outFile = arg("out", "bench/results/algorithms.md");
  const seed = DEFAULT_CONFIG.seed ?? 0;
  const train = arithRows("train", 20000, seed), heldOut = arithRows("test", heldOutN, seed + 1);
  const tmp = mkdtempSync(join(tmpdir(), "aha-algorithms-"));
  const results: string[] = [];
  const loads: number[] = [];
  let baseline = "", noise = 0;
  try {
    for (const [name, over] of ROWS) {
      if (only.length && !only.includes(name)) continue;
      const cfg = validateConfig({ ...DEFAULT_CONFIG, ...over, maxSteps: steps, outputDir: join(tmp, name.replace(/\W+/g, "-")) });
      const t = await GRPOTrainer.create(cfg, { rows: train, quiet: true });
      const score = async (temperature: number) => (await evaluate(t.model, t.tokenizer, heldOut, t.rewardFuncs, cfg, { temperature, seed: seed + 17 })).accuracy;
      if (!baseline) {
        const [s, g] = [await score(1), await score(0)];
        baseline = `before training: ${(100 * s).toFixed(1)}% sampled, ${(100 * g).toFixed(1)}% greedy`;
        noise = 100 * Math.sqrt(0.25 / heldOutN); // the largest binomial σ (p = 0.5)
      }
      const t0 = performance.now(), c0 = process.cpuUsage();
      const ms = await t.train();
      const secs = (performance.now() - t0) / 1000, cpu = process.cpuUsage(c0), cpuSecs = (cpu.user + cpu.system) / 1e6;
      loads.push(loadavg()[0]);
      const [sampled, greedy] = [await score(1), await score(0)];
      const last = ms.slice(-10), meanOf = (k: string) => last.reduce((a, m) => a + ((m[k] as number) ?? 0), 0) / last.length;
      const extra = cfg.dynamicSampling ? ` (${ms.reduce((a, m) => a + ((m["dynamic_sampling/extra_rounds"] as number) ?? 0), 0)} extra rounds)` : "";
      const line = `| ${name}${extra} | ${(100 * sampled).toFixed(1)}% | ${(100 * greedy).toFixed(1)}% | ${meanOf("reward").toFixed(2)} | ${cpuSecs.toFixed(0)} | ${secs.toFixed(0)} s (${(secs / steps).toFixed(2)} s/step) |`;
      results.push(line);
      process.stdout.write(line + "\n");
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const table = [
    `GRPO family on the default task: ${steps} steps each, seed ${seed}, ${heldOutN} held-out problems; ${baseline}.`,
    "",
    "| algorithm | held-out accuracy (sampled, T = 1) | greedy | train reward (last 10 steps) | training CPU-seconds | training wall-clock |",
    "| --- | --- | --- | --- | --- | --- |",
    ...results,
    "",
    `Command: \`npm run bench -- algorithms --steps ${steps} --held-out ${heldOutN}\`. Machine: ${cpus().length} × ${cpus()[0]?.model ?? "CPU"}; ` +
      `load average (1 min) after each row: ${loads.map((l) => l.toFixed(1)).join(", ")}.`,
    "",
    NOTES.replace("NOISE", noise.toFixed(1)),
  ].join("\n");
  process.stdout.write("\n" + table + "\n");
  if (outFile !== "-") writeFileSync(outFile, `# GRPO family on the default task (bench/algorithms.ts, ${new Date().toISOString().slice(0, 10)})\n\n${table}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchAlgorithms();
