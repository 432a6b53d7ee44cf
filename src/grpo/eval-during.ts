// Evaluation during training (eval_strategy: steps): at every eval_steps-th optimiser step (and the last; with
// eval_on_start also before the first) the eval rows get num_generations_eval completions each, in batches of
// per_device_eval_batch_size completions, scored by the run's rewards. The metrics go to metrics.jsonl as a line of
// their own ({step, eval/...}) and to the console. The sampling seed depends only on the step, so a resumed run
// evaluates exactly as an uninterrupted one (the lines up to the checkpoint are kept by RunLog.open).
// Is not: a loss on the eval set (TRL also logs eval_loss; its value at ratio 1 is −mean advantage, ≈ 0).
import { mixSeed } from "../engine/rng.ts";
import type { CausalLM } from "../models/model.ts";
import type { Tokenizer } from "../tokenize/index.ts";
import type { Row } from "../data/index.ts";
import type { NamedReward } from "../rewards/index.ts";
import type { GRPOConfig } from "./config.ts";
import type { Metrics, RunLog } from "./metrics.ts";
import { evaluate } from "./eval.ts";

export class EvalDuringTraining {
  constructor(private readonly cfg: GRPOConfig, private readonly rows: Row[], private readonly totalSteps: number) {
    if (rows.length === 0) throw new Error("eval_strategy steps: the eval split is empty");
  }

  /** Whether to evaluate after optimiser step `step` (0: before the first). */
  due(step: number): boolean {
    const c = this.cfg;
    if (c.evalStrategy !== "steps") return false;
    if (step === 0) return c.evalOnStart;
    return step % (c.evalSteps ?? c.loggingSteps) === 0 || step === this.totalSteps;
  }

  async run(step: number, model: CausalLM, tok: Tokenizer, funcs: NamedReward[], log: RunLog): Promise<Metrics> {
    const c = this.cfg, G = c.numGenerationsEval ?? c.numGenerations;
    const t0 = performance.now();
    const savedDropout = model.dropout;
    model.dropout = 0;
    let r;
    try {
      r = await evaluate(model, tok, this.rows, funcs, c, { n: G, batchPrompts: Math.max(1, c.perDeviceEvalBatchSize / G), seed: mixSeed(c.seed, 0xe7a1, step) });
    } finally {
      model.dropout = savedDropout;
    }
    const m: Metrics = { step, "eval/accuracy": r.accuracy, "eval/reward": r.reward };
    for (const name of Object.keys(r.meanReward)) {
      m[`eval/rewards/${name}/mean`] = r.meanReward[name];
      m[`eval/rewards/${name}/std`] = r.stdReward[name];
    }
    m["eval/completions/mean_length"] = r.meanLength;
    m["eval/num_prompts"] = r.n;
    m["eval/runtime"] = (performance.now() - t0) / 1000;
    log.eval(m, `eval at step ${step}: accuracy ${(r.accuracy * 100).toFixed(1)}% (${r.accuracyReward}, ${r.n} prompts × ${G}) reward ${fmt(r.reward)} ` +
      Object.entries(r.meanReward).map(([k, v]) => `${k} ${fmt(v)}`).join(" "));
    return m;
  }
}

const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : "-");
