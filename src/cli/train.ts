// `aha train [CONFIG]`, `aha sft CONFIG` and `aha eval CONFIG`: the GRPO run, the supervised warm-up and the
// evaluation, from a YAML config (TRL option names). `aha train` with no config runs the embedded default.
import { join } from "node:path";
import { loadConfigFile } from "../grpo/config.ts";
import { configRows, GRPOTrainer, loadConfigTokenizer, loadForTraining, prepareForTraining, quantizationOf } from "../grpo/trainer.ts";
import type { Quant4Settings } from "../models/bnb4.ts";
import { evaluate } from "../grpo/eval.ts";
import { createAgent } from "../agents/rollout.ts";
import { sft } from "../grpo/sft.ts";
import { CausalLM } from "../models/model.ts";
import { resolveRewards, type NamedReward } from "../rewards/index.ts";
import { setDefaultDevice } from "../engine/index.ts";
import { saveAdapter, saveFullModel } from "../grpo/checkpoint.ts";
import { dashboardOverrides } from "./dashboard.ts";

export interface TrainArgs {
  resume?: boolean;
  overwrite?: boolean;
  device?: string;
  maxSteps?: number;
  outputDir?: string;
  /** --dashboard [port] */
  dashboard?: boolean | string;
}

function overrides(a: TrainArgs): Record<string, unknown> {
  const o: Record<string, unknown> = dashboardOverrides(a.dashboard);
  if (a.device) o.device = a.device;
  if (a.maxSteps !== undefined) o.max_steps = a.maxSteps;
  if (a.outputDir) o.output_dir = a.outputDir;
  if (a.overwrite) o.overwrite_output_dir = true;
  return o;
}

export async function runTrain(configPath: string, a: TrainArgs): Promise<void> {
  const cfg = loadConfigFile(configPath, overrides(a));
  const t = await GRPOTrainer.create(cfg, { resume: a.resume });
  process.stderr.write(`aha: GRPO on ${cfg.model} (${t.rows.length} prompts, ${t.totalSteps} steps) → ${cfg.outputDir}\n`);
  await t.train();
  process.stderr.write(`aha: done; adapter in ${join(cfg.outputDir, "final")}, metrics in ${join(cfg.outputDir, "metrics.jsonl")}\n`);
}

export interface EvalArgs {
  adapter?: string;
  split?: string;
  limit?: number;
  temperature?: number;
  json?: boolean;
  device?: string;
  /** --load-in-4bit and friends (the config's load_in_4bit otherwise) */
  quantization?: Quant4Settings | null;
}

export async function runEval(configPath: string, a: EvalArgs): Promise<void> {
  const cfg = loadConfigFile(configPath, a.device ? { device: a.device } : {});
  setDefaultDevice(cfg.device);
  const model = CausalLM.load(cfg.model, { adapter: a.adapter ?? cfg.adapter, revision: cfg.revision, quantization: a.quantization ?? quantizationOf(cfg) });
  const tok = loadConfigTokenizer(cfg);
  const rows = await configRows(cfg, a.split ?? cfg.dataset?.evalSplit ?? "test", a.limit);
  if (!cfg.rewardFuncs) throw new Error(`${configPath}: reward_funcs is required for eval`);
  const funcs = (await resolveRewards(cfg.rewardFuncs as never, { maxCompletionLength: cfg.maxCompletionLength })) as NamedReward[];
  const agent = await createAgent(cfg, tok, model.config.arch);
  const r = await evaluate(model, tok, rows, funcs, cfg, { temperature: a.temperature, agent });
  if (a.json) { process.stdout.write(JSON.stringify(r) + "\n"); return; }
  process.stdout.write(`accuracy (${r.accuracyReward} full): ${(r.accuracy * 100).toFixed(1)}% of ${r.n - r.errors}${r.errors ? ` (${r.errors} left out: the reward failed on them)` : ""}\n`);
  for (const [n, v] of Object.entries(r.meanReward)) process.stdout.write(`  mean ${n}: ${v.toFixed(3)}\n`);
  for (const [n, v] of Object.entries(r.metrics ?? {})) process.stdout.write(`  ${n}: ${(v ?? 0).toFixed(3)}\n`);
}

export async function runSft(configPath: string, a: TrainArgs): Promise<void> {
  const cfg = loadConfigFile(configPath, overrides(a));
  setDefaultDevice(cfg.device);
  const model = prepareForTraining(loadForTraining(cfg), cfg);
  const tok = loadConfigTokenizer(cfg);
  const rows = await configRows(cfg);
  const res = sft(model, tok, rows, cfg, (s, total, loss) => { if (s % cfg.loggingSteps === 0 || s === total) process.stderr.write(`sft step ${s}/${total} loss ${loss.toFixed(4)}\n`); },
    (line) => process.stderr.write(`${line}\n`));
  const out = join(cfg.outputDir, "sft");
  if (cfg.fullFinetune) saveFullModel(model, out);
  else saveAdapter(model, out, cfg.model);
  process.stderr.write(`aha: SFT done (${res.steps} steps); adapter in ${out}\n`);
}
