// The GRPO trainer: rollouts from the generation engine on the same model object, rewards, group advantages,
// the GRPO-family loss with gradient accumulation, AdamW with clipping and a schedule, num_iterations > 1 with
// recorded old log-probs, reference log-probs (ref-sync.ts), metrics, checkpoints, evaluation during training
// (eval-during.ts) and DAPO's dynamic sampling (dynamic-sampling.ts). User rewards run in worker threads
// (rewards/pool.ts); a step whose numbers are not finite makes no update (guard.ts); one run per output folder (run-dir.ts).
// Batching is TRL's: an optimiser step is gradient_accumulation_steps micro-batches of per_device_train_batch_size
// completions; a generation round produces generation_batch_size = per_device_train_batch_size × steps_per_generation
// completions (default: one optimiser step's worth) and feeds steps_per_generation × num_iterations micro-batches.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { backward, graphsByDefault, memory, noGrad, scope, setDefaultDevice, type Tensor } from "../engine/index.ts";
import { CausalLM } from "../models/model.ts";
import { dtypeFromTorch, type Quant4Settings } from "../models/bnb4.ts";
import { loadTokenizer, type Tokenizer } from "../tokenize/index.ts";
import { applyPreset, loadDataset, type Row } from "../data/index.ts";
import { placeRewards, resolveRewards, rewardMetrics, type NamedReward, type RewardPool, type RewardSpec } from "../rewards/index.ts";
import { mixSeed, Xoshiro } from "../engine/rng.ts";
import { configForLog, configWarnings, isJinja, reportsToDashboard, validateConfig, type GRPOConfig, type GRPOConfigInput } from "./config.ts";
import { batchLoss, completionLogprobs, globalNormaliser, kernelParams, lossWeights, tokenAdvantages, type CompletionBatch, type LossParams } from "./loss.ts";
import { GraphedMicroBatches } from "./graph-step.ts";
import { flatOf } from "../engine/flat.ts";
import { computeAdvantages, type Advantages } from "./advantages.ts";
import { AdamW, clipGradNorm, scheduledLr } from "./optim.ts";
import { rollout, sliceBatch, type Rollout } from "./rollout.ts";
import { agentRollout, createAgent, type Agent } from "../agents/rollout.ts";
import { RolloutReport, RunLog, skippedNote, TokenStats, type LogOut, type Metrics } from "./metrics.ts";
import { plotMetrics } from "./plot.ts";
import { startDashboardWorker } from "../dashboard/worker.ts";
import { loadCheckpoint, saveAdapter, saveCheckpoint, saveFullModel, type TrainerState } from "./checkpoint.ts";
import { checkRollout, checkStep, NonFiniteGuard, type NonFinite } from "./guard.ts";
import { checkRunDir, clearRun, startRun } from "./run-dir.ts";
import { sampleWithSpread, type SamplingStats } from "./dynamic-sampling.ts";
import { EvalDuringTraining } from "./eval-during.ts";
import { Reference } from "./ref-sync.ts";

export interface TrainerOptions {
  /** rows to train on instead of config.dataset */
  rows?: Row[];
  /** rows for evaluation during training instead of config.dataset's eval split */
  evalRows?: Row[];
  /** reward functions: objects or functions (the TS API), built-in names or "./file.ts#export"; default config.rewardFuncs */
  rewardFuncs?: RewardSpec[];
  /** a loaded model / tokenizer to use instead of config.model */
  model?: CausalLM;
  tokenizer?: Tokenizer;
  /** continue from the newest checkpoint in output_dir */
  resume?: boolean;
  /** no console output */
  quiet?: boolean;
  /** stop after this many optimiser steps in this call (for kill/resume tests) */
  stopAfter?: number;
  /** where console lines go (default process.stderr) */
  console?: LogOut;
}

