// Tool-call parsers: read the tool calls out of an assistant turn's text, per model family.
// Is: one parser per output format, and `parseToolCalls(text, format)` giving the turn's text without the calls
// (`content`), the calls in the shape chat templates and the OpenAI API take ({name, arguments}), and the calls that
// were attempted but could not be read (`invalid`: what went wrong, so a rollout can answer the model with it).
//   hermes       Qwen2.5, Qwen3 (and Hermes-style templates): <tool_call>{"name": …, "arguments": {…}}</tool_call>, repeated
//   llama3_json  Llama 3.1+: a JSON object {"name": …, "parameters": {…}} as the turn (several joined by ";"), optionally
//                after <|python_tag|>; <|python_tag|>name.call(k="v", …) for the built-in tools
//   mistral      [TOOL_CALLS][{"name": …, "arguments": {…}}, …] (v3 tokenizers), or [TOOL_CALLS]name[ARGS]{…} (v11+)
//   phi4_mini    <|tool_call|>[{…}, …]<|/tool_call|> (an object or a list; the closing tag may be cut off), and the
//                functools[{…}] form some serving stacks prompt for
// The text must be decoded with special tokens kept (markers such as [TOOL_CALLS] and <|tool_call|> are special tokens).
// Is not: format detection (detect.ts) or tool execution (registry.ts). Hand-written because no maintained JS library
// parses these formats; the only general part is a balanced-bracket JSON scanner (`jsonAt`), kept here.
// Simplifies: streaming (partial) parsing is not offered; a call whose JSON is cut off is reported in `invalid`.

export type ToolCallFormat = "hermes" | "llama3_json" | "mistral" | "phi4_mini";
export const TOOL_CALL_FORMATS: readonly ToolCallFormat[] = ["hermes", "llama3_json", "mistral", "phi4_mini"];

/** One call, as chat templates render it (`tool_calls[i].function`) and the OpenAI API returns it (arguments as an object here). */
export interface ToolCall {
  name: string;
  arguments: Record<string, unknown>;
}

/** A call the model attempted but that could not be read. */
export interface InvalidToolCall {
  /** the call's text as written */
  text: string;
  /** what is wrong with it, in words meant for the model */
  error: string;
  /** the tool name, where it could be read */
  name?: string;
}

export interface ParsedTurn {
  /** the turn's text with the tool calls (and their markers) removed, trimmed */
  content: string;
  calls: ToolCall[];
  invalid: InvalidToolCall[];
}

/** Read the tool calls of an assistant turn written in `format`. */
export function parseToolCalls(text: string, format: ToolCallFormat): ParsedTurn {
  switch (format) {
    case "hermes": return parseHermes(text);
    case "llama3_json": return parseLlama3(text);
    case "mistral": return parseMistral(text);
    case "phi4_mini": return parsePhi4Mini(text);
    default: throw new Error(`unknown tool-call format "${format as string}"; known: ${TOOL_CALL_FORMATS.join(", ")}`);
  }
}

/**
 * The end (exclusive) of the JSON object or array that starts at text[start] ('{' or '['), found by matching brackets
 * outside strings; -1 when it is not closed.
 */
export function jsonAt(text: string, start: number): number {
  const open = text[start];
  if (open !== "{" && open !== "[") return -1;
  let depth = 0, inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** A call object {name, arguments | parameters} → ToolCall, or the reason it is not one. */
function toCall(v: unknown, text: string): ToolCall | InvalidToolCall {
  if (!v || typeof v !== "object" || Array.isArray(v)) return { text, error: "a tool call must be a JSON object with \"name\" and \"arguments\"" };
  const o = v as Record<string, unknown>;
  // OpenAI-shaped {type: "function", function: {name, arguments}} is accepted too
  const f = o.function && typeof o.function === "object" ? (o.function as Record<string, unknown>) : o;
  const name = f.name;
  if (typeof name !== "string" || name === "") return { text, error: "the tool call has no \"name\" string" };
  let args = f.arguments ?? f.parameters ?? {};
  if (typeof args === "string") {
    try {
      args = args.trim() === "" ? {} : JSON.parse(args);
    } catch {
      return { text, name, error: `the arguments of "${name}" are not valid JSON` };
    }
  }
  if (!args || typeof args !== "object" || Array.isArray(args)) return { text, name, error: `the arguments of "${name}" must be a JSON object` };
  return { name, arguments: args as Record<string, unknown> };
}

function isCall(c: ToolCall | InvalidToolCall): c is ToolCall {
  return !("error" in c);
}

/** Parse a JSON value (object: one call; array: several) into calls and invalid entries. */
function callsFromJson(json: string, out: ParsedTurn): void {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    out.invalid.push({ text: json, error: `the tool call is not valid JSON (${(e as Error).message})` });
    return;
  }
  for (const item of Array.isArray(v) ? v : [v]) {
    const c = toCall(item, Array.isArray(v) ? JSON.stringify(item) : json);
    if (isCall(c)) out.calls.push(c);
    else out.invalid.push(c);
  }
}

function finish(out: ParsedTurn, rest: string[]): ParsedTurn {
  out.content = rest.join("").trim();
  return out;
}

