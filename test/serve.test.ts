// `aha serve` against the official openai client (6.49): chat, completions, streaming, n > 1, adapters by name,
// tools, embeddings and every error, on a fixture model. Oracles: generate() one request at a time (continuous
// batching must give the same tokens for the same seeds), `aha generate` for a greedy answer, the unstreamed answer
// for a streamed one, a full forward for log-probs and embeddings.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, basename } from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { fixtureModels } from "./fixtures.ts";
import { spawnServe } from "./serve-process.ts";
import { CausalLM } from "../src/models/model.ts";
import { loadTokenizer, type Tokenizer } from "../src/tokenize/index.ts";
import { generate } from "../src/generate/generate.ts";
import { noGrad, scope } from "../src/engine/index.ts";
import { startServer, type RunningServer } from "../src/serve/server.ts";
import { validateConfig } from "../src/grpo/config.ts";
import { prepareForTraining } from "../src/grpo/trainer.ts";
import { sft } from "../src/grpo/sft.ts";
import { saveFullModel } from "../src/grpo/checkpoint.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = join(root, "bin", "aha.js");
const dir = fixtureModels().find((d) => existsSync(join(d, "adapter")) && existsSync(join(d, "chat_template.jinja")))!;
const name = basename(dir);
const tmp = mkdtempSync(join(tmpdir(), "aha-serve-"));
const KEY = "sk-test-key";

let srv: RunningServer;
let client: OpenAI;
let model: CausalLM, lora: CausalLM, tok: Tokenizer;

before(async () => {
  model = CausalLM.load(dir);
  lora = CausalLM.load(dir, { adapter: join(dir, "adapter") });
  tok = loadTokenizer(dir);
  srv = await startServer({ model: dir, adapters: { lora: join(dir, "adapter") }, port: 0, apiKey: KEY, maxBatch: 8, loaded: { model, tokenizer: tok } });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY, maxRetries: 0 });
});
after(async () => {
  await srv?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const user = (content: string) => [{ role: "user" as const, content }];
const chatIds = (content: string) => tok.encodeChat(user(content), { addGenerationPrompt: true });
/** generate() for one prompt alone, decoded as the server decodes (EOS dropped) */
const alone = (m: CausalLM, ids: number[], o: { n?: number; temperature: number; seed?: number; maxTokens: number }) =>
  generate(m, [ids], { ...o, stopTokenIds: tok.eosTokenIds }).map((c) => ({ ids: c.tokenIds, text: tok.decode(c.tokenIds, { skipSpecialTokens: true }), finish: c.finishReason }));

test(`serve (${name}): /v1/models lists the base model and the adapter; /health answers without a key`, async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [name, "lora"]);
  assert.equal(((await client.models.retrieve("lora")) as unknown as { parent: string }).parent, name);
  const h = await fetch(`${srv.url}/health`);
  assert.equal(h.status, 200);
  assert.equal((await h.json()).status, "ok");
});

test(`serve (${name}): a greedy chat answer is the one \`aha generate\` gives for the prompt`, async () => {
  const prompt = "Tell me about the sea.";
  const r = await client.chat.completions.create({ model: name, messages: user(prompt), temperature: 0, max_tokens: 24 });
  const cli = spawnSync(process.execPath, [bin, "generate", "--model", dir, "--prompt", prompt, "--temperature", "0", "--max-tokens", "24", "--json"], { encoding: "utf8" });
  assert.equal(cli.status, 0, cli.stderr);
  const want = JSON.parse(cli.stdout.trim());
  assert.equal(r.choices[0].message.content, want.text);
  assert.equal(r.usage!.completion_tokens, want.token_ids.length);
  assert.equal(r.usage!.prompt_tokens, chatIds(prompt).length);
  assert.equal(r.choices[0].finish_reason, want.finish_reason);
});