/** A generation round in hand: its rollout, advantages, old / reference log-probs, and what it logs. */
interface Generation {
  ro: Rollout;
  adv: Advantages;
  /** [B*T] log-probs at generation time (when a later micro-batch may see moved weights), else null */
  old: Float32Array | null;
  /** [B*T] reference log-probs (beta > 0) */
  ref: Float32Array | null;
  /** a non-finite reward total or advantage: the steps that use this round make no update (guard.ts) */
  bad: NonFinite | null;
  /** micro-batches taken from it so far (of steps_per_generation × num_iterations) */
  used: number;
  /** its reward, length and sampling metrics */
  metrics: Metrics;
  /** prompt and completion tokens (tokens_per_second of the step that made it) */
  tokens: number;
  /** a step's tokens_per_second counted it */
  counted: boolean;
  /** its completions went to completions.jsonl */
  logged: boolean;
}

/** One micro-batch of an optimiser step: rows [b0, b1) of a generation. */
interface MicroBatch {
  gen: Generation;
  b0: number;
  b1: number;
}

export class GRPOTrainer {
  readonly opt: AdamW;
  state: TrainerState;
  private log: RunLog | null = null;
  /** the KL reference (adapter off, a kept reference adapter, or the frozen starting weights) */
  private reference!: Reference;
  private evalDuring: EvalDuringTraining | null = null;
  /** the generation round being consumed */
  private gen: Generation | null = null;
  /** the shuffled order of the epoch being drawn from */
  private order: { epoch: number; idx: Int32Array } | null = null;

  private constructor(
    readonly config: GRPOConfig,
    readonly model: CausalLM,
    readonly tokenizer: Tokenizer,
    readonly rows: Row[],
    readonly rewardFuncs: NamedReward[],
    private readonly opts: TrainerOptions,
    /** the worker threads of user rewards (null: every reward runs inline) */
    private readonly rewardPool: RewardPool | null = null,
    /** why some user rewards stay on the main thread, printed when training starts */
    private readonly rewardNotes: string[] = [],
  ) {
    const params = model.parameters();
    if (params.length === 0) throw new Error("GRPOTrainer: the model has no trainable parameters");
    this.opt = new AdamW(params, { lr: config.learningRate, beta1: config.adamBeta1, beta2: config.adamBeta2, eps: config.adamEpsilon, weightDecay: config.weightDecay });
    this.state = { global_step: 0, rounds: 0, prompts: 0, seed: config.seed, num_tokens: 0 };
  }

  static async create(input: GRPOConfigInput | GRPOConfig, opts: TrainerOptions = {}): Promise<GRPOTrainer> {
    const cfg = validateConfig(opts.rewardFuncs && !(input as GRPOConfigInput).rewardFuncs ? { ...input, rewardFuncs: opts.rewardFuncs } : input);
    checkRunDir(cfg.outputDir, { resume: opts.resume, overwrite: cfg.overwriteOutputDir }); // before any loading
    setDefaultDevice(cfg.device);
    const model = prepareForTraining(opts.model ?? loadForTraining(cfg), cfg);
    const tok = opts.tokenizer ?? loadConfigTokenizer(cfg);
    const rows = opts.rows ?? (await configRows(cfg));
    if (rows.length === 0) throw new Error("GRPOTrainer: the dataset is empty");
    const specs = opts.rewardFuncs ?? cfg.rewardFuncs ?? [];
    if (specs.length === 0 && cfg.environment === undefined) throw new Error("config: reward_funcs is required for GRPO (at least one reward function; or an environment that gives rewards)");
    const funcs = (await resolveRewards(specs as never, { maxCompletionLength: cfg.maxCompletionLength })) as NamedReward[];
    const placed = await placeRewards(funcs, { workers: cfg.rewardWorkers, groupSize: cfg.numGenerations });
    placed.pool?.start().catch(() => {}); // the workers load while the first rollout generates (a failure shows at the first call)
    const t = new GRPOTrainer(cfg, model, tok, rows, placed.rewards, opts, placed.pool, placed.notes);
    t.agent = await createAgent(cfg, tok, model.config.arch);
    // the KL reference: the same weights with the adapter off (LoRA), or under full fine-tuning a frozen copy of the
    // starting weights (as TRL keeps a ref_model), loaded again from the model folder in the policy's dtype
    const refModel = cfg.fullFinetune && cfg.beta > 0 ? CausalLM.load(cfg.model, { dtype: "f32", adapter: cfg.adapter, revision: cfg.revision }) : null;
    t.reference = new Reference(model, refModel, cfg.syncRefModel);
    if (cfg.evalStrategy === "steps") {
      if (!opts.evalRows && !cfg.dataset) throw new Error("config: eval_strategy steps needs eval rows: a dataset with an eval_split (or evalRows in the API)");
      t.evalDuring = new EvalDuringTraining(cfg, opts.evalRows ?? (await configRows(cfg, cfg.dataset!.evalSplit, cfg.dataset!.evalLimit)), t.totalSteps);
    }
    if (!opts.quiet) for (const w of configWarnings(cfg)) (opts.console ?? process.stderr).write(`aha: warning: ${w}\n`);
    return t;
  }
  /** the live dashboard's address while train() runs with report_to: dashboard */
  dashboardUrl: string | null = null;
  /** tools and/or an environment: rollouts are multi-turn episodes (src/agents) */
  agent: Agent | null = null;

