// Reward registry and resolveReward: turn a config entry into a named reward function.
// Is: built-in names ("gsm8k/correctness", …), parameterised built-ins ({type: "length_penalty", target: 200, …}, YAML
// snake_case keys), and user files "./path/rewards.ts#exportName" (any of .ts .mts .cts .js .mjs .cjs, in any package
// type: modules/user-module.ts). Is not: a sandbox — a user file runs with the trainer's full rights.
import { loadUserExport, looksLikeFile } from "../modules/user-module.ts";
import { gsm8k } from "./builtins/gsm8k.ts";
import { lengthPenalty } from "./builtins/length.ts";
import { numericProximity } from "./builtins/numeric.ts";
import { regexReward } from "./builtins/regex.ts";
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

type Params = Record<string, unknown>;

function num(p: Params, key: string, type: string, required = false): number | undefined {
  const v = p[key];
  if (v === undefined) {
    if (required) throw new Error(`reward "${type}" needs "${key}" (a number)`);
    return undefined;
  }
  if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`reward "${type}": "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function str(p: Params, key: string): string | undefined {
  const v = p[key];
  return typeof v === "string" ? v : undefined;
}

/** Parameterised built-ins, for object specs `{type, ...params}` (snake_case as in YAML). */
export const REWARD_FACTORIES: Record<string, (p: Params) => NamedReward> = {
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
};

/** What a config may name: a built-in, a file export, a parameterised built-in, or a function. */
export type RewardSpec = string | { type: string; [param: string]: unknown } | RewardInput;

export interface ResolveRewardOptions {
  /** Folder that relative file paths are resolved against (the config file's folder). Default process.cwd(). */
  baseDir?: string;
}

/** Load `path#exportName` (default export when no #). */
async function loadFromFile(spec: string, baseDir: string | undefined): Promise<NamedReward> {
  const { value: v, ref } = await loadUserExport(spec, `reward "${spec}"`, baseDir);
  if (isNamedReward(v)) return v;
  if (typeof v === "function") return { name: v.name && v.name !== "default" ? v.name : ref.name, fn: v as NamedReward["fn"] };
  throw new Error(`reward "${spec}": export "${ref.name}" of ${ref.abs} is ${typeof v}, expected a reward function or {name, fn}`);
}

/** Resolve one reward spec to {name, fn}. */
export async function resolveReward(spec: RewardSpec, opts: ResolveRewardOptions = {}): Promise<NamedReward> {
  if (typeof spec === "function" || isNamedReward(spec)) return toNamedReward(spec);
  if (typeof spec === "object" && spec !== null && typeof (spec as { type?: unknown }).type === "string") {
    const { type, ...params } = spec as { type: string; [k: string]: unknown };
    const f = REWARD_FACTORIES[type];
    if (!f) throw new Error(`unknown parameterised reward "${type}"; known: ${Object.keys(REWARD_FACTORIES).join(", ")}`);
    return f(params);
  }
  if (typeof spec !== "string") throw new Error(`reward spec must be a name, "file.ts#export", {type, ...} or a function; got ${JSON.stringify(spec)}`);
  const builtin = REWARD_REGISTRY[spec];
  if (builtin) return builtin;
  if (looksLikeFile(spec)) return loadFromFile(spec, opts.baseDir);
  throw new Error(`unknown reward "${spec}"; built-ins: ${Object.keys(REWARD_REGISTRY).join(", ")}; or give a file as ./rewards.ts#exportName`);
}

/** Resolve several specs (in order). */
export function resolveRewards(specs: RewardSpec[], opts: ResolveRewardOptions = {}): Promise<NamedReward[]> {
  return Promise.all(specs.map((s) => resolveReward(s, opts)));
}
