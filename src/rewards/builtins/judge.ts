// LLM judges through an OpenAI-compatible endpoint (endpoint.ts): `judge` scores each completion on its own, and
// `judge_group` (RULER-style) shows the judge all completions of a prompt in one call and scores them against each
// other — G times fewer calls, and the ranking within a group that GRPO's advantages use.
// Is: a prompt template ({prompt}, {completion}, {answer}, any dataset column; {completions} in a group; {min},
// {max}; {{ and }} for literal braces), score parsing (a number in [min, max] → (score − min) / (max − min), or
// yes → 1 / no → 0), and per-sample failures for replies that cannot be parsed (the reward_errors policy decides).
// Is not: free of cost. A judge is one request per completion (judge) or per group (judge_group) per step, cached by
// request, so a repeated completion costs nothing.
import { RewardSampleErrors } from "../errors.ts";
import { endpoint, type EndpointOptions } from "../endpoint.ts";
import type { Message } from "../../tokenize/index.ts";
import { completionText, type NamedReward, type RewardArgs, type RewardValues } from "../types.ts";

export interface JudgeOptions extends EndpointOptions {
  /** The judge's prompt (see the header for placeholders). Default DEFAULT_JUDGE_PROMPT / DEFAULT_GROUP_PROMPT. */
  prompt?: string;
  /** A system message for the judge. Default none. */
  system?: string;
  /** Score range the prompt asks for. Default 0 and 10. */
  min?: number;
  max?: number;
  /** Sampling temperature of the judge. Default 0. */
  temperature?: number;
  /** Longest reply, in tokens. Default: the server's. */
  maxTokens?: number;
  name?: string;
}

export const DEFAULT_JUDGE_PROMPT = `Grade the response to the task below.

Task:
{prompt}

Response:
{completion}

How well does the response accomplish the task? Answer with a score from {min} (worst) to {max} (best), as "Score: N".`;

export const DEFAULT_GROUP_PROMPT = `Below is a task and {n} responses to it. Compare the responses with each other and score each from {min} (worst) to {max} (best): better responses get higher scores.

Task:
{prompt}

{completions}

Answer with JSON only: {{"scores": [score of response 1, score of response 2, …]}}`;

/** The prompt as text for a template: a string as is, messages as the last user message (the task). */
export function promptForJudge(p: string | Message[] | undefined): string {
  if (p === undefined) return "";
  if (typeof p === "string") return p;
  const user = [...p].reverse().find((m) => m.role === "user") ?? p[p.length - 1];
  return !user ? "" : typeof user.content === "string" ? user.content : JSON.stringify(user.content);
}

/** Fill {name} placeholders from `values`; {{ and }} are literal braces; an unknown name is an error naming it. */
export function fillTemplate(template: string, values: Record<string, unknown>, what = "prompt"): string {
  return template.replace(/\{\{|\}\}|\{(\w+)\}/g, (m, key: string | undefined) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    if (!(key! in values)) throw new Error(`${what}: no value for {${key}} (known: ${Object.keys(values).map((k) => `{${k}}`).join(", ")})`);
    const v = values[key!];
    return typeof v === "string" ? v : v === null || v === undefined ? "" : JSON.stringify(v);
  });
}

/** The template's values for sample i: every column, {prompt}, {completion}, {min}, {max}. */
function sampleValues(args: RewardArgs, i: number, min: number, max: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) if (k !== "prompts" && k !== "completions" && k !== "completionIds") out[k] = v[i];
  return { ...out, prompt: promptForJudge(args.prompts[i]), completion: completionText(args.completions[i]!), min, max };
}

/**
 * A score from a judge's reply, mapped to [0, 1]: "Score: N", "N/max", <score>N</score>, a reply that is one number,
 * or yes / no. Throws when there is none, or the number is outside [min, max].
 */
export function parseScore(reply: string, min = 0, max = 10): number {
  const text = reply.trim();
  const num = "(-?\\d+(?:\\.\\d+)?)";
  const patterns = [new RegExp(`<score>\\s*${num}\\s*</score>`, "i"), new RegExp(`\\bscore\\b[^\\d\\n-]{0,12}${num}`, "i"), new RegExp(`^${num}\\s*(?:/\\s*\\d+(?:\\.\\d+)?)?[.!]?$`)];
  for (const re of patterns) {
    const m = re.exec(text);
    if (m) return scale(Number(m[1]), min, max, reply);
  }
  const word = /^\W*(yes|no)\b/i.exec(text);
  if (word) return word[1]!.toLowerCase() === "yes" ? 1 : 0;
  throw new Error(`judge reply has no score: "${text.slice(0, 120)}"`);
}

function scale(v: number, min: number, max: number, reply: string): number {
  if (!(v >= min && v <= max)) throw new Error(`judge score ${v} is outside [${min}, ${max}] in "${reply.trim().slice(0, 120)}"`);
  return (v - min) / (max - min);
}