  /** Micro-batches each generation round feeds (TRL's steps_per_generation; default gradient_accumulation_steps). */
  get stepsPerGeneration(): number {
    const c = this.config;
    return c.stepsPerGeneration ?? (c.generationBatchSize ? c.generationBatchSize / c.perDeviceTrainBatchSize : c.gradientAccumulationSteps);
  }

  /** Prompts per generation round. */
  get promptsPerRound(): number {
    const c = this.config;
    return (c.perDeviceTrainBatchSize * this.stepsPerGeneration) / c.numGenerations;
  }

  get totalSteps(): number {
    const c = this.config;
    if (c.maxSteps > 0) return c.maxSteps;
    const rounds = Math.ceil((c.numTrainEpochs * this.rows.length) / this.promptsPerRound);
    return Math.max(1, Math.ceil((rounds * this.stepsPerGeneration * c.numIterations) / c.gradientAccumulationSteps));
  }

  /**
   * Old log-probs are recorded at generation time unless every micro-batch of a round runs inside one optimiser step
   * (TRL: gradient_accumulation_steps % (steps_per_generation × num_iterations) == 0); else the ratio is 1 (on-policy).
   */
  get recordsOldLogprobs(): boolean {
    const c = this.config;
    return c.gradientAccumulationSteps % (this.stepsPerGeneration * c.numIterations) !== 0;
  }

  /** The next n prompts: consecutive positions of per-epoch seeded shuffles of the dataset (or its order). */
  private drawRows(n: number): Row[] {
    const N = this.rows.length, start = this.state.prompts ?? this.state.rounds * this.promptsPerRound;
    const out: Row[] = [];
    for (let i = 0; i < n; i++) {
      const pos = start + i, epoch = Math.floor(pos / N);
      if (this.config.shuffleDataset && this.order?.epoch !== epoch) this.order = { epoch, idx: epochOrder(N, mixSeed(this.config.seed, epoch)) };
      out.push(this.rows[this.config.shuffleDataset ? this.order!.idx[pos % N] : pos % N]);
    }
    this.state.prompts = start + n;
    return out;
  }

