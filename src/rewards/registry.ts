// Reward registry and resolveReward: turn a config entry into a named reward function.
// Is: built-in names ("gsm8k/correctness", …), parameterised built-ins ({type: "length_penalty", target: 200, …},
// {type: code_tests | judge | judge_group | embedding_similarity | rubric | verifier, …}; YAML snake_case keys), and
// user files "./path/rewards.ts#exportName" (any of .ts .mts .cts .js .mjs .cjs, in any package type:
// modules/user-module.ts). A file's reward remembers where it came from (`file`), so that a worker thread can load it
// too (pool.ts). Is not: a sandbox — a user file runs with the trainer's full rights (code_tests is the sandbox for
// model-written code).
import { loadUserExport, looksLikeFile } from "../modules/user-module.ts";
import { gsm8k } from "./builtins/gsm8k.ts";
import { lengthPenalty } from "./builtins/length.ts";
import { overlongPenalty } from "./builtins/overlong.ts";
import { numericProximity } from "./builtins/numeric.ts";
import { regexReward } from "./builtins/regex.ts";
import { codeTests } from "./builtins/code-tests.ts";
import { judgeGroupReward, judgeReward } from "./builtins/judge.ts";
import { embeddingSimilarity } from "./builtins/embedding.ts";
import { rubricReward, type RubricItem } from "./builtins/rubric.ts";
import { fromVerifier, type Verifier } from "./builtins/verifier.ts";
import { bool, judgeOptions, num, str, endpointOptions, type Params } from "./params.ts";
import { isNamedReward, type NamedReward, type RewardInput, toNamedReward } from "./types.ts";

/** Built-in rewards by name. */
export const REWARD_REGISTRY: Record<string, NamedReward> = {
  "gsm8k/correctness": gsm8k.correctness,
  "gsm8k/int": gsm8k.int,
  "gsm8k/strict_format": gsm8k.strictFormat,
  "gsm8k/soft_format": gsm8k.softFormat,
  "gsm8k/xml_count": gsm8k.xmlCount,
  numeric_proximity: numericProximity(),
};

/** Parameterised built-ins, for object specs `{type, ...params}` (snake_case as in YAML). */
/** ctx: the config file's folder, and the run's max_completion_length (overlong_penalty's default max_length). */
export const REWARD_FACTORIES: Record<string, (p: Params, ctx: { baseDir: string; maxCompletionLength?: number }) => NamedReward | Promise<NamedReward>> = {
  numeric_proximity: (p) =>
    numericProximity({ maxReward: num(p, "max_reward", "numeric_proximity"), minScale: num(p, "min_scale", "numeric_proximity"), column: str(p, "column"), name: str(p, "name") }),
  regex: (p) => {
    const pattern = str(p, "pattern");
    if (!pattern) throw new Error(`reward "regex" needs "pattern" (a string)`);
    return regexReward(pattern, { reward: num(p, "reward", "regex"), otherwise: num(p, "otherwise", "regex"), name: str(p, "name") });
  },
  length_penalty: (p) => {
    const unit = str(p, "unit");
    if (unit !== undefined && unit !== "chars" && unit !== "tokens") throw new Error(`reward "length_penalty": unit must be "chars" or "tokens", got "${unit}"`);
    return lengthPenalty({ target: num(p, "target", "length_penalty", true)!, penaltyPer: num(p, "penalty_per", "length_penalty", true)!, unit, name: str(p, "name") });
  },
  overlong_penalty: (p, ctx) => {
    const maxLength = num(p, "max_length", "overlong_penalty") ?? ctx.maxCompletionLength;
    if (maxLength === undefined) throw new Error(`reward "overlong_penalty" needs "max_length" (the trainer fills it from max_completion_length)`);
    return overlongPenalty({ maxLength, bufferLength: num(p, "buffer_length", "overlong_penalty", true)!, penalty: num(p, "penalty", "overlong_penalty"), name: str(p, "name") });
  },
  code_tests: (p) => {
    const language = str(p, "language");
    if (language !== "python" && language !== "javascript") throw new Error(`reward "code_tests" needs "language": python or javascript (got ${JSON.stringify(p.language)})`);
    return codeTests({
      language, testsColumn: str(p, "tests_column"), timeoutMs: num(p, "timeout_ms", "code_tests"), memoryMb: num(p, "memory_mb", "code_tests"),
      partial: bool(p, "partial", "code_tests"), name: str(p, "name"),
    });
  },
  judge: (p) => judgeReward(judgeOptions(p, "judge")),
  judge_group: (p) => judgeGroupReward(judgeOptions(p, "judge_group")),
  embedding_similarity: (p) => embeddingSimilarity({ ...endpointOptions(p, "embedding_similarity"), column: str(p, "column"), name: str(p, "name") }),
  rubric: (p) => {
    if (!Array.isArray(p.items)) throw new Error(`reward "rubric" needs "items" (a list of {name, check, weight, …})`);
    return rubricReward({ items: p.items as RubricItem[], name: str(p, "name") });
  },
  verifier: async (p, ctx) => {
    const path = str(p, "path");
    if (!path) throw new Error(`reward "verifier" needs "path" ("./verify.ts#exportName": a function (prompt, completion, row) → true | false | null)`);
    const { value, exportName, where } = await importExport(path, ctx.baseDir);
    if (typeof value !== "function") throw new Error(`reward "verifier": ${where} is ${typeof value}, expected a function (prompt, completion, row) → true | false | null`);
    const name = str(p, "name") ?? (value.name && value.name !== "default" ? value.name : exportName);
    return fromVerifier(name, value as Verifier, { correct: num(p, "correct", "verifier"), incorrect: num(p, "incorrect", "verifier") });
  },
};

