// A minimal parser of Qwen2.5/Qwen3-style tool calls for `aha serve`: `<tool_call>{"name": …, "arguments": {…}}
// </tool_call>` blocks in a completion's text become OpenAI tool_calls, the rest stays content.
// Is: the Qwen/Hermes format only (ChatML templates that render `tools`). Is not: the per-family parsers (Llama 3.1
// JSON and <|python_tag|>, Mistral [TOOL_CALLS], Phi-4-mini) that the agents work (src/tools/) brings; the server is
// to use those once they land. A block whose JSON does not parse, or has no name, stays in the content.

export const QWEN_TOOL_CALL_OPEN = "<tool_call>";

export interface ParsedToolCall {
  name: string;
  /** the arguments object (OpenAI sends it as a JSON string) */
  arguments: unknown;
}

export function parseQwenToolCalls(text: string): { content: string | null; calls: ParsedToolCall[] } {
  const calls: ParsedToolCall[] = [];
  const re = /<tool_call>\s*([\s\S]*?)\s*(?:<\/tool_call>|$)/g;
  const content = text.replace(re, (whole, json: string) => {
    try {
      const v = JSON.parse(json);
      if (v && typeof v === "object" && typeof v.name === "string") {
        calls.push({ name: v.name, arguments: v.arguments ?? v.parameters ?? {} });
        return "";
      }
    } catch { /* not a call: keep the text */ }
    return whole;
  }).trim();
  return { content: content || null, calls };
}
