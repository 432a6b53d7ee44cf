// computeRewards: run every reward function on a batch, concurrently, and combine them as TRL does.
// Is: the runner — per-call timeout, validation of what each function returns, the weighted sum over functions
// (nulls ignored), and problem reporting ("stop" throws a RewardError, "skip" marks samples for the trainer to drop).
// Is not: a sandbox, nor where a function runs — a function wrapped by placeRewards (pool.ts) runs in a worker thread,
// which the timeout terminates (cutting a synchronous loop); an inline synchronous function that never returns
// blocks the process, and a timed-out inline async call keeps running in the background (its result is ignored; its
// `signal` is aborted).
// Differs from TRL on purpose: a sample where every function returned null gets NaN (TRL's nansum gives 0) and is
// listed in `allNull`, so it is never trained on as a silent zero.
import { makeProblem, RewardError, RewardSampleErrors, RewardTimeout, type RewardProblem } from "./errors.ts";
import { detailsOf, type NamedReward, type RewardArgs, type RewardDetails, type RewardInput, type RewardValues, TIMES_ITSELF, toNamedReward } from "./types.ts";

export interface ComputeRewardsOptions {
  /** Limit for one call of one reward function, in ms. Default 60000. */
  timeoutMs?: number;
  /**
   * "stop" (default): throw a RewardError naming the function and sample at the first problem.
   * "skip": mark the affected samples `skipped` (total NaN), record the problem in `errors`, carry on.
   */
  onError?: "skip" | "stop";
  /**
   * When a call throws, call the function again one sample at a time to find the sample(s) at fault and keep the
   * others' values. Default true; set false for functions with side effects (paid judges) or batch-dependent values.
   */
  isolateErrors?: boolean;
}

export interface RewardResult {
  /** Function names, in the order given (duplicates get a `_2`, `_3` suffix). */
  names: string[];
  /** perFunc[f][i]: reward of function f for completion i; null = not applicable or failed (see skipped). */
  perFunc: RewardValues[];
  /** Same data keyed by name. */
  byName: Record<string, RewardValues>;
  /** Σ_f weight_f · reward_f over non-null rewards; NaN where skipped or where every function returned null. */
  total: number[];
  /** true where a function failed on that sample (onError "skip"): drop it from the batch. */
  skipped: boolean[];
  /** Samples where every function returned null (total NaN). */
  allNull: number[];
  /** Every problem met (onError "skip"). */
  errors: RewardProblem[];
  /** What each function attached to its values (withDetails), by name; absent for functions that attached none. */
  details: Record<string, RewardDetails>;
}

/** Call fn on args, turning sync throws into rejections, with a deadline that also aborts the call's signal. */
function call(fn: NamedReward["fn"], args: RewardArgs, ms: number): Promise<unknown> {
  const abort = new AbortController();
  let p: Promise<unknown>;
  try {
    p = Promise.resolve(fn({ ...args }, { signal: abort.signal, timeoutMs: ms }));
  } catch (e) {
    p = Promise.reject(e);
  }
  if ((fn as { [TIMES_ITSELF]?: boolean })[TIMES_ITSELF]) return p; // a worker-pool call: timed from when it runs
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new RewardTimeout(ms));
      abort.abort();
    }, ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

function sliceArgs(args: RewardArgs, n: number, i: number): RewardArgs {
  const out: Record<string, unknown[]> = {};
  for (const [k, v] of Object.entries(args)) out[k] = Array.isArray(v) && v.length === n ? [v[i]] : v;
  return out as RewardArgs;
}

function describe(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v.slice(0, 40));
  if (v === undefined) return "undefined";
  try {
    return JSON.stringify(v)?.slice(0, 60) ?? String(v);
  } catch {
    return String(v);
  }
}

interface Outcome {
  values: RewardValues;
  problems: RewardProblem[];
  details?: RewardDetails;
}

/** Check one returned list; bad entries become problems and null values. */
function validate(name: string, out: unknown, args: RewardArgs, n: number, offset: (i: number) => number): Outcome {
  const at = (i: number) => offset(i);
  if (!Array.isArray(out)) {
    return { values: new Array(n).fill(null), problems: [makeProblem(name, "not_an_array", `returned ${describe(out)} instead of an array of numbers`, n === 1 ? at(0) : null, args.prompts[0], args.completions[0], out)] };
  }
  if (out.length !== n) {
    return { values: new Array(n).fill(null), problems: [makeProblem(name, "wrong_length", `returned ${out.length} values for ${n} completions`, n === 1 ? at(0) : null, args.prompts[0], args.completions[0], out.length)] };
  }
  const values: RewardValues = [];
  const problems: RewardProblem[] = [];
  out.forEach((v, i) => {
    if (v === null) values.push(null);
    else if (typeof v === "number" && Number.isFinite(v)) values.push(v);
    else {
      values.push(null);
      problems.push(makeProblem(name, "not_a_number", `returned ${describe(v)} (not a finite number or null)`, at(i), args.prompts[i], args.completions[i], v));
    }
  });
  return { values, problems };
}