  /** Train to the configured number of steps; returns the metrics of every logged step. */
  async train(): Promise<Metrics[]> {
    const c = this.config;
    const total = this.totalSteps, GA = c.gradientAccumulationSteps, perRound = this.stepsPerGeneration * c.numIterations;
    if (c.saveSteps > 0 && (c.saveSteps * GA) % perRound !== 0)
      throw new Error(`save_steps (${c.saveSteps}) × gradient_accumulation_steps (${GA}) must be a multiple of steps_per_generation × num_iterations (${perRound}) so checkpoints fall between generation rounds`);
    const start = startRun(c.outputDir, { resume: this.opts.resume, overwrite: c.overwriteOutputDir });
    if (start.checkpoint) {
      this.state = loadCheckpoint(start.checkpoint, this.model, this.opt);
      this.reference.load(start.checkpoint);
      this.gen = null;
    }
    const log = (this.log = new RunLog(c.outputDir, total, this.opts.quiet, this.opts.console));
    log.open(this.state.global_step);
    for (const n of [...start.notes, ...this.rewardNotes]) log.note(n);
    const guard = new NonFiniteGuard(c.maxNonfiniteSteps);
    this.report = new RolloutReport(log, c.maxPromptLength);
    const dashboard = reportsToDashboard(c) ? await startDashboardWorker({ runs: [c.outputDir], port: c.dashboardPort }) : null;
    this.dashboardUrl = dashboard?.url ?? null;
    if (dashboard) log.note(`aha: dashboard at ${dashboard.url}`);
    const all: Metrics[] = [];
    let done = 0, claimed = false;
    try {
      if (this.state.global_step === 0 && this.evalDuring?.due(0)) {
        this.claimOutputDir(log);
        claimed = true;
        await this.evalDuring.run(0, this.model, this.tokenizer, this.rewardFuncs, log);
      }
      while (this.state.global_step < total && (this.opts.stopAfter === undefined || done < this.opts.stopAfter)) {
        const t0 = performance.now();
        const mbs: MicroBatch[] = [];
        for (let a = 0; a < GA; a++) mbs.push(await this.nextMicroBatch());
        const bad = mbs.find((x) => x.gen.bad)?.gen.bad ?? null;
        this.stepFinding = null;
        const m = bad ? { loss: null, grad_norm: null, learning_rate: this.learningRate(this.state.global_step, total) } : this.optimiserStep(mbs, total);
        const finding = bad ?? this.stepFinding;
        const skipped = guard.record(this.state.global_step + 1, finding);
        if (skipped) log.note(skipped);
        if (!claimed) this.claimOutputDir(log);
        claimed = true;
        this.state.global_step++;
        done++;
        const step = this.state.global_step;
        if (c.syncRefModel && step % c.refModelSyncSteps === 0) this.reference.sync(c.refModelMixupAlpha);
        const gens = [...new Set(mbs.map((x) => x.gen))], fresh = gens.filter((g) => !g.counted);
        for (const g of fresh) g.counted = true;
        const stepTime = (performance.now() - t0) / 1000;
        const metrics: Metrics = {
          step, ...m, ...averaged(gens.map((g) => g.metrics)), num_tokens: this.state.num_tokens, nonfinite: finding ? 1 : 0, step_time: stepTime,
          // tokens of the generation rounds made during this step, over its time (null when it made none)
          tokens_per_second: fresh.length ? fresh.reduce((a, g) => a + g.tokens, 0) / stepTime : null, ...this.memoryMetrics(),
        };
        if (step % c.loggingSteps === 0 || step === total || guard.stopped) {
          const unlogged = gens.filter((g) => !g.logged);
          for (const g of unlogged) g.logged = true;
          log.step(metrics, unlogged.flatMap((g) => sampleCompletions(g.ro, g.adv.advantages, step, c.logCompletions)), skippedNote(gens.flatMap((g) => g.ro.rewards.skipped)));
          this.plotRewards();
          all.push(metrics);
        }
        if (guard.stopped) throw guard.stopped;
        // evaluation before the checkpoint: a run resumed from checkpoint-N has the eval line of step N
        if (this.evalDuring?.due(step)) await this.evalDuring.run(step, this.model, this.tokenizer, this.rewardFuncs, log);
        if (c.saveSteps > 0 && step % c.saveSteps === 0)
          saveCheckpoint(c.outputDir, this.model, this.opt, this.state, c.model, c.saveTotalLimit, c.syncRefModel ? (d) => this.reference.save(d) : undefined);
      }
      this.report.end();
      if (this.state.global_step >= total) this.saveFinal();
    } finally {
      log.close();
      await dashboard?.stop();
      this.dashboardUrl = null;
      await this.rewardPool?.close();
    }
    return all;
  }