test(`serve (${name}): a streamed answer equals the unstreamed one (greedy and seeded sampling, n = 2)`, async () => {
  for (const opts of [{ temperature: 0, n: 1 }, { temperature: 1, n: 2, seed: 11 }]) {
    const body = { model: name, messages: user("Count to ten."), max_tokens: 30, ...opts };
    const plain = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    const text = ["", ""], finish: (string | null)[] = [null, null];
    let usage: OpenAI.CompletionUsage | undefined, role = 0;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        if (c.delta.role) role++;
        text[c.index] += c.delta.content ?? "";
        if (c.finish_reason) finish[c.index] = c.finish_reason;
      }
    }
    assert.equal(role, opts.n);
    plain.choices.forEach((c, i) => {
      assert.equal(text[i], c.message.content, `choice ${i}`);
      assert.equal(finish[i], c.finish_reason);
    });
    assert.deepEqual(usage, plain.usage);
  }
});

test(`serve (${name}): n > 1 with a seed gives generate()'s n completions; concurrent requests share steps and still match`, async () => {
  const prompts = ["Hello there", "What is 2 + 2?", "Write a haiku", "Name three colours", "Why is the sky blue?"];
  const before = { ...srv.scheduler.stats };
  const res = await Promise.all(prompts.map((p, k) => client.chat.completions.create({ model: name, messages: user(p), n: 1 + (k % 3), seed: 100 + k, temperature: 1, max_tokens: 12 + 4 * k })));
  const stepsUsed = srv.scheduler.stats.steps - before.steps, tokens = srv.scheduler.stats.tokens - before.tokens;
  res.forEach((r, k) => {
    const want = alone(model, chatIds(prompts[k]), { n: 1 + (k % 3), seed: 100 + k, temperature: 1, maxTokens: 12 + 4 * k });
    assert.equal(r.choices.length, want.length);
    r.choices.forEach((c, i) => assert.equal(c.message.content, want[i].text, `prompt ${k} completion ${i}`));
  });
  assert.ok(new Set(res[2].choices.map((c) => c.message.content)).size > 1, "n completions differ");
  assert.ok(stepsUsed < tokens / 2, `${tokens} tokens in ${stepsUsed} steps: requests should share decode steps`);
});

test(`serve (${name}): a request's model picks the adapter`, async () => {
  const ids = chatIds("Say something.");
  const [withLora, base] = await Promise.all(["lora", name].map((m) => client.chat.completions.create({ model: m, messages: user("Say something."), temperature: 0, max_tokens: 16 })));
  assert.equal(withLora.choices[0].message.content, alone(lora, ids, { temperature: 0, maxTokens: 16 })[0].text);
  assert.equal(base.choices[0].message.content, alone(model, ids, { temperature: 0, maxTokens: 16 })[0].text);
  assert.notEqual(withLora.choices[0].message.content, base.choices[0].message.content);
});

test(`serve (${name}): completions from text and token ids, with log-probs equal to a full forward's`, async () => {
  const ids = [5, 17, 99, 3, 250, 41];
  const r = await client.completions.create({ model: name, prompt: ids, max_tokens: 6, temperature: 0, logprobs: 3 });
  const want = alone(model, ids, { temperature: 0, maxTokens: 6 })[0];
  assert.equal(r.choices[0].text, want.text);
  const lp = r.choices[0].logprobs!;
  // log-softmax of the full forward at each position of prompt + completion
  const seq = [...ids, ...want.ids], V = model.config.vocabSize;
  const z = noGrad(() => scope(() => model.logits(model.forward(Int32Array.from(seq), 1, seq.length)).f32()));
  want.ids.forEach((t, j) => {
    const row = z.subarray((ids.length - 1 + j) * V, (ids.length + j) * V);
    const mx = Math.max(...row), lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
    assert.ok(Math.abs(lp.token_logprobs![j] - (row[t] - lse)) < 1e-4, `token ${j}: ${lp.token_logprobs![j]} vs ${row[t] - lse}`);
    const top = Object.values(lp.top_logprobs![j]); // (keyed by token text: tokens that decode alike share a key)
    assert.ok(top.length >= 1 && top.length <= 3);
    assert.ok(Math.abs(Math.max(...top) - lp.token_logprobs![j]) < 1e-9, "greedy token is the top one");
  });
  const text = await client.completions.create({ model: name, prompt: ["Once upon", "a time"], n: 2, seed: 3, max_tokens: 5 });
  assert.equal(text.choices.length, 4);
  assert.deepEqual(text.choices.map((c) => c.index), [0, 1, 2, 3]);
  assert.equal(text.choices[3].text, alone(model, tok.encode("a time"), { n: 2, seed: 3, temperature: 1, maxTokens: 5 })[1].text);
});

