// Reward problems: what went wrong, in which reward function, on which sample — never a silent zero.
// Is: the problem record, its message, and RewardError (thrown in onError "stop" mode).
import type { Message } from "../tokenize/index.ts";

export type RewardProblemKind = "threw" | "timeout" | "not_an_array" | "wrong_length" | "not_a_number";

export interface RewardProblem {
  /** Name of the reward function. */
  reward: string;
  kind: RewardProblemKind;
  /** Sample index in the batch; null when the whole call failed (every sample is affected). */
  index: number | null;
  /** Excerpts of the offending sample (of sample 0 when index is null). */
  prompt: string;
  completion: string;
  /** The offending returned value (for not_a_number / not_an_array / wrong_length). */
  value?: unknown;
  /** What went wrong, on one line ("threw Error: …", "timed out after 100 ms"). */
  detail: string;
  /** Full message: reward, problem, sample and excerpts. */
  message: string;
}

/**
 * One line per distinct problem of a batch, for the console ("reward \"x\" threw on samples 1, 3: Error: …"):
 * problems of the same reward, kind and first message line are listed once with their sample indices.
 */
export function problemLines(problems: RewardProblem[]): string[] {
  const groups = new Map<string, { p: RewardProblem; at: (number | null)[] }>();
  for (const p of problems) {
    const key = `${p.reward}\u0000${p.kind}\u0000${p.detail}`;
    const g = groups.get(key) ?? groups.set(key, { p, at: [] }).get(key)!;
    g.at.push(p.index);
  }
  return [...groups.values()].map(({ p, at }) => {
    const where = at.includes(null) ? "on the whole batch" : `on sample${at.length > 1 ? "s" : ""} ${at.join(", ")}`;
    return `reward "${p.reward}" ${p.kind} ${where}: ${p.detail}`;
  });
}

/** A reward call that ran past reward_timeout_ms. */
export class RewardTimeout extends Error {
  constructor(ms: number, why = `timed out after ${ms} ms`) {
    super(why);
    this.name = "RewardTimeout";
  }
}

export class RewardError extends Error {
  constructor(readonly problem: RewardProblem, readonly problems: RewardProblem[] = [problem]) {
    super(problem.message);
    this.name = "RewardError";
  }
}

/**
 * Thrown by a reward that scored some samples and failed on others (a judge's unparseable reply): the runner keeps
 * `values` and reports each failure on its own sample, under the reward_errors policy, without calling again.
 */
export class RewardSampleErrors extends Error {
  constructor(readonly values: (number | null)[], readonly failures: { index: number; message: string }[]) {
    super(failures.map((f) => `sample ${f.index}: ${f.message}`).join("; "));
    this.name = "RewardSampleErrors";
  }
}

/** Start…end of a long text, on one line. */
export function excerpt(text: string, max = 160): string {
  const flat = text.replace(/\n/g, "\\n");
  if (flat.length <= max) return flat;
  const half = Math.floor((max - 5) / 2);
  return `${flat.slice(0, half)} … ${flat.slice(flat.length - half)}`;
}

export function promptText(p: string | Message[] | undefined): string {
  if (p === undefined) return "";
  if (typeof p === "string") return p;
  return p.map((m) => `${m.role}: ${typeof m.content === "string" ? m.content : JSON.stringify(m.content)}`).join(" | ");
}

export function makeProblem(
  reward: string,
  kind: RewardProblemKind,
  detail: string,
  index: number | null,
  prompt: string | Message[] | undefined,
  completion: string | Message[] | undefined,
  value?: unknown,
): RewardProblem {
  const p = excerpt(promptText(prompt));
  const c = excerpt(promptText(completion));
  const where = index === null ? "on the whole batch" : `on sample ${index}`;
  const message = `reward "${reward}" ${detail} ${where}${index === null ? " (sample 0 shown)" : ""}\n  prompt: "${p}"\n  completion: "${c}"`;
  return { reward, kind, index, prompt: p, completion: c, ...(value !== undefined ? { value } : {}), detail: detail.split("\n")[0], message };
}