  /** <output_dir>/reward.svg from metrics.jsonl: the total reward and each function's. */
  private plotRewards(): void {
    const c = this.config;
    plotMetrics(this.log!.metricsPath, join(c.outputDir, "reward.svg"), { keys: ["reward", ...this.rewardFuncs.map((f) => `rewards/${f.name}/mean`)], title: `reward per step (${c.model.split("/").pop()})` });
  }

  /** Bytes the model's device holds now and at its high-water mark, and the process's resident memory, in GiB. */
  private memoryMetrics(): Metrics {
    const be = memory(this.model.embed.device), gib = 2 ** 30;
    return { "memory/allocated_gb": be.allocated / gib, "memory/peak_gb": be.peak / gib, "memory/rss_gb": process.memoryUsage.rss() / gib };
  }

  /** Set by optimiserStep: a non-finite loss or gradient norm (its update was skipped). */
  private stepFinding: NonFinite | null = null;
  /** the console notes of each rollout (reward problems, cut prompts) */
  private report: RolloutReport | null = null;

  /** Before this run's first step (or first evaluation): the output folder is now this run's (an overwritten run's files go, the logs start). */
  private claimOutputDir(log: RunLog): void {
    if (this.config.overwriteOutputDir) clearRun(this.config.outputDir);
    log.prepare();
    log.writeConfig(configForLog(this.config));
  }

  private learningRate(step: number, total: number): number {
    const c = this.config;
    const warmup = c.warmupSteps > 0 ? c.warmupSteps : Math.ceil(c.warmupRatio * total);
    return scheduledLr(c.learningRate, c.lrSchedulerType, step, total, warmup);
  }

  /** Write the trained adapter (or weights) to <output_dir>/final. */
  saveFinal(): string {
    const dir = join(this.config.outputDir, "final");
    if (!this.model.isFullFinetune) saveAdapter(this.model, dir, this.config.model);
    else saveFullModel(this.model, dir);
    return dir;
  }

  /** The next micro-batch, from the generation round in hand or a new one. */
  private async nextMicroBatch(): Promise<MicroBatch> {
    const spg = this.stepsPerGeneration, per = this.config.perDeviceTrainBatchSize;
    if (!this.gen || this.gen.used === spg * this.config.numIterations) this.gen = await this.generate();
    const k = this.gen.used++ % spg;
    return { gen: this.gen, b0: k * per, b1: (k + 1) * per };
  }

  /** A generation round: rollouts (with dynamic sampling, until the groups have spread), advantages, log-probs. */
  private async generate(): Promise<Generation> {
    const c = this.config, need = this.promptsPerRound;
    const draw = async (n: number) => {
      const rows = this.drawRows(n), k = this.state.rounds++;
      const ro = this.agent ? await agentRollout(this.model, this.tokenizer, rows, this.rewardFuncs, c, k, this.agent) : await rollout(this.model, this.tokenizer, rows, this.rewardFuncs, c, k);
      this.report?.rollout(this.state.global_step + 1, ro.rewards.errors, ro.promptCut ?? []);
      return ro;
    };
    let ro: Rollout, sampling: SamplingStats | null = null;
    if (c.dynamicSampling) {
      ({ ro, stats: sampling } = await sampleWithSpread(draw, (r) => computeAdvantages(r.rewards, c).spread, need, c.numGenerations, c.maxResampleRounds));
      if (sampling.exhausted) {
        const without = computeAdvantages(ro.rewards, c).spread.filter((x) => !x).length;
        this.log?.note(`aha: dynamic sampling: ${c.maxResampleRounds} extra rounds found ${need - without} of ${need} groups with reward spread; ` +
          `training on what it has (the other ${without} groups carry no policy gradient)`);
      }
    } else ro = await draw(need);
    const adv = computeAdvantages(ro.rewards, c);
    const bad = checkRollout(ro, adv.advantages, c.numGenerations, c.scaleRewards);
    const { old, ref } = bad ? { old: null, ref: null } : this.referenceLogprobs(ro.batch);
    const tokens = ro.promptIds.reduce((a, p) => a + p.length * c.numGenerations, 0) + ro.completionIds.reduce((a, x) => a + x.length, 0);
    this.state.num_tokens += tokens;
    const metrics: Metrics = {
      ...rewardMetrics(ro.rewards) as Metrics, reward_std: mean(adv.groupStd), frac_reward_zero_std: adv.fracZeroStd, ...lengthMetrics(ro), ...ro.metrics,
      ...(sampling ? {
        "dynamic_sampling/groups_dropped": sampling.groupsDropped, "dynamic_sampling/extra_rounds": sampling.extraRounds,
        "dynamic_sampling/groups_generated": sampling.groupsGenerated, "dynamic_sampling/exhausted": sampling.exhausted ? 1 : 0,
      } : {}),
    };
    return { ro, adv, old, ref, bad, used: 0, metrics, tokens, counted: false, logged: false };
  }

