// Environments: whatever answers the model without being a tool — games, simulated users, graders that talk back.
// Is: the contract (`create(row)` gives an episode: `reset()` → the messages to start from; `step(assistantMessage)`
// → the messages that answer it, whether the episode is done, and optionally a reward), and its loader
// ("./env.ts#create", as reward and tool files load). Is not: the loop that drives it (rollout.ts).
// Simplifies: one environment instance per completion (episodes never share state), created and reset before the
// episode's first turn.
import { loadUserExport } from "../modules/user-module.ts";
import type { Message } from "../tokenize/index.ts";
import type { Row } from "../data/index.ts";

/** The model's turn as the environment sees it: its text, and its tool calls when it made some. */
export interface AssistantMessage extends Message {
  role: "assistant";
  content: string;
}

export interface StepResult {
  /** messages that answer the model (e.g. a user turn); appended to the conversation before its next turn */
  messages?: Message[];
  /** true: the episode is over (the model takes no more turns) */
  done: boolean;
  /** a reward for this step; an episode's rewards are summed into the reward named "environment" */
  reward?: number;
}

export interface Environment {
  /** the conversation to start from (the prompt); null or undefined: the row's own prompt */
  reset(): Message[] | null | undefined | Promise<Message[] | null | undefined>;
  step(message: AssistantMessage): StepResult | Promise<StepResult>;
}

/** Makes one episode's environment for a dataset row. */
export type EnvironmentFactory = (row: Row) => Environment | Promise<Environment>;

/** Load "./file.ts#exportName" (default export without #), relative to baseDir. */
export async function loadEnvironment(spec: string, baseDir = process.cwd()): Promise<EnvironmentFactory> {
  const { value: f, ref } = await loadUserExport(spec, `environment "${spec}"`, baseDir);
  if (typeof f !== "function") throw new Error(`environment "${spec}": export "${ref.name}" of ${ref.abs} is ${typeof f}; expected a function create(row) → {reset, step}`);
  return f as EnvironmentFactory;
}

/** Create and check one episode's environment. */
export async function openEnvironment(create: EnvironmentFactory, row: Row, where: string): Promise<Environment> {
  const env = await create(row);
  if (!env || typeof env.reset !== "function" || typeof env.step !== "function") throw new Error(`environment (${where}): create(row) must return an object with reset() and step(message)`);
  return env;
}

/** Check what step() returned. */
export function checkStep(r: unknown, where: string): StepResult {
  const o = r as StepResult;
  if (!o || typeof o !== "object" || typeof o.done !== "boolean") throw new Error(`environment (${where}): step() must return {messages?, done: boolean, reward?}, got ${JSON.stringify(r)?.slice(0, 80)}`);
  if (o.messages !== undefined && (!Array.isArray(o.messages) || o.messages.some((m) => !m || typeof m.role !== "string")))
    throw new Error(`environment (${where}): step().messages must be a list of {role, content} messages`);
  if (o.reward !== undefined && !Number.isFinite(o.reward)) throw new Error(`environment (${where}): step().reward must be a finite number, got ${o.reward}`);
  if (!o.done && !(o.messages && o.messages.length)) throw new Error(`environment (${where}): step() returned done: false without messages to answer the model with`);
  return o;
}
