// The calculator example: `npx aha train --example calculator`. A tiny llama-architecture model that the project
// pretrained itself (assets/tiny-calc, made by scripts/make-calculator-model.ts) learns with GRPO on the CPU to call a
// calculator tool for the arithmetic it gets wrong on its own (two-digit products, three-digit sums and differences).
// Every option is an ordinary GRPO option (src/grpo/config.ts): the tool is passed as `tools`, the reward is
// gsm8k/correctness on the final <answer>. Held-out accuracy (problems never seen in training) and the tool-call
// rate are printed before and after, sampled at temperature 1 and greedy, as the default run does; a summary goes to
// <output_dir>/summary.json.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { GRPOTrainer } from "../grpo/trainer.ts";
import { evaluate, type EvalResult } from "../grpo/eval.ts";
import { validateConfig, type GRPOConfigInput } from "../grpo/config.ts";
import type { Message } from "../tokenize/index.ts";
import { calcRows, calculatorTool } from "./calculator.ts";
import { packageRoot } from "../package.ts";

export const CALC_MODEL = join(packageRoot(), "assets", "tiny-calc");

/** The example's config: ordinary GRPO options, the calculator as a tool. */
export const CALC_CONFIG: GRPOConfigInput = {
  model: CALC_MODEL,
  device: "cpu",
  fullFinetune: true,
  tools: [calculatorTool],
  maxToolCallingIterations: 2,
  rewardFuncs: ["gsm8k/correctness"],
  numGenerations: 8,
  perDeviceTrainBatchSize: 64,
  maxCompletionLength: 80,
  learningRate: 3e-4,
  lrSchedulerType: "constant",
  lossType: "dapo",
  epsilonHigh: 0.28,
  temperature: 1,
  maxSteps: 40,
  gradientCheckpointing: false,
  seed: 0,
  outputDir: "runs/calculator",
  logCompletions: 4,
};

/** Held-out problems evaluated before and after. */
export const CALC_HELD_OUT = 300;

export interface CalcRunArgs {
  maxSteps?: number;
  /** another model folder (tests, a model from scripts/make-calculator-model.ts --out) */
  model?: string;
  heldOut?: number;
  quiet?: boolean;
  outputDir?: string;
}

export interface CalcRunResult {
  before: EvalResult;
  after: EvalResult;
  greedyBefore: EvalResult;
  greedyAfter: EvalResult;
  minutes: number;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const calls = (r: EvalResult) => (r.metrics?.["tools/call_frequency"] ?? 0).toFixed(2);

/** One message of an episode on one line: a tool call as name(arguments), text with its newlines shown as spaces. */
function episodeLine(m: Message): string {
  const tc = (m.tool_calls ?? []) as { function: { name: string; arguments: unknown } }[];
  const text = tc.length > 0 ? tc.map((c) => `${c.function.name}(${JSON.stringify(c.function.arguments)})`).join(" ") : String(m.content ?? "");
  return `  [${m.role}] ${text.replace(/\s*\n\s*/g, " ").trim()}`;
}

export async function runCalculator(a: CalcRunArgs = {}): Promise<CalcRunResult> {
  const t0 = Date.now();
  const cfg = validateConfig({ ...CALC_CONFIG, ...(a.maxSteps ? { maxSteps: a.maxSteps } : {}), ...(a.outputDir ? { outputDir: a.outputDir } : {}), ...(a.model ? { model: a.model } : {}) });
  const rows = calcRows("train", 20000, cfg.seed);
  const nHeld = a.heldOut ?? CALC_HELD_OUT;
  const heldOut = calcRows("test", nHeld, cfg.seed + 1);
  const trainer = await GRPOTrainer.create(cfg, { rows, quiet: a.quiet });
  const out = a.quiet ? { write: (_: string) => true } : process.stderr;
  const params = trainer.model.allWeights().reduce((s, t) => s + t.numel, 0);
  out.write(`aha: calculator example — GRPO teaches the built-in tiny-calc model (${params.toLocaleString()} parameters) to call a calculator tool, ` +
    `${cfg.maxSteps} steps of ${trainer.promptsPerRound} prompts × ${cfg.numGenerations} episodes, CPU\n`);
  const evalAll = async () => {
    const sampled = await evaluate(trainer.model, trainer.tokenizer, heldOut, trainer.rewardFuncs, cfg, { temperature: 1, seed: cfg.seed + 17, agent: trainer.agent });
    const greedy = await evaluate(trainer.model, trainer.tokenizer, heldOut, trainer.rewardFuncs, cfg, { temperature: 0, agent: trainer.agent });
    return { sampled, greedy };
  };
  const line = (label: string, r: { sampled: EvalResult; greedy: EvalResult }) =>
    `${label}: accuracy ${pct(r.sampled.accuracy)} of ${r.sampled.n} held-out problems (sampled at temperature 1; greedy ${pct(r.greedy.accuracy)}); ` +
    `tool calls per problem ${calls(r.sampled)} (greedy ${calls(r.greedy)})\n`;
  const before = await evalAll();
  out.write(line("before", before));
  await trainer.train();
  const after = await evalAll();
  out.write(line("after ", after));
  const minutes = (Date.now() - t0) / 60000;
  const lift = (after.sampled.accuracy - before.sampled.accuracy) * 100;
  out.write(`aha: held-out accuracy ${pct(before.sampled.accuracy)} → ${pct(after.sampled.accuracy)} (${lift >= 0 ? "+" : ""}${lift.toFixed(1)} points) in ${minutes.toFixed(1)} min; ` +
    `reward curve ${join(cfg.outputDir, "reward.svg")}, trained model ${join(cfg.outputDir, "final")}\n`);
  const sample = after.sampled.samples[0];
  if (sample) out.write(`example episode after training:\n${episodeLine((sample.prompt as Message[]).at(-1)!)}\n${(sample.completion as Message[]).map(episodeLine).join("\n")}\n`);
  writeFileSync(join(cfg.outputDir, "summary.json"), JSON.stringify({
    before: before.sampled.accuracy, after: after.sampled.accuracy, greedy_before: before.greedy.accuracy, greedy_after: after.greedy.accuracy,
    tool_calls_before: before.sampled.metrics, tool_calls_after: after.sampled.metrics, minutes, heldOut: nHeld, steps: cfg.maxSteps,
  }, null, 2) + "\n");
  return { before: before.sampled, after: after.sampled, greedyBefore: before.greedy, greedyAfter: after.greedy, minutes };
}