  private lossParams(numItems: number): LossParams {
    const c = this.config;
    return {
      lossType: c.lossType, importanceSamplingLevel: c.importanceSamplingLevel, epsilon: c.epsilon, epsilonHigh: c.epsilonHigh ?? c.epsilon,
      delta: c.delta, beta: c.beta, useBiasCorrectionKl: c.useBiasCorrectionKl, sapoTemperaturePos: c.sapoTemperaturePos,
      sapoTemperatureNeg: c.sapoTemperatureNeg, topEntropyQuantile: c.topEntropyQuantile, offPolicyMaskThreshold: c.offPolicyMaskThreshold,
      temperature: c.temperature, maxCompletionLength: c.maxCompletionLength, numItemsInBatch: numItems,
    };
  }

  /** Old log-probs (when a later micro-batch may see moved weights) and reference log-probs (beta > 0). */
  private referenceLogprobs(batch: CompletionBatch): { old: Float32Array | null; ref: Float32Array | null } {
    const c = this.config;
    const per = c.perDeviceTrainBatchSize;
    const pass = (base: boolean) => {
      const out = new Float32Array(batch.B * batch.T);
      for (let b0 = 0; b0 < batch.B; b0 += per) {
        const mb = sliceBatch(batch, b0, Math.min(batch.B, b0 + per));
        const run = (m: CausalLM) => noGrad(() => scope(() => completionLogprobs(m, mb, c.temperature).logp.f32()));
        out.set(base ? this.reference.run(run) : run(this.model), b0 * batch.T);
      }
      return out;
    };
    const savedDropout = this.model.dropout;
    this.model.dropout = 0;
    try {
      return { old: this.recordsOldLogprobs ? pass(false) : null, ref: c.beta > 0 ? pass(true) : null };
    } finally {
      this.model.dropout = savedDropout;
    }
  }

