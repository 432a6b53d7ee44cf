// Parsed tool calls as chat messages: the `tool_calls` field of an assistant message as chat templates and the OpenAI
// API take it ({id, type: "function", function: {name, arguments}}).
// Is: shapes and ids only. Ids are 9 letters and digits, the form Mistral's templates insist on (others take any).
import type { ToolCall } from "./parse.ts";

export interface TemplateToolCall {
  id: string;
  type: "function";
  function: ToolCall;
}

/** A 9-character id from a counter (deterministic, so the same rollout gives the same conversation). */
function callId(n: number): string {
  return n.toString(36).padStart(9, "0").slice(-9);
}

/** The calls of one assistant message; `first` numbers their ids (keep it unique within a conversation). */
export function toTemplateToolCalls(calls: ToolCall[], first = 0): TemplateToolCall[] {
  return calls.map((c, i) => ({ id: callId(first + i), type: "function", function: { name: c.name, arguments: c.arguments } }));
}
