// Public API of src/tools: tool-call parsing per model family, format detection from chat templates, and the tools
// a model may call (definitions, schemas for the template, execution). Used by the agent rollout (src/agents) and the
// server (`tools` → `tool_calls`).
export { parseToolCalls, jsonAt, TOOL_CALL_FORMATS, type ToolCall, type ToolCallFormat, type ParsedTurn, type InvalidToolCall } from "./parse.ts";
export { detectToolCallFormat, toolCallFormatFor, toolTemplateProblem, ToolTemplateError } from "./detect.ts";
export { checkTools, loadTools, resolveTools, toolSchemas, parameterSchema, runToolCall, type Tool, type ToolsInput, type ToolResult, type JsonSchema } from "./registry.ts";
export { toTemplateToolCalls, type TemplateToolCall } from "./messages.ts";