  private optimiserStep(mbs: MicroBatch[], total: number): Metrics {
    const c = this.config;
    // dapo / cispo: normalised by the completion tokens of the whole step (TRL: of the generation batch; the same
    // unless steps_per_generation differs from gradient_accumulation_steps, where TRL's scales the step's loss by their ratio)
    let numItems = 0;
    for (const { gen, b0, b1 } of mbs) for (const m of gen.ro.batch.completionMask.subarray(b0 * gen.ro.batch.T, b1 * gen.ro.batch.T)) numItems += m;
    const params = this.lossParams(numItems);
    const stats = new TokenStats({ lossType: c.lossType, sequence: c.importanceSamplingLevel === "sequence", epsLow: c.epsilon, epsHigh: c.epsilonHigh ?? c.epsilon, biasKl: c.useBiasCorrectionKl });
    let lossSum = 0;
    const pending: (() => void)[] = [];
    const step = this.state.global_step;
    this.model.dropoutRng = new Xoshiro(mixSeed(c.seed, step, 0xd0)).fn;
    // full-size micro-batches replay one captured graph (GraphedMicroBatches) when asked and possible: trainable
    // parameters in one flat storage
    const flat = flatOf(this.opt.params);
    const graphs = (c.graphs ?? graphsByDefault(this.model.embed.device)) && flat !== null;
    if (graphs) flat!.zeroGradsForAccumulation(); // every micro-batch (graphed or not) then adds its gradients
    let graphed: GraphedMicroBatches | null = null;
    // non-global losses are means per micro-batch: divide by the accumulation count (as TRL does)
    const accum = globalNormaliser(c.lossType) ? 1 : mbs.length;
    for (const { gen, b0, b1 } of mbs) {
      const batch = gen.ro.batch, T = batch.T;
      const mb = sliceBatch(batch, b0, b1);
      const o = gen.old?.subarray(b0 * T, b1 * T) ?? null, r = gen.ref?.subarray(b0 * T, b1 * T) ?? null;
      const advantages = gen.adv.advantages.subarray(b0, b1);
      const advTok = tokenAdvantages(advantages, mb.B, T);
      // the loss and token stats are read after the last micro-batch: a read here would make the host wait for this
      // micro-batch's backward before it could queue the next one
      let kept: { loss?: Tensor; lossValue?: number; logp: Tensor; entropy: Tensor };
      if (graphs && mb.B === c.perDeviceTrainBatchSize) {
        if (graphed && (graphed.P !== mb.P || graphed.T !== T)) { graphed.dispose(); graphed = null; } // a new round's shape
        graphed ??= new GraphedMicroBatches(this.model, mb.B, mb.P, T, c.temperature, kernelParams(params, r !== null), o !== null, r !== null);
        kept = graphed.run(mb, o, r, advTok, lossWeights(mb.completionMask, mb.B, T, { ...params, accumulation: accum }));
      } else {
        kept = scope(() => {
          const { loss, logp, entropy } = batchLoss(this.model, mb, o, r, advantages, { ...params, accumulation: accum });
          backward(loss);
          logp.node = entropy.node = null; // values only from here on
          return { lossValue: loss.item(), logp, entropy }; // (item() needs no device read)
        });
      }
      pending.push(() => {
        lossSum += kept.lossValue ?? kept.loss!.item();
        stats.add(kept.logp.f32(), kept.entropy.f32(), o, r, advTok, mb.completionMask, mb.B, T);
        for (const t of [kept.loss, kept.logp, kept.entropy]) t?.dispose();
      });
    }
    graphed?.dispose();
    for (const read of pending) read();
    const gradNorm = clipGradNorm(this.opt.params, c.maxGradNorm);
    const lr = this.learningRate(step, total);
    this.stepFinding = checkStep(lossSum, gradNorm, this.opt.params);
    if (!this.stepFinding) this.opt.update(lr);
    this.opt.zeroGrad();
    return { loss: lossSum, ...stats.metrics(mbs.some((x) => x.gen.ref !== null)), grad_norm: gradNorm, learning_rate: lr };
  }
}

/** The mean of each metric over several generations' metrics (one generation: its own). */
function averaged(ms: Metrics[]): Metrics {
  if (ms.length === 1) return ms[0];
  const out: Metrics = {};
  for (const k of Object.keys(ms[0])) {
    const vs = ms.map((m) => m[k]).filter((v): v is number => typeof v === "number");
    out[k] = vs.length ? vs.reduce((a, b) => a + b, 0) / vs.length : null;
  }
  return out;
}

/** Load config.model for training: f32 weights under full fine-tuning, else as stored (4-bit with load_in_4bit); the config's adapter if any. */
export function loadForTraining(cfg: GRPOConfig): CausalLM {
  return CausalLM.load(cfg.model, { dtype: cfg.fullFinetune ? "f32" : "auto", adapter: cfg.adapter, revision: cfg.revision, quantization: quantizationOf(cfg) });
}