async function runOne(r: NamedReward, args: RewardArgs, n: number, opts: Required<ComputeRewardsOptions>): Promise<Outcome> {
  try {
    const out = await call(r.fn, args, opts.timeoutMs);
    return { ...validate(r.name, out, args, n, (i) => i), details: detailsOf(out) };
  } catch (e) {
    if (e instanceof RewardTimeout) {
      return { values: new Array(n).fill(null), problems: [makeProblem(r.name, "timeout", e.message, null, args.prompts[0], args.completions[0])] };
    }
    if (e instanceof RewardSampleErrors && e.values.length === n) {
      const problems = e.failures.map((f) => makeProblem(r.name, "threw", f.message, f.index, args.prompts[f.index], args.completions[f.index]));
      return { values: e.values.map((v, i) => (e.failures.some((f) => f.index === i) ? null : v)), problems, details: detailsOf(e.values) };
    }
    const msg = `threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
    if (!opts.isolateErrors || n === 1) {
      return { values: new Array(n).fill(null), problems: [makeProblem(r.name, "threw", msg, n === 1 ? 0 : null, args.prompts[0], args.completions[0])] };
    }
    // Find the sample(s) at fault.
    const singles = await Promise.all(
      Array.from({ length: n }, async (_, i): Promise<Outcome> => {
        const one = sliceArgs(args, n, i);
        try {
          return validate(r.name, await call(r.fn, one, opts.timeoutMs), one, 1, () => i);
        } catch (e2) {
          const kind = e2 instanceof RewardTimeout ? "timeout" : "threw";
          const m = e2 instanceof RewardTimeout ? e2.message : `threw ${e2 instanceof Error ? `${e2.name}: ${e2.message}` : String(e2)}`;
          return { values: [null], problems: [makeProblem(r.name, kind, m, i, args.prompts[i], args.completions[i])] };
        }
      }),
    );
    const problems = singles.flatMap((s) => s.problems);
    if (problems.length === 0) {
      // Only the batch call fails: report it as a whole-batch problem.
      return { values: new Array(n).fill(null), problems: [makeProblem(r.name, "threw", msg, null, args.prompts[0], args.completions[0])] };
    }
    return { values: singles.map((s) => s.values[0]!), problems };
  }
}

/** Check the batch: every list the same length as completions. */
function checkBatch(batch: RewardArgs): number {
  const n = batch.completions?.length;
  if (!Array.isArray(batch.completions)) throw new TypeError("reward batch: completions must be an array of strings");
  for (const [k, v] of Object.entries(batch)) {
    if (!Array.isArray(v)) throw new TypeError(`reward batch: column "${k}" must be an array (one value per completion)`);
    if (v.length !== n) throw new TypeError(`reward batch: column "${k}" has ${v.length} values for ${n} completions`);
  }
  return n;
}

/** Run reward functions on a batch and combine them (TRL: Σ over functions of weight × reward, nulls ignored). */
export async function computeRewards(
  funcs: RewardInput[],
  weights: number[] | undefined,
  batch: RewardArgs,
  options: ComputeRewardsOptions = {},
): Promise<RewardResult> {
  const opts: Required<ComputeRewardsOptions> = { timeoutMs: 60_000, onError: "stop", isolateErrors: true, ...options };
  const named = funcs.map(toNamedReward);
  const seen = new Map<string, number>();
  const names = named.map((r) => {
    const k = (seen.get(r.name) ?? 0) + 1;
    seen.set(r.name, k);
    return k === 1 ? r.name : `${r.name}_${k}`;
  });
  const w = weights ?? named.map(() => 1);
  if (w.length !== named.length) throw new Error(`reward_weights has ${w.length} entries for ${named.length} reward functions`);
  w.forEach((x, i) => {
    if (!Number.isFinite(x)) throw new Error(`reward_weights[${i}] (${names[i]}) is ${x}; weights must be finite numbers`);
  });
  const n = checkBatch(batch);

  const outcomes = await Promise.all(named.map((r, f) => runOne({ name: names[f]!, fn: r.fn }, batch, n, opts)));
  const errors = outcomes.flatMap((o) => o.problems);
  if (errors.length > 0 && opts.onError === "stop") throw new RewardError(errors[0]!, errors);

  const skipped = new Array<boolean>(n).fill(false);
  for (const p of errors) {
    if (p.index === null) skipped.fill(true);
    else skipped[p.index] = true;
  }
  const perFunc = outcomes.map((o) => o.values);
  const total: number[] = [];
  const allNull: number[] = [];
  for (let i = 0; i < n; i++) {
    if (skipped[i]) {
      total.push(NaN);
      continue;
    }
    let sum = 0;
    let any = false;
    perFunc.forEach((vals, f) => {
      const v = vals[i];
      if (v !== null && v !== undefined) {
        sum += w[f]! * v;
        any = true;
      }
    });
    if (!any) allNull.push(i);
    total.push(any ? sum : NaN);
  }
  const byName: Record<string, RewardValues> = {};
  const details: Record<string, RewardDetails> = {};
  names.forEach((nm, f) => {
    byName[nm] = perFunc[f]!;
    if (outcomes[f]!.details) details[nm] = outcomes[f]!.details!;
  });
  return { names, perFunc, byName, total, skipped, allNull, errors, details };
}
