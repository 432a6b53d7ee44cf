// Reading a YAML reward entry's parameters (snake_case keys): typed getters whose errors name the reward and key, and
// the endpoint and judge keys shared by judge, judge_group, embedding_similarity and a rubric's judge items.
import type { EndpointOptions } from "./endpoint.ts";
import type { JudgeOptions } from "./builtins/judge.ts";

export type Params = Record<string, unknown>;

export function num(p: Params, key: string, type: string, required = false): number | undefined {
  const v = p[key];
  if (v === undefined) {
    if (required) throw new Error(`reward "${type}" needs "${key}" (a number)`);
    return undefined;
  }
  if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`reward "${type}": "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

export function str(p: Params, key: string): string | undefined {
  const v = p[key];
  return typeof v === "string" ? v : undefined;
}

export function bool(p: Params, key: string, type: string): boolean | undefined {
  const v = p[key];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw new Error(`reward "${type}": "${key}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** The endpoint keys shared by judge, judge_group, embedding_similarity (and a rubric's judge items). */
export function endpointOptions(p: Params, type: string): EndpointOptions {
  const model = str(p, "model");
  if (!model) throw new Error(`reward "${type}" needs "model" (the endpoint's model name)`);
  return {
    model, baseUrl: str(p, "base_url"), apiKeyEnv: str(p, "api_key_env"), concurrency: num(p, "concurrency", type), maxRetries: num(p, "max_retries", type),
    timeoutMs: num(p, "timeout_ms", type), cache: bool(p, "cache", type),
  };
}

export function judgeOptions(p: Params, type: string): JudgeOptions {
  return {
    ...endpointOptions(p, type), prompt: str(p, "prompt"), system: str(p, "system"), min: num(p, "min", type), max: num(p, "max", type),
    temperature: num(p, "temperature", type), maxTokens: num(p, "max_tokens", type), name: str(p, "name"),
  };
}