/** What a config may name: a built-in, a file export, a parameterised built-in, or a function. */
export type RewardSpec = string | { type: string; [param: string]: unknown } | RewardInput;

export interface ResolveRewardOptions {
  /** Folder that relative file paths are resolved against (the config file's folder). Default process.cwd(). */
  baseDir?: string;
  /** The run's max_completion_length (overlong_penalty's default max_length). */
  maxCompletionLength?: number;
}

/** Import `path#exportName` (default export when no #): the exported value, and where it came from for messages. */
async function importExport(spec: string, baseDir: string): Promise<{ value: unknown; exportName: string; path: string; where: string }> {
  const { value, ref } = await loadUserExport(spec, `reward "${spec}"`, baseDir);
  return { value, exportName: ref.name, path: ref.abs, where: `export "${ref.name}" of ${ref.abs}` };
}

/** Load `path#exportName` as a reward function (remembering where it came from, for the worker threads). */
async function loadFromFile(spec: string, baseDir: string): Promise<NamedReward> {
  const { value: v, exportName, path, where } = await importExport(spec, baseDir);
  const file = { path, export: exportName };
  if (isNamedReward(v)) return { ...v, file };
  if (typeof v === "function") return { name: v.name && v.name !== "default" ? v.name : exportName, fn: v as NamedReward["fn"], file };
  throw new Error(`reward "${spec}": ${where} is ${typeof v}, expected a reward function or {name, fn}`);
}

/** Rewards of the registry or made by a factory: they run inline (fast, trusted), never in a worker. */
const builtins = new WeakSet<NamedReward>(Object.values(REWARD_REGISTRY));
const builtin = (r: NamedReward): NamedReward => (builtins.add(r), r);
export const isBuiltinReward = (r: NamedReward): boolean => builtins.has(r);

/** Resolve one reward spec to {name, fn}. */
export async function resolveReward(spec: RewardSpec, opts: ResolveRewardOptions = {}): Promise<NamedReward> {
  if (typeof spec === "function" || isNamedReward(spec)) return toNamedReward(spec);
  if (typeof spec === "object" && spec !== null && typeof (spec as { type?: unknown }).type === "string") {
    const { type, ...params } = spec as { type: string; [k: string]: unknown };
    const f = REWARD_FACTORIES[type];
    if (!f) throw new Error(`unknown parameterised reward "${type}"; known: ${Object.keys(REWARD_FACTORIES).join(", ")}`);
    return builtin(await f(params, { baseDir: opts.baseDir ?? process.cwd(), maxCompletionLength: opts.maxCompletionLength }));
  }
  if (typeof spec !== "string") throw new Error(`reward spec must be a name, "file.ts#export", {type, ...} or a function; got ${JSON.stringify(spec)}`);
  if (REWARD_REGISTRY[spec]) return builtin(REWARD_REGISTRY[spec]);
  if (looksLikeFile(spec)) return loadFromFile(spec, opts.baseDir ?? process.cwd());
  throw new Error(`unknown reward "${spec}"; built-ins: ${Object.keys(REWARD_REGISTRY).join(", ")}; or give a file as ./rewards.ts#exportName`);
}

/** Resolve several specs (in order). */
export function resolveRewards(specs: RewardSpec[], opts: ResolveRewardOptions = {}): Promise<NamedReward[]> {
  return Promise.all(specs.map((s) => resolveReward(s, opts)));
}