/** <tool_call> JSON </tool_call>, repeated; a last call may lack its closing tag (generation stopped at EOS). */
function parseHermes(text: string): ParsedTurn {
  const out: ParsedTurn = { content: "", calls: [], invalid: [] };
  const rest: string[] = [];
  let pos = 0;
  for (;;) {
    const open = text.indexOf("<tool_call>", pos);
    if (open < 0) { rest.push(text.slice(pos)); break; }
    rest.push(text.slice(pos, open));
    const bodyStart = open + "<tool_call>".length;
    const close = text.indexOf("</tool_call>", bodyStart);
    const body = text.slice(bodyStart, close < 0 ? text.length : close).trim();
    if (body !== "") callsFromJson(body, out);
    else out.invalid.push({ text: text.slice(open, close < 0 ? text.length : close + 12), error: "empty <tool_call>" });
    if (close < 0) break;
    pos = close + "</tool_call>".length;
  }
  return finish(out, rest);
}

/** Llama 3.1+: [<|python_tag|>] JSON object(s) separated by ";", or <|python_tag|>name.call(k="v", …). */
function parseLlama3(text: string): ParsedTurn {
  const out: ParsedTurn = { content: "", calls: [], invalid: [] };
  const tag = text.indexOf("<|python_tag|>");
  const before = tag >= 0 ? text.slice(0, tag) : "";
  let body = (tag >= 0 ? text.slice(tag + "<|python_tag|>".length) : text).replace(/<\|eom_id\|>|<\|eot_id\|>/g, "").trim();
  if (tag < 0 && !body.startsWith("{")) return { content: text.trim(), calls: [], invalid: [] };
  const builtin = /^([A-Za-z_][\w]*)\.call\(([\s\S]*)\)\s*$/.exec(body);
  if (builtin) {
    const args: Record<string, unknown> = {};
    for (const m of builtin[2].matchAll(/([A-Za-z_]\w*)\s*=\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,]+)/g)) {
      const v = m[2].trim();
      args[m[1]] = /^["']/.test(v) ? v.slice(1, -1) : Number.isFinite(Number(v)) ? Number(v) : v;
    }
    out.calls.push({ name: builtin[1], arguments: args });
    return finish(out, [before]);
  }
  if (tag >= 0 && !body.startsWith("{")) {
    // <|python_tag|> followed by code: the code interpreter (Llama 3.1's built-in tool)
    out.calls.push({ name: "code_interpreter", arguments: { code: body } });
    return finish(out, [before]);
  }
  const rest = [before];
  while (body.length > 0) {
    const end = jsonAt(body, 0);
    if (end < 0) { out.invalid.push({ text: body, error: "the tool call's JSON is not closed" }); break; }
    callsFromJson(body.slice(0, end), out);
    body = body.slice(end).trim();
    if (body.startsWith(";")) body = body.slice(1).trim();
    else if (body.length > 0) { rest.push(body); break; } // text after the call stays content
  }
  return finish(out, rest);
}

/** Mistral: [TOOL_CALLS] followed by a JSON list, or by name[ARGS]{json} (repeated, each after its own [TOOL_CALLS]). */
function parseMistral(text: string): ParsedTurn {
  const out: ParsedTurn = { content: "", calls: [], invalid: [] };
  const first = text.indexOf("[TOOL_CALLS]");
  if (first < 0) return { content: text.trim(), calls: [], invalid: [] };
  const rest = [text.slice(0, first)];
  const parts = text.slice(first).split("[TOOL_CALLS]").slice(1);
  for (const raw of parts) {
    const part = raw.replace(/<\/s>$/, "").trim();
    const args = part.indexOf("[ARGS]");
    if (args >= 0) {
      // v11+: name[ARGS]{…} (optionally name[CALL_ID]id[ARGS]{…})
      const name = part.slice(0, args).replace(/\[CALL_ID\][\s\S]*$/, "").trim();
      const json = part.slice(args + "[ARGS]".length).trim();
      const end = jsonAt(json, 0);
      if (end < 0) { out.invalid.push({ text: part, name, error: `the arguments of "${name}" are not a closed JSON object` }); continue; }
      const c = toCall({ name, arguments: safeJson(json.slice(0, end)) ?? json.slice(0, end) }, part);
      if (isCall(c)) out.calls.push(c);
      else out.invalid.push(c);
      if (json.slice(end).trim()) rest.push(json.slice(end));
      continue;
    }
    const end = jsonAt(part, 0);
    if (end < 0) { out.invalid.push({ text: part, error: "the tool calls after [TOOL_CALLS] are not a closed JSON list" }); continue; }
    callsFromJson(part.slice(0, end), out);
    if (part.slice(end).trim()) rest.push(part.slice(end));
  }
  return finish(out, rest);
}

/** Phi-4-mini: <|tool_call|>[…]<|/tool_call|> (closing tag optional at the end), or functools[…]. */
function parsePhi4Mini(text: string): ParsedTurn {
  const out: ParsedTurn = { content: "", calls: [], invalid: [] };
  const rest: string[] = [];
  let pos = 0;
  const re = /<\|tool_call\|>|functools(?=\[)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    rest.push(text.slice(pos, m.index));
    let i = m.index + m[0].length;
    while (i < text.length && /\s/.test(text[i])) i++;
    const end = jsonAt(text, i);
    if (end < 0) {
      out.invalid.push({ text: text.slice(m.index), error: "the tool call's JSON is not closed" });
      pos = text.length;
      break;
    }
    callsFromJson(text.slice(i, end), out);
    pos = end;
    const close = /^\s*<\|\/tool_call\|>/.exec(text.slice(pos));
    if (close) pos += close[0].length;
    re.lastIndex = pos;
  }
  if (pos < text.length) rest.push(text.slice(pos));
  return finish(out, rest);
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
