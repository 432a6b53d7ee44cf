// Run logging: one JSON object per logged step in <output_dir>/metrics.jsonl (TRL's metric names), sampled
// completions with their rewards in <output_dir>/completions.jsonl, and the console: a progress bar with the live
// reward on a terminal, a plain line per step otherwise (CI logs).
// The log files are not touched until the run's first step has run (prepare()): then they are emptied (a fresh run)
// or cut back to the resumed step (run-dir.ts), so a run that fails to start leaves an earlier run's logs as they were.
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import cliProgress from "cli-progress";
import { ensureDir, namingPath, writeFileAtomic } from "../files/atomic.ts";
import { cutLog } from "./run-dir.ts";
import { problemLines, type RewardProblem } from "../rewards/index.ts";

export type Metrics = Record<string, number | null>;

/** Metrics that measure the machine (wall time, memory) rather than the run: a resumed or graphed run differs there. */
export const MACHINE_METRICS = ["step_time", "tokens_per_second", "memory/allocated_gb", "memory/peak_gb", "memory/rss_gb", "eval/runtime"];

/** A metrics row without MACHINE_METRICS (to compare runs). */
export function runMetrics(m: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(m).filter(([k]) => !MACHINE_METRICS.includes(k)));
}

/** Where console lines go: process.stderr, or anything with write() (tests). */
export interface LogOut {
  write(text: string): unknown;
  isTTY?: boolean;
}

export class RunLog {
  private bar: cliProgress.SingleBar | null = null;
  readonly metricsPath: string;
  readonly completionsPath: string;
  private resumeStep = 0;
  private prepared = false;

  constructor(readonly dir: string, private readonly totalSteps: number, private readonly quiet = false, private readonly out: LogOut = process.stderr) {
    this.metricsPath = join(dir, "metrics.jsonl");
    this.completionsPath = join(dir, "completions.jsonl");
  }

  /** Start the console (the files wait for prepare()): a fresh run, or a resumed one that keeps what was logged up to `resumeStep`. */
  open(resumeStep = 0): void {
    this.resumeStep = resumeStep;
    if (!this.quiet && this.out.isTTY) {
      this.bar = new cliProgress.SingleBar({
        format: "train |{bar}| {value}/{total} steps | reward {reward} | loss {loss} | {step_time}s/step | eta {eta_formatted}",
        hideCursor: true, stream: this.out as NodeJS.WriteStream,
      }, cliProgress.Presets.shades_classic);
      this.bar.start(this.totalSteps, resumeStep, { reward: "-", loss: "-", step_time: "-" });
    }
  }

  /** Record the run's config as <dir>/run_config.json (the dashboard shows it); written under a temporary name. */
  writeConfig(config: Record<string, unknown>): void {
    ensureDir(this.dir);
    writeFileAtomic(join(this.dir, "run_config.json"), JSON.stringify(config, null, 2) + "\n");
  }

  /** Empty the log files, or cut them back to the resumed step (dropping a torn last line, with a warning). Once. */
  prepare(): void {
    if (this.prepared) return;
    ensureDir(this.dir);
    for (const p of [this.metricsPath, this.completionsPath]) {
      const warning = cutLog(p, this.resumeStep > 0 ? this.resumeStep : -1); // a fresh run keeps nothing (not an eval line of step 0)
      if (warning) this.note(`warning: ${warning}`);
    }
    this.prepared = true;
  }

  /** Log a step's metrics (and sampled completions); `extra` is added to the console line. */
  step(m: Metrics, completions: Record<string, unknown>[], extra = ""): void {
    this.prepare();
    namingPath("append to", this.metricsPath, () => appendFileSync(this.metricsPath, JSON.stringify(m) + "\n"));
    if (completions.length) namingPath("append to", this.completionsPath, () => appendFileSync(this.completionsPath, completions.map((c) => JSON.stringify(c)).join("\n") + "\n"));
    const f = (k: string, d = 3) => (typeof m[k] === "number" ? (m[k] as number).toFixed(d) : "-");
    if (this.bar) this.bar.update(m.step as number, { reward: f("reward"), loss: f("loss", 4), step_time: f("step_time", 1) });
    else if (!this.quiet) this.out.write(`step ${m.step}/${this.totalSteps} reward ${f("reward")} (±${f("reward_std")})${extra} loss ${f("loss", 4)} kl ${f("kl", 4)} len ${f("completions/mean_length", 1)} lr ${m.learning_rate?.toExponential(2)} ${f("step_time", 2)}s\n`);
  }

  /** Evaluation during training: its metrics as a line of their own, and a console line. */
  eval(m: Metrics, text: string): void {
    this.prepare();
    namingPath("append to", this.metricsPath, () => appendFileSync(this.metricsPath, JSON.stringify(m) + "\n"));
    this.note(text);
  }