/** G scores from a group judge's reply: JSON {"scores": […]} or a bare […], else lines "1: 7" / "Response 1: 7". */
export function parseGroupScores(reply: string, g: number, min = 0, max = 10): number[] {
  const fromJson = (): unknown => {
    for (const m of reply.matchAll(/\{[\s\S]*\}|\[[\s\S]*\]/g)) {
      try {
        const v = JSON.parse(m[0]);
        return Array.isArray(v) ? v : (v as { scores?: unknown }).scores;
      } catch {
        /* not JSON: try lines */
      }
    }
    return undefined;
  };
  let scores = fromJson();
  if (!Array.isArray(scores)) {
    const byIndex = new Map<number, number>();
    for (const m of reply.matchAll(/^\W*(?:response\s*)?(\d+)\s*[:.)=-]\s*(?:score\s*[:=]?\s*)?(-?\d+(?:\.\d+)?)/gim)) byIndex.set(Number(m[1]), Number(m[2]));
    if (byIndex.size === g) scores = Array.from({ length: g }, (_, i) => byIndex.get(i + 1));
  }
  if (!Array.isArray(scores) || scores.length !== g || !scores.every((s) => typeof s === "number")) {
    throw new Error(`group judge reply does not hold ${g} scores: "${reply.trim().slice(0, 160)}"`);
  }
  return scores.map((s) => scale(s as number, min, max, reply));
}

function checkRange(min: number, max: number, type: string): void {
  if (!(Number.isFinite(min) && Number.isFinite(max) && max > min)) throw new Error(`${type}: needs min < max (got ${min}, ${max})`);
}

type ChatMessage = { role: "system" | "user"; content: string };
const messages = (system: string | undefined, user: string): ChatMessage[] => [...(system ? [{ role: "system" as const, content: system }] : []), { role: "user", content: user }];

/** A judge that scores each completion on its own (one request per completion, cached). */
export function judgeReward(opts: JudgeOptions): NamedReward {
  const { min = 0, max = 10, prompt = DEFAULT_JUDGE_PROMPT, system } = opts;
  checkRange(min, max, "judge");
  const ep = endpoint(opts);
  const name = opts.name ?? "judge";
  const scoreOne = async (args: RewardArgs, i: number): Promise<number> => {
    const text = fillTemplate(prompt, sampleValues(args, i, min, max), `${name} prompt`);
    return parseScore(await ep.chat(messages(system, text), { temperature: opts.temperature, maxTokens: opts.maxTokens }), min, max);
  };
  return { name, fn: (args) => settle(args.completions.map((_, i) => scoreOne(args, i))) };
}

/** Consecutive samples with the same prompt: the groups of a GRPO batch ([start, end) pairs). */
export function promptGroups(prompts: RewardArgs["prompts"]): [number, number][] {
  const out: [number, number][] = [];
  let key = "";
  prompts.forEach((p, i) => {
    const k = JSON.stringify(p);
    if (i === 0 || k !== key) out.push([i, i + 1]);
    else out[out.length - 1]![1] = i + 1;
    key = k;
  });
  return out;
}

/** RULER-style: one request per group of completions of the same prompt, scored relative to each other. */
export function judgeGroupReward(opts: JudgeOptions): NamedReward {
  const { min = 0, max = 10, prompt = DEFAULT_GROUP_PROMPT, system } = opts;
  checkRange(min, max, "judge_group");
  const ep = endpoint(opts);
  const name = opts.name ?? "judge_group";
  const fn = async (args: RewardArgs): Promise<RewardValues> => {
    const values: (number | null)[] = new Array(args.completions.length).fill(null);
    const failures: { index: number; message: string }[] = [];
    await Promise.all(promptGroups(args.prompts).map(async ([a, b]) => {
      const list = args.completions.slice(a, b).map((c, k) => `Response ${k + 1}:\n${completionText(c)}`).join("\n\n");
      try {
        const { completion: _one, ...values0 } = sampleValues(args, a, min, max); // {completion} is not a group's
        const text = fillTemplate(prompt, { ...values0, completions: list, n: b - a }, `${name} prompt`);
        const scores = parseGroupScores(await ep.chat(messages(system, text), { temperature: opts.temperature, maxTokens: opts.maxTokens }), b - a, min, max);
        scores.forEach((s, k) => (values[a + k] = s));
      } catch (e) {
        for (let i = a; i < b; i++) failures.push({ index: i, message: (e as Error).message });
      }
    }));
    if (failures.length) throw new RewardSampleErrors(values, failures);
    return values;
  };
  return { name, fn };
}

/** Await every sample's score; the failed ones become per-sample errors (RewardSampleErrors), the rest are kept. */
export async function settle(scores: Promise<number | null>[]): Promise<RewardValues> {
  const done = await Promise.allSettled(scores);
  const values = done.map((d) => (d.status === "fulfilled" ? d.value : null));
  const failures = done.flatMap((d, index) => (d.status === "rejected" ? [{ index, message: d.reason instanceof Error ? d.reason.message : String(d.reason) }] : []));
  if (failures.length) throw new RewardSampleErrors(values, failures);
  return values;
}