/** The tokenizer of config.model, with the config's own chat template where `chat_template` is Jinja text or a file. */
export function loadConfigTokenizer(cfg: GRPOConfig): Tokenizer {
  const t = cfg.chatTemplate;
  let text: string | undefined;
  if (typeof t === "string") {
    if (isJinja(t)) text = t;
    else if (existsSync(t) && statSync(t).isFile()) text = readFileSync(t, "utf8");
    else throw new Error(`chat_template: "${t}" is neither Jinja text (it has no {{ or {%) nor a file (${resolve(t)} does not exist)`);
  }
  return loadTokenizer(cfg.model, { revision: cfg.revision, chatTemplate: text });
}

/** The 4-bit loading settings of a config (null without load_in_4bit). */
export function quantizationOf(cfg: GRPOConfig): Quant4Settings | null {
  if (!cfg.loadIn4bit) return null;
  return { type: cfg.bnb4bitQuantType, doubleQuant: cfg.bnb4bitUseDoubleQuant, computeDtype: dtypeFromTorch(cfg.bnb4bitComputeDtype)! };
}

/** Make a model trainable as the config says: every weight, or a LoRA adapter (a fresh one, PEFT init, if it has none). */
export function prepareForTraining(model: CausalLM, cfg: GRPOConfig): CausalLM {
  if (cfg.fullFinetune) model.trainAll();
  else if (!model.adapter) {
    const { r, loraAlpha, targetModules, loraDropout, useRslora } = cfg.lora;
    model.addAdapter({ r, lora_alpha: loraAlpha, target_modules: targetModules, lora_dropout: loraDropout, use_rslora: useRslora }, new Xoshiro(mixSeed(cfg.seed, 0x10a)).fn);
  }
  model.dropout = cfg.fullFinetune || cfg.disableDropout ? 0 : cfg.lora.loraDropout;
  model.gradientCheckpointing = cfg.gradientCheckpointing;
  return model;
}

/** The rows of a split of config.dataset (default its train split), prepared by its preset and cut to its limit. */
export async function configRows(cfg: GRPOConfig, split?: string, limit = cfg.dataset?.limit): Promise<Row[]> {
  if (!cfg.dataset) throw new Error("config: `dataset` is required (or pass rows to GRPOTrainer.create)");
  const { path, name, revision } = cfg.dataset;
  let rows = await loadDataset({ path, name, revision, split: split ?? cfg.dataset.split });
  if (cfg.dataset.preset) rows = applyPreset(cfg.dataset.preset, rows, {});
  return limit ? rows.slice(0, limit) : rows;
}

function epochOrder(n: number, seed: number): Int32Array {
  const rng = new Xoshiro(seed);
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

function lengthMetrics(ro: Rollout): Metrics {
  const lens = ro.completionIds.map((c) => c.length);
  return {
    "completions/mean_length": mean(lens),
    "completions/min_length": Math.min(...lens),
    "completions/max_length": Math.max(...lens),
    "completions/clipped_ratio": ro.truncated.filter(Boolean).length / lens.length,
  };
}

function sampleCompletions(ro: Rollout, adv: Float32Array, step: number, n: number): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const G = ro.texts.length / ro.rows.length;
  for (let i = 0; i < Math.min(n, ro.texts.length); i++) {
    const rewards: Record<string, number | null> = {};
    const details: Record<string, unknown> = {};
    for (const name of ro.rewards.names) {
      rewards[name] = ro.rewards.byName[name][i];
      const d = ro.rewards.details[name]?.samples?.[i];
      if (d) details[name] = d;
    }
    out.push({ step, prompt: ro.completionPrompts?.[i] ?? ro.prompts[Math.floor(i / G)], completion: ro.completions[i], rewards, reward: ro.rewards.total[i], advantage: adv[i], ...(Object.keys(details).length ? { details } : {}) });
  }
  return out;
}