  /** A progress line for side phases (evaluation, SFT). */
  note(text: string): void {
    if (this.quiet) return;
    if (this.bar) this.bar.stop();
    this.out.write(text + "\n");
    if (this.bar) this.bar.start(this.totalSteps, this.bar.getProgress() * this.totalSteps);
  }

  close(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

/** The console notes of each rollout: every reward problem once per step, and prompts that max_prompt_length cut. */
export class RolloutReport {
  private cut = 0;
  private prompts = 0;

  constructor(private readonly log: RunLog, private readonly maxPromptLength: number) {}

  /** `promptCut`: tokens cut from each prompt (0: whole). The first cut is reported with its size, then a total at end(). */
  rollout(step: number, problems: RewardProblem[], promptCut: number[]): void {
    for (const line of problemLines(problems)) this.log.note(`step ${step}: ${line}`);
    const cut = promptCut.filter((x) => x > 0);
    if (cut.length && !this.cut) this.log.note(`step ${step}: max_prompt_length (${this.maxPromptLength}) cut ${cut.length} of ${promptCut.length} prompts, by up to ${Math.max(...cut)} tokens (cut from the left)`);
    this.cut += cut.length;
    this.prompts += promptCut.length;
  }

  end(): void {
    if (this.cut) this.log.note(`max_prompt_length (${this.maxPromptLength}) cut ${this.cut} of ${this.prompts} prompts in this run`);
  }
}

/** The console's word on skipped samples (reward_errors: skip): "" when none. */
export function skippedNote(skipped: boolean[]): string {
  const n = skipped.filter(Boolean).length;
  return n ? ` over ${skipped.length - n} of ${skipped.length} samples (${n} skipped)` : "";
}

/** What the clip metrics depend on: the loss type, the ratio's level, the clip range, bias-corrected KL. */
export interface StatsParams {
  lossType: string;
  sequence: boolean;
  epsLow: number;
  epsHigh: number;
  biasKl: boolean;
}

/**
 * Masked statistics of micro-batches, accumulated over a step, as TRL logs them: entropy and KL per completion token;
 * clip_ratio/* for the clipped-ratio losses (low: r < 1 − ε_low with A < 0, high: r > 1 + ε_high with A > 0), or
 * cispo_clip_ratio (r > ε_high with A > 0) for cispo, none for sapo; per token, or per sequence at sequence level.
 */
export class TokenStats {
  tokens = 0;
  entropy = 0;
  kl = 0;
  /** clip counts and what they are averaged over (tokens, or sequences at sequence level) */
  low = 0;
  high = 0;
  region = 0;
  clipCount = 0;

  constructor(private readonly p: StatsParams) {}

  /** logp/old/ref [B*T], adv per token [B*T], mask [B*T] */
  add(logp: Float32Array, entropy: Float32Array, old: Float32Array | null, ref: Float32Array | null, adv: Float32Array, mask: Float32Array, B: number, T: number): void {
    const p = this.p;
    const clip = (r: number, a: number) => {
      if (p.lossType === "sapo") return;
      this.clipCount++;
      if (p.lossType === "cispo") { if (r > p.epsHigh && a > 0) this.high++; return; }
      const lo = r < 1 - p.epsLow && a < 0, hi = r > 1 + p.epsHigh && a > 0;
      if (lo) this.low++;
      if (hi) this.high++;
      if (lo || hi) this.region++;
    };
    for (let b = 0; b < B; b++) {
      let n = 0, s = 0;
      for (let t = 0; t < T; t++) if (mask[b * T + t]) { n++; s += old ? logp[b * T + t] - old[b * T + t] : 0; }
      const rSeq = Math.exp(s / Math.max(n, 1));
      if (p.sequence) clip(rSeq, adv[b * T]);
      for (let t = 0; t < T; t++) {
        const i = b * T + t;
        if (!mask[i]) continue;
        this.tokens++;
        this.entropy += entropy[i];
        const r = p.sequence ? rSeq : old ? Math.exp(logp[i] - old[i]) : 1;
        if (ref) { const x = ref[i] - logp[i]; this.kl += (Math.exp(x) - x - 1) * (p.biasKl ? r : 1); }
        if (!p.sequence) clip(r, adv[i]);
      }
    }
  }

  metrics(withKl: boolean): Metrics {
    const d = Math.max(1, this.tokens), c = Math.max(1, this.clipCount);
    const clip: Metrics = this.p.lossType === "sapo" ? {} : this.p.lossType === "cispo" ? { cispo_clip_ratio: this.high / c }
      : { "clip_ratio/low_mean": this.low / c, "clip_ratio/high_mean": this.high / c, "clip_ratio/region_mean": this.region / c };
    return { kl: withKl ? this.kl / d : null, entropy: this.entropy / d, ...clip };
  }
}
