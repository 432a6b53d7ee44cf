// rubric: many small verifiable checks instead of one reward. Each item is a check with a weight; the reward is the
// weighted mean of the items' scores (Σ weight·score / Σ weight, in [0, 1] when every weight is positive), and each
// item is logged as its own metric (rewards/<rubric>/<item>/mean) and recorded per sample in completions.jsonl.
// Is: regex (pattern, flags), contains (text, or any / all of a list; case-insensitive unless case_sensitive),
// json_schema (the last ```json block, else the whole completion, parsed and validated by ajv), max_length (chars,
// or tokens from the completion's ids), judge (an LLM judge's score in [0, 1], as the judge reward). Each item may set
// `negate: true` (1 − score: "must not contain").
// Is not: a partial-credit grader inside a check (regex, contains, json_schema and max_length score 0 or 1).
import { Ajv, type ValidateFunction } from "ajv";
import { RewardSampleErrors } from "../errors.ts";
import { completionText, type NamedReward, type RewardArgs, type RewardValues, withDetails } from "../types.ts";
import { judgeReward } from "./judge.ts";
import { judgeOptions, type Params } from "../params.ts";

export type RubricCheck =
  | { check: "regex"; pattern: string; flags?: string }
  | { check: "contains"; text?: string; any?: string[]; all?: string[]; case_sensitive?: boolean }
  | { check: "json_schema"; schema: object }
  | { check: "max_length"; max: number; unit?: "chars" | "tokens" }
  | ({ check: "judge" } & Record<string, unknown>);

export type RubricItem = RubricCheck & { name: string; weight?: number; negate?: boolean };

export interface RubricOptions {
  items: RubricItem[];
  name?: string;
}

type ItemScorer = (args: RewardArgs) => Promise<(number | null)[]>;

/** The JSON a completion holds: its last ```json block (or last fenced block), else the whole text. */
export function extractJson(text: string): unknown {
  const blocks = [...text.matchAll(/```[ \t]*(json)?[^\n]*\n([\s\S]*?)```/gi)];
  const json = blocks.filter((b) => b[1]).pop() ?? blocks.pop();
  return JSON.parse((json ? json[2]! : text).trim());
}

const ajv = new Ajv({ allErrors: false, strict: false });

function scorer(item: RubricItem, rubric: string): ItemScorer {
  const where = `rubric "${rubric}" item "${item.name}"`;
  const each = (f: (c: string, i: number, args: RewardArgs) => boolean): ItemScorer => async (args) => args.completions.map((c, i) => (f(completionText(c), i, args) ? 1 : 0));
  switch (item.check) {
    case "regex": {
      if (typeof item.pattern !== "string") throw new Error(`${where}: regex needs "pattern" (a string)`);
      const re = new RegExp(item.pattern, (item.flags ?? "s").replace(/[gy]/g, ""));
      return each((c) => re.test(c));
    }
    case "contains": {
      const cs = item.case_sensitive === true;
      const norm = (s: string) => (cs ? s : s.toLowerCase());
      const all = item.all ?? (item.text !== undefined ? [item.text] : undefined);
      const any = item.any;
      if ((!all && !any) || ![...(all ?? []), ...(any ?? [])].every((s) => typeof s === "string")) throw new Error(`${where}: contains needs "text", "any" or "all" (strings)`);
      return each((c) => {
        const t = norm(c);
        return (!all || all.every((s) => t.includes(norm(s)))) && (!any || any.some((s) => t.includes(norm(s))));
      });
    }
    case "json_schema": {
      if (!item.schema || typeof item.schema !== "object") throw new Error(`${where}: json_schema needs "schema" (a JSON schema object)`);
      let validate: ValidateFunction;
      try {
        validate = ajv.compile(item.schema);
      } catch (e) {
        throw new Error(`${where}: invalid JSON schema (${(e as Error).message})`);
      }
      return each((c) => {
        let v: unknown;
        try {
          v = extractJson(c);
        } catch {
          return false;
        }
        return validate(v) === true;
      });
    }
    case "max_length": {
      if (typeof item.max !== "number" || !(item.max >= 0)) throw new Error(`${where}: max_length needs "max" (a number ≥ 0)`);
      const unit = item.unit ?? "chars";
      if (unit !== "chars" && unit !== "tokens") throw new Error(`${where}: unit must be "chars" or "tokens", got "${unit}"`);
      return each((c, i, args) => (unit === "chars" ? [...c].length : (args.completionIds[i]?.length ?? 0)) <= item.max);
    }
    case "judge": {
      const judge = judgeReward({ ...judgeOptions(item as Params, `${rubric}/${item.name}`), name: `${rubric}/${item.name}` });
      return async (args) => (await judge.fn(args)) as (number | null)[];
    }
    default:
      throw new Error(`${where}: unknown check "${(item as { check?: unknown }).check}" (regex, contains, json_schema, max_length, judge)`);
  }
}

export function rubricReward(opts: RubricOptions): NamedReward {
  const name = opts.name ?? "rubric";
  if (!Array.isArray(opts.items) || opts.items.length === 0) throw new Error(`rubric "${name}" needs "items" (a list of checks)`);
  const seen = new Set<string>();
  const items = opts.items.map((item, k) => {
    if (!item || typeof item.name !== "string" || !item.name) throw new Error(`rubric "${name}": item ${k} needs a "name"`);
    if (seen.has(item.name)) throw new Error(`rubric "${name}": two items are named "${item.name}"`);
    seen.add(item.name);
    const weight = item.weight ?? 1;
    if (!Number.isFinite(weight)) throw new Error(`rubric "${name}" item "${item.name}": weight must be a number`);
    return { name: item.name, weight, negate: item.negate === true, score: scorer(item, name) };
  });
  const totalWeight = items.reduce((a, it) => a + Math.abs(it.weight), 0);
  if (totalWeight === 0) throw new Error(`rubric "${name}": the weights add up to 0`);
  const fn = async (args: RewardArgs): Promise<RewardValues> => {
    const n = args.completions.length;
    const failures: { index: number; message: string }[] = [];
    const parts: Record<string, (number | null)[]> = {};
    await Promise.all(items.map(async (it) => {
      let scores: (number | null)[];
      try {
        scores = await it.score(args);
      } catch (e) {
        if (!(e instanceof RewardSampleErrors)) throw e;
        scores = e.values;
        for (const f of e.failures) failures.push({ index: f.index, message: `item "${it.name}": ${f.message}` });
      }
      parts[it.name] = scores.map((s) => (s === null ? null : it.negate ? 1 - s : s));
    }));
    const values = Array.from({ length: n }, (_, i) => {
      let sum = 0, w = 0;
      for (const it of items) {
        const s = parts[it.name]![i];
        if (s === null || s === undefined) continue;
        sum += it.weight * s;
        w += Math.abs(it.weight);
      }
      return w === 0 ? null : sum / w;
    });
    const samples = values.map((_, i) => ({ items: Object.fromEntries(items.map((it) => [it.name, parts[it.name]![i] ?? null])) }));
    const out = withDetails(values, { parts, samples });
    if (failures.length) throw new RewardSampleErrors(out, failures);
    return out;
  };
  return { name, fn };
}