test(`serve (${name}): a stop string cuts the answer before it`, async () => {
  const full = (await client.chat.completions.create({ model: name, messages: user("Go on."), temperature: 0, max_tokens: 24 })).choices[0].message.content!;
  const stop = full.slice(8, 11);
  const cut = await client.chat.completions.create({ model: name, messages: user("Go on."), temperature: 0, max_tokens: 24, stop });
  assert.equal(cut.choices[0].message.content, full.slice(0, full.indexOf(stop)));
  assert.equal(cut.choices[0].finish_reason, "stop");
});

test(`serve (${name}): embeddings are normalised mean-pooled hidden states; float and base64 agree`, async () => {
  const inputs = ["The cat sat.", "A completely different sentence, longer than the first."];
  const f = await client.embeddings.create({ model: name, input: inputs, encoding_format: "float" });
  const b = await client.embeddings.create({ model: name, input: inputs }); // the client asks for base64 and decodes it
  assert.equal(f.data.length, 2);
  // an independent pooling: both inputs left-padded in one batched forward, padding masked out
  const ids = inputs.map((s) => tok.encode(s)), T = Math.max(...ids.map((x) => x.length)), C = model.config.hidden;
  const flat = new Int32Array(2 * T), mask = new Int32Array(2 * T);
  ids.forEach((x, i) => { flat.set(x, i * T + T - x.length); mask.fill(1, i * T + T - x.length, (i + 1) * T); });
  const h = noGrad(() => scope(() => model.forward(flat, 2, T, { attentionMask: mask }).f32()));
  ids.forEach((x, i) => {
    const mean = new Float64Array(C);
    for (let t = T - x.length; t < T; t++) for (let c = 0; c < C; c++) mean[c] += h[(i * T + t) * C + c];
    const norm = Math.hypot(...mean);
    for (let c = 0; c < C; c++) {
      assert.ok(Math.abs(f.data[i].embedding[c] - mean[c] / norm) < 1e-4, `input ${i} dim ${c}`);
      assert.ok(Math.abs(b.data[i].embedding[c] - f.data[i].embedding[c]) < 1e-7);
    }
  });
  assert.equal(f.usage.prompt_tokens, ids[0].length + ids[1].length);
});

test(`serve (${name}): errors are OpenAI's JSON (400 naming the field, 401, 404, context too long) and the server stays up`, async () => {
  const expectError = async (p: Promise<unknown>, status: number, check: (e: InstanceType<typeof OpenAI.APIError>) => void) => {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof OpenAI.APIError, String(e));
      assert.equal(e.status, status, e.message);
      check(e);
      return true;
    });
  };
  const msgs = user("hi");
  await expectError(new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "wrong", maxRetries: 0 }).chat.completions.create({ model: name, messages: msgs }), 401,
    (e) => { assert.ok(e instanceof OpenAI.AuthenticationError); assert.equal(e.code, "invalid_api_key"); });
  await expectError(client.chat.completions.create({ model: "no-such-model", messages: msgs }), 404,
    (e) => { assert.ok(e instanceof OpenAI.NotFoundError); assert.equal(e.code, "model_not_found"); assert.equal(e.param, "model"); });
  await expectError(client.chat.completions.create({ model: name, messages: msgs, temperature: 7 }), 400, (e) => assert.equal(e.param, "temperature"));
  await expectError(client.chat.completions.create({ model: name, messages: [{ role: "wizard", content: "x" }] as never }), 400, (e) => assert.equal(e.param, "messages[0].role"));
  await expectError(client.chat.completions.create({ model: name, messages: msgs, top_k_typo: 3 } as never), 400, (e) => assert.equal(e.param, "top_k_typo"));
  await expectError(client.chat.completions.create({ model: name, messages: msgs, max_tokens: 100_000 }), 400,
    (e) => { assert.equal(e.code, "context_length_exceeded"); assert.match(e.message, /maximum context length is \d+ tokens/); });
  await expectError(client.completions.create({ model: name, prompt: Array(model.config.maxPositions + 5).fill(7), max_tokens: 1 }), 400,
    (e) => { assert.equal(e.code, "context_length_exceeded"); assert.equal(e.param, "prompt"); });
  await expectError(client.embeddings.create({ model: name, input: [[model.config.vocabSize + 3]] }), 400, (e) => assert.equal(e.param, "input"));
  await expectError(client.chat.completions.create({ model: name, messages: msgs, tools: [{ type: "function", function: { name: "f" } }] }), 400, (e) => assert.equal(e.param, "tools"));
  const bad = await fetch(`${srv.url}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${KEY}` }, body: "{not json" });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.code, "invalid_json");
  const nowhere = await fetch(`${srv.url}/v2/x`);
  assert.equal(nowhere.status, 404);
  assert.equal((await nowhere.json()).error.type, "not_found_error");
  const ok = await client.chat.completions.create({ model: name, messages: msgs, max_tokens: 3 });
  assert.equal(ok.choices.length, 1);
});

