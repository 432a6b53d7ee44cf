// The reward contract (TRL's): a function gets the batch — prompts, completions, completion ids and every other
// dataset column as a list — and returns one number per completion, or null where it does not apply.
// Is: types only. Is not: the runner (compute.ts) or any reward.
import type { Message } from "../tokenize/index.ts";

/** Everything a reward function sees for a batch of N completions; every list has length N. */
export interface RewardArgs {
  /** The prompt of each completion as the dataset gave it: a string, or the messages (system prompt applied). */
  prompts: (string | Message[])[];
  /**
   * What was generated: the text (decoded without special tokens) for a standard prompt; for a conversational prompt
   * (a list of messages) the messages that follow it, as TRL passes them: `[{role: "assistant", content}]`, and with
   * tools or an environment the whole trajectory (assistant turns with their `tool_calls`, `tool` results, the
   * environment's messages). `completionText` gives the final answer's text either way.
   */
  completions: Completion[];
  /** The generated token ids (EOS excluded). */
  completionIds: number[][];
  /** Every other dataset column, one value per completion (e.g. `answer`). */
  [column: string]: unknown[];
}

/** A completion as rewards see it: its text, or (conversational data) the messages generated after the prompt. */
export type Completion = string | Message[];

/** The text of a completion: the string itself, or the content of its last assistant message ("" if none). */
export function completionText(c: Completion): string {
  if (typeof c === "string") return c;
  for (let i = c.length - 1; i >= 0; i--) if (c[i].role === "assistant") return typeof c[i].content === "string" ? (c[i].content as string) : "";
  return "";
}

/** One reward per completion; null = this function does not apply to that sample (ignored in the weighted sum). */
export type RewardValues = (number | null)[];

/** What the runner passes beside the batch: `signal` aborts at reward_timeout_ms (an async function may stop early). */
export interface RewardCallContext {
  signal: AbortSignal;
  timeoutMs: number;
}

/**
 * Marks a RewardFunc that applies ctx.timeoutMs itself (rejecting with RewardTimeout), counted from when it starts
 * running rather than from the call: a call waiting for a free (or restarting) worker thread is not yet timed.
 */
export const TIMES_ITSELF = Symbol("aha.rewardTimesItself");

export type RewardFunc = (args: RewardArgs, ctx?: RewardCallContext) => RewardValues | Promise<RewardValues>;

/**
 * What a reward may say beside its values (attach with withDetails): per-sample records, sub-scores and counts.
 * The runner keeps them in RewardResult.details; the trainer writes `samples` to completions.jsonl and `parts` /
 * `counts` to the metrics.
 */
export interface RewardDetails {
  /** One record per completion (null where none), written to completions.jsonl under `details.<reward>`. */
  samples?: (Record<string, unknown> | null)[];
  /** Sub-scores per completion, logged as `rewards/<reward>/<part>/mean` (a rubric's items). */
  parts?: Record<string, (number | null)[]>;
  /** Counts over the batch, logged as `rewards/<reward>/<key>` (code_tests' outcomes). */
  counts?: Record<string, number>;
}

const DETAILS = Symbol.for("aha.rewardDetails");

/** Attach details to a reward's values (a hidden property: the values stay a plain array of numbers and nulls). */
export function withDetails(values: RewardValues, details: RewardDetails): RewardValues {
  Object.defineProperty(values, DETAILS, { value: details, enumerable: false });
  return values;
}

/** The details a reward attached to what it returned, if any. */
export function detailsOf(values: unknown): RewardDetails | undefined {
  return Array.isArray(values) ? ((values as unknown as Record<symbol, RewardDetails | undefined>)[DETAILS]) : undefined;
}

/** A reward function with the name used in metrics (`rewards/<name>/mean`) and error messages. */
export interface NamedReward {
  name: string;
  fn: RewardFunc;
  /** the module file and export it was loaded from ("./rewards.ts#name" specs): a worker thread loads it from there */
  file?: { path: string; export: string };
}

/** Either form is accepted; a plain function is named by its `.name` (const arrow functions have one). */
export type RewardInput = RewardFunc | NamedReward;

export function isNamedReward(r: unknown): r is NamedReward {
  return typeof r === "object" && r !== null && typeof (r as NamedReward).fn === "function" && typeof (r as NamedReward).name === "string";
}

/** Normalise to {name, fn}; unnamed functions get `reward_<index>`. */
export function toNamedReward(r: RewardInput, index = 0): NamedReward {
  if (isNamedReward(r)) return r;
  if (typeof r === "function") return { name: r.name && r.name !== "default" ? r.name : `reward_${index}`, fn: r };
  throw new TypeError(`reward function #${index} is neither a function nor {name, fn}: ${String(r)}`);
}
