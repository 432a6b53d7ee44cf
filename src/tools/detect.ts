// Which tool-call format a model writes, read from its chat template, and whether the template can render a
// tool-calling conversation at all.
// Is: `toolTemplateProblem` (TRL's supports_tool_calling probe: a user → assistant with tool_calls → tool conversation
// must render with the call's name, argument and the tool's result all in the text) and `detectToolCallFormat`
// (the markers the template writes: <tool_call>, [TOOL_CALLS], <|tool_call|>, <|python_tag|> / "parameters"), with
// the model family (config.json model_type) as a tie-breaker. Is not: parsing (parse.ts).
// Simplifies: a template that renders tool calls in a format none of the parsers reads gets an error asking for
// `tool_call_format`; there is no generic fallback parser.
import type { Tokenizer } from "../tokenize/index.ts";
import { TOOL_CALL_FORMATS, type ToolCallFormat } from "./parse.ts";

export class ToolTemplateError extends Error {}

const NAME = "tool_name_a8f3e2b1", KEY = "tool_arg_key_b9d4f5c2", VAL = "tool_arg_val_d6e7a9f3", RESULT = "tool_content_c4f9a8e2";

/** What TRL's probe renders (with a 9-character id, as Mistral templates require). */
function probeMessages() {
  return [
    { role: "user", content: "hi" },
    { role: "assistant", content: "", tool_calls: [{ id: "a1b2c3d4e", type: "function", function: { name: NAME, arguments: { [KEY]: VAL } } }] },
    { role: "tool", name: NAME, tool_call_id: "a1b2c3d4e", content: RESULT },
  ];
}

/**
 * Null when the tokenizer's chat template renders a whole tool-calling exchange; otherwise why not, in words that say
 * what to change.
 */
export function toolTemplateProblem(tok: Tokenizer, kwargs: Record<string, unknown> = {}): string | null {
  if (!tok.hasChatTemplate) return `the tokenizer of ${tok.source} has no chat template; tools need one that renders tool calls (set chat_template)`;
  let text: string;
  try {
    text = tok.applyChatTemplate(probeMessages(), { tools: [probeTool()], kwargs });
  } catch (e) {
    return `the chat template of ${tok.source} cannot render a tool-calling conversation (user → assistant with tool_calls → tool): ${(e as Error).message}`;
  }
  const lost = [[NAME, "the tool call's name"], [KEY, "its arguments"], [VAL, "its arguments"], [RESULT, "the tool's result"]]
    .filter(([s]) => !text.includes(s)).map(([, what]) => what);
  if (lost.length === 0) return null;
  return `the chat template of ${tok.source} has no tool support: it drops ${[...new Set(lost)].join(" and ")} when rendering a tool-calling ` +
    "conversation; give a chat template that renders tool calls (the model must have been trained for tool use)";
}

function probeTool() {
  return { type: "function", function: { name: NAME, description: "probe", parameters: { type: "object", properties: { [KEY]: { type: "string" } } } } };
}

/** Model families (config.json model_type) and the format their instruct templates use. */
const FAMILY_FORMAT: Record<string, ToolCallFormat> = {
  qwen2: "hermes", qwen3: "hermes", qwen2_moe: "hermes", qwen3_moe: "hermes",
  llama: "llama3_json", mistral: "mistral", mixtral: "mistral", phi3: "phi4_mini",
};

/**
 * The tool-call format of a chat template, from the markers it writes; `modelType` (config.json's model_type) decides
 * only when the template shows none. Throws a ToolTemplateError when neither tells.
 */
export function detectToolCallFormat(template: string, modelType?: string): ToolCallFormat {
  const found: ToolCallFormat[] = [];
  if (template.includes("<tool_call>")) found.push("hermes");
  if (template.includes("[TOOL_CALLS]")) found.push("mistral");
  if (template.includes("<|tool_call|>") || template.includes("functools[")) found.push("phi4_mini");
  if (template.includes("<|python_tag|>") || (/"parameters": /.test(template) && template.includes("ipython"))) found.push("llama3_json");
  if (found.length === 1) return found[0];
  const family = modelType ? FAMILY_FORMAT[modelType] : undefined;
  if (family && (found.length === 0 || found.includes(family))) return family;
  throw new ToolTemplateError(found.length === 0
    ? `cannot tell which tool-call format this chat template uses (none of <tool_call>, [TOOL_CALLS], <|tool_call|>, <|python_tag|> appears); set tool_call_format to one of ${TOOL_CALL_FORMATS.join(", ")}`
    : `this chat template shows the markers of several tool-call formats (${found.join(", ")}); set tool_call_format to one of them`);
}

/**
 * The format to parse a model's tool calls with: `override` when given, else detected from the template. Checks
 * first that the template renders tool calls at all (toolTemplateProblem), and throws a ToolTemplateError if not.
 */
export function toolCallFormatFor(tok: Tokenizer, opts: { override?: ToolCallFormat; modelType?: string; kwargs?: Record<string, unknown> } = {}): ToolCallFormat {
  const problem = toolTemplateProblem(tok, opts.kwargs);
  if (problem) throw new ToolTemplateError(problem);
  if (opts.override) {
    if (!TOOL_CALL_FORMATS.includes(opts.override)) throw new ToolTemplateError(`tool_call_format "${opts.override}" is not one of ${TOOL_CALL_FORMATS.join(", ")}`);
    return opts.override;
  }
  return detectToolCallFormat(tok.chatTemplateText({ tools: [probeTool()] }), opts.modelType);
}