test(`serve (${name}): a disconnected stream cancels its sequence`, async () => {
  const ac = new AbortController();
  const t0 = { ...srv.scheduler.stats };
  const stream = await client.completions.create({ model: name, prompt: [1, 2, 3], max_tokens: 400, stream: true, temperature: 0, ignore_eos: true } as never, { signal: ac.signal }) as unknown as AsyncIterable<unknown>;
  let chunks = 0;
  for await (const _ of stream) if (++chunks === 3) { ac.abort(); break; }
  const deadline = Date.now() + 5000;
  while (srv.scheduler.load.running > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(srv.scheduler.load.running, 0);
  const drawn = srv.scheduler.stats.tokens - t0.tokens;
  assert.ok(drawn < 200, `${drawn} tokens drawn after the client left (of 400)`);
});

test(`serve: tools are rendered by the template and the model's calls come back as tool_calls`, async () => {
  // a copy of the fixture with a Qwen-style template that renders tools, fine-tuned (full weights, ~1 s) to answer
  // the weather question with a Qwen tool call
  const src = join(tmp, "src"), out = join(tmp, "caller");
  cpSync(dir, src, { recursive: true });
  writeFileSync(join(src, "chat_template.jinja"), TOOL_TEMPLATE);
  const ttok = loadTokenizer(src);
  const tools = [{ type: "function" as const, function: { name: "get_weather", description: "weather of a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
  const question = user("What is the weather in Paris?");
  const call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';
  const cfg = validateConfig({ model: src, chatTemplate: false, fullFinetune: true, learningRate: 3e-3, maxSteps: 100, perDeviceTrainBatchSize: 2, numGenerations: 2,
    lrSchedulerType: "constant", gradientCheckpointing: false });
  const m = prepareForTraining(CausalLM.load(src, { dtype: "f32" }), cfg);
  sft(m, ttok, [{ prompt: ttok.applyChatTemplate(question, { addGenerationPrompt: true, tools }), completion: call }], cfg);
  saveFullModel(m, out);
  for (const f of ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]) if (!existsSync(join(out, f))) cpSync(join(src, f), join(out, f));
  const s2 = await startServer({ model: out, port: 0 });
  try {
    const c2 = new OpenAI({ baseURL: `${s2.url}/v1`, apiKey: "none", maxRetries: 0 });
    const r = await c2.chat.completions.create({ model: "caller", messages: question, tools, temperature: 0, max_tokens: 120 });
    assert.equal(r.choices[0].finish_reason, "tool_calls", JSON.stringify(r.choices[0].message));
    const tc = r.choices[0].message.tool_calls!;
    assert.equal(tc.length, 1);
    assert.equal(tc[0].type, "function");
    assert.ok(tc[0].type === "function" && tc[0].function.name === "get_weather");
    assert.deepEqual(JSON.parse((tc[0] as { function: { arguments: string } }).function.arguments), { city: "Paris" });
    assert.equal(r.choices[0].message.content, null);
    // streamed: the call arrives as a tool_calls delta, no tool-call markup as content
    const stream = await c2.chat.completions.create({ model: "caller", messages: question, tools, temperature: 0, max_tokens: 120, stream: true });
    let content = "", name2 = "", args = "", finish = "";
    for await (const ch of stream) for (const c of ch.choices) {
      content += c.delta.content ?? "";
      for (const t of c.delta.tool_calls ?? []) { name2 += t.function?.name ?? ""; args += t.function?.arguments ?? ""; }
      if (c.finish_reason) finish = c.finish_reason;
    }
    assert.equal(content, "");
    assert.equal(name2, "get_weather");
    assert.deepEqual(JSON.parse(args), { city: "Paris" });
    assert.equal(finish, "tool_calls");
    // the call and its result go back through the template (arguments as a JSON string, as OpenAI sends them)
    const next = await c2.chat.completions.create({ model: "caller", tools, max_tokens: 5, messages: [
      ...question, { role: "assistant", content: null, tool_calls: [{ id: tc[0].id, type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
      { role: "tool", tool_call_id: tc[0].id, content: "sunny, 21 C" }] });
    assert.equal(next.choices.length, 1);
    // without tools the template renders no tool block: the model no longer calls
    const plain = await c2.chat.completions.create({ model: "caller", messages: question, temperature: 0, max_tokens: 120 });
    assert.equal(plain.choices[0].message.tool_calls, undefined);
  } finally {
    await s2.close();
  }
});

test(`aha serve (${name}): binds 127.0.0.1 by default and a SIGTERM lets the running stream finish, then exits 0`, async () => {
  const { child, url, stderr } = await spawnServe(["--model", dir]);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  const exited = new Promise<number | null>((ok) => child.on("exit", (c) => ok(c)));
  const c = new OpenAI({ baseURL: url, apiKey: "none", maxRetries: 0 });
  const stream = await c.completions.create({ model: name, prompt: [1, 2, 3], max_tokens: 200, stream: true, temperature: 0 });
  let text = "", finish = "", n = 0;
  for await (const ch of stream) {
    if (++n === 2) child.kill("SIGTERM");
    text += ch.choices[0]?.text ?? "";
    finish = ch.choices[0]?.finish_reason ?? finish;
  }
  assert.ok(finish === "length" || finish === "stop", `finish ${finish}`);
  assert.equal(text, alone(model, [1, 2, 3], { temperature: 0, maxTokens: 200 })[0].text);
  assert.equal(await exited, 0, stderr());
  assert.match(stderr(), /SIGTERM/);
});

/** A ChatML template that renders tools and tool calls the way Qwen2.5/Qwen3 do, short enough for the tiny model's context. */
const TOOL_TEMPLATE = readFileSync(join(root, "test", "data", "qwen-tools-template.jinja"), "utf8");

test(`aha serve --load-in-4bit (${name}): the greedy answer is \`aha generate --load-in-4bit\`'s, not the 16-bit model's`, async () => {
  const { child, url } = await spawnServe(["--model", dir, "--load-in-4bit"]);
  try {
    const c = new OpenAI({ baseURL: url, apiKey: "none", maxRetries: 0 });
    const r = await c.completions.create({ model: name, prompt: [1, 2, 3], max_tokens: 24, temperature: 0 });
    const cli = spawnSync(process.execPath, [bin, "generate", "--model", dir, "--prompt-ids", "1,2,3", "--temperature", "0", "--max-tokens", "24", "--json", "--load-in-4bit"], { encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
    assert.equal(r.choices[0].text, tok.decode(JSON.parse(cli.stdout.trim()).token_ids, { skipSpecialTokens: true }));
    assert.notEqual(r.choices[0].text, alone(model, [1, 2, 3], { temperature: 0, maxTokens: 24 })[0].text, "4-bit weights give another answer than the 16-bit model on this random model");
  } finally {
    child.kill("SIGKILL");
  }
});
