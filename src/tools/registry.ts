// Tools a model may call in a rollout: TypeScript functions with a JSON schema (or a zod schema) of their parameters.
// Is: the Tool type, `resolveTools` (objects from the TS API, or "./tools.ts#tools" loaded by modules/user-module.ts as reward
// files are), `toolSchemas` (what the chat template's `tools` argument gets: OpenAI's {type: "function", function:
// {name, description, parameters}}) and `runToolCall` (arguments checked, the function awaited under a timeout, any
// failure turned into an error message for the model). Is not: a sandbox — a tool runs with the trainer's rights, and
// a synchronous tool that never returns blocks the process (the timeout only cuts async work).
// Simplifies: arguments are checked against a zod schema fully, against a JSON schema only for required keys and the
// JSON types of declared properties.
import { loadUserExport } from "../modules/user-module.ts";
import { z } from "zod";
import type { ToolCall } from "./parse.ts";

/** A JSON schema of an object's properties (the `parameters` of an OpenAI function). */
export type JsonSchema = Record<string, unknown>;

export interface Tool {
  /** the name the model calls it by (letters, digits, _ and -) */
  name: string;
  /** what it does, shown to the model */
  description?: string;
  /** its parameters: a JSON schema of an object, or a zod object schema */
  parameters: JsonSchema | z.ZodType;
  /** does the work; a string result goes to the model as is, anything else as JSON. May be async. */
  execute: (args: Record<string, unknown>) => unknown;
}

/** What a tools file may export: a list of tools, or an object of them by name (the key is then the name). */
export type ToolsInput = Tool[] | Record<string, Omit<Tool, "name"> & { name?: string }>;

const isZod = (s: unknown): s is z.ZodType => !!s && typeof s === "object" && typeof (s as z.ZodType).safeParse === "function";

/** Check a list of tools (or an object of them by name) and return it as a list. `where` names the source in errors. */
export function checkTools(input: unknown, where = "tools"): Tool[] {
  let list: unknown[];
  if (Array.isArray(input)) list = input;
  else if (input && typeof input === "object") list = Object.entries(input as Record<string, object>).map(([name, t]) => ({ name, ...t }));
  else throw new Error(`${where}: expected a list of tools or an object of tools by name, got ${typeof input}`);
  const seen = new Set<string>();
  return list.map((t, i) => {
    const o = t as Partial<Tool>;
    const at = `${where}[${typeof o?.name === "string" ? JSON.stringify(o.name) : i}]`;
    if (!o || typeof o !== "object") throw new Error(`${at}: a tool must be an object {name, description, parameters, execute}`);
    if (typeof o.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(o.name)) throw new Error(`${at}: "name" must be 1–64 letters, digits, _ or -`);
    if (seen.has(o.name)) throw new Error(`${at}: two tools are named "${o.name}"`);
    seen.add(o.name);
    if (typeof o.execute !== "function") throw new Error(`${at}: "execute" must be a function`);
    if (!o.parameters || typeof o.parameters !== "object") throw new Error(`${at}: "parameters" must be a JSON schema of an object or a zod schema`);
    if (!isZod(o.parameters) && (o.parameters as JsonSchema).type !== "object") throw new Error(`${at}: "parameters" must be a JSON schema with type "object"`);
    return o as Tool;
  });
}

/** Load "./file.ts#exportName" (default export without #), relative to baseDir. */
export async function loadTools(spec: string, baseDir = process.cwd()): Promise<Tool[]> {
  return checkTools((await loadUserExport(spec, `tools "${spec}"`, baseDir)).value, `tools "${spec}"`);
}

/** Tools from a config value: a "file.ts#export" string, or tools (TS API). */
export async function resolveTools(spec: string | ToolsInput, baseDir?: string): Promise<Tool[]> {
  return typeof spec === "string" ? loadTools(spec, baseDir) : checkTools(spec);
}

/** The JSON schema of a tool's parameters (zod schemas converted). */
export function parameterSchema(t: Tool): JsonSchema {
  if (!isZod(t.parameters)) return t.parameters;
  const { $schema: _s, ...schema } = z.toJSONSchema(t.parameters) as JsonSchema;
  return schema;
}

/** What the chat template's `tools` argument gets (transformers' get_json_schema shape). */
export function toolSchemas(tools: Tool[]): { type: "function"; function: { name: string; description: string; parameters: JsonSchema } }[] {
  return tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description ?? "", parameters: parameterSchema(t) } }));
}

/** The result of one call: the text that goes back to the model, and whether it is an error. */
export interface ToolResult {
  name: string;
  content: string;
  error: boolean;
}

const JSON_TYPES: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === "string",
  number: (v) => typeof v === "number",
  integer: (v) => Number.isInteger(v),
  boolean: (v) => typeof v === "boolean",
  array: Array.isArray,
  object: (v) => !!v && typeof v === "object" && !Array.isArray(v),
  null: (v) => v === null,
};

/** Why these arguments do not fit the tool's parameters, or null. */
function argumentProblem(t: Tool, args: Record<string, unknown>): string | null {
  if (isZod(t.parameters)) {
    const r = t.parameters.safeParse(args);
    return r.success ? null : r.error.issues.map((i) => `${i.path.join(".") || "arguments"}: ${i.message}`).join("; ");
  }
  const s = t.parameters as { required?: string[]; properties?: Record<string, { type?: string | string[] }> };
  for (const k of s.required ?? []) if (!(k in args)) return `missing required argument "${k}"`;
  for (const [k, v] of Object.entries(args)) {
    const type = s.properties?.[k]?.type;
    if (type === undefined) continue;
    if (!(Array.isArray(type) ? type : [type]).some((ty) => JSON_TYPES[ty]?.(v) ?? true)) return `argument "${k}" must be of type ${JSON.stringify(type)}`;
  }
  return null;
}

/** Run one call: look the tool up, check its arguments, await it under `timeoutMs`. Never throws. */
export async function runToolCall(call: ToolCall, tools: Tool[], timeoutMs: number): Promise<ToolResult> {
  const fail = (msg: string): ToolResult => ({ name: call.name, content: JSON.stringify({ error: msg }), error: true });
  const t = tools.find((x) => x.name === call.name);
  if (!t) return fail(`unknown tool "${call.name}"; tools: ${tools.map((x) => x.name).join(", ")}`);
  const problem = argumentProblem(t, call.arguments);
  if (problem) return fail(`${call.name}: ${problem}`);
  let timer: NodeJS.Timeout | undefined;
  try {
    const result = await Promise.race([
      Promise.resolve().then(() => t.execute(call.arguments)),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs); }),
    ]);
    return { name: call.name, content: typeof result === "string" ? result : JSON.stringify(result) ?? "null", error: false };
  } catch (e) {
    return fail(`${call.name}: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    clearTimeout(timer);
  }
}
