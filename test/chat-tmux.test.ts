// `aha chat` in a real terminal (tmux: send-keys, capture-pane): two turns that keep the history, /reset, Ctrl-C in
// the middle of a long answer (the answer stops, the program does not), and a piped stdin answered line by line.
// The oracle for every answer is generate() on the conversation the chat should have rendered (read back by /save).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixtureModels } from "./fixtures.ts";
import { CausalLM } from "../src/models/model.ts";
import { loadTokenizer, type Message } from "../src/tokenize/index.ts";
import { generate } from "../src/generate/generate.ts";

const bin = join(fileURLToPath(new URL("..", import.meta.url)), "bin", "aha.js");
const tmp = mkdtempSync(join(tmpdir(), "aha-chat-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const hasTmux = spawnSync("tmux", ["-V"]).status === 0;

// a fixture model with a long context, so that an answer can run long enough to be interrupted
const modelDir = join(tmp, "model");
cpSync(fixtureModels()[0], modelDir, { recursive: true });
const cfgPath = join(modelDir, "config.json");
writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, "utf8")), max_position_embeddings: 1_000_000 }));
const model = CausalLM.load(modelDir), tok = loadTokenizer(modelDir);
const greedy = (messages: Message[], maxTokens: number) => {
  const ids = tok.encodeChat(messages, { addGenerationPrompt: true });
  const [c] = generate(model, [ids], { temperature: 0, maxTokens, stopTokenIds: tok.eosTokenIds });
  return tok.decode(c.tokenIds, { skipSpecialTokens: true });
};
const saved = (file: string): Message[] => JSON.parse(readFileSync(file, "utf8")).messages;

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("aha chat in tmux: two turns with history, /reset, Ctrl-C stops a long answer and the chat goes on", { skip: hasTmux ? false : "tmux is not installed (apt-get install tmux; .ci/run installs it)" }, async () => {
  const sock = `aha-chat-test-${process.pid}`;
  const tm = (...args: string[]) => spawnSync("tmux", ["-L", sock, ...args], { encoding: "utf8" });
  const screen = () => tm("capture-pane", "-p", "-J", "-t", "chat", "-S", "-5000").stdout ?? "";
  const lastLine = () => screen().trimEnd().split("\n").pop() ?? "";
  const prompts = () => screen().split("\n").filter((l) => l.startsWith("> ")).length;
  const send = async (text: string) => {
    const before = prompts();
    tm("send-keys", "-t", "chat", "-l", text);
    tm("send-keys", "-t", "chat", "Enter");
    await until(`the answer to '${text}'`, () => prompts() > before && lastLine() === ">");
  };
  try {
    const r = tm("new-session", "-d", "-s", "chat", "-x", "200", "-y", "50", "-c", tmp,
      `${process.execPath} ${bin} chat --model ${modelDir} --temperature 0 --max-tokens 12 --seed 1; sleep 30`);
    assert.equal(r.status, 0, r.stderr);
    await until("the banner and prompt", () => screen().includes("/help for commands") && lastLine() === ">");

    await send("hello there");
    await send("and then?");
    await send(`/save ${join(tmp, "two.json")}`);
    const two = saved(join(tmp, "two.json"));
    const first = greedy([{ role: "user", content: "hello there" }], 12);
    assert.deepEqual(two.map((m) => m.role), ["user", "assistant", "user", "assistant"]);
    assert.equal(two[1].content, first);
    assert.equal(two[3].content, greedy([...two.slice(0, 3)], 12), "the second answer sees the first turn");

    await send("/reset");
    assert.match(screen(), /\(conversation cleared\)/);
    await send("hello there");
    await send(`/save ${join(tmp, "reset.json")}`);
    assert.deepEqual(saved(join(tmp, "reset.json")).map((m) => m.content), ["hello there", first]);

    // a long answer, interrupted once it has started streaming
    await send("/reset");
    await send("/set max_tokens 1000000");
    const before = prompts();
    tm("send-keys", "-t", "chat", "-l", "tell me everything");
    tm("send-keys", "-t", "chat", "Enter");
    await until("the long answer to start", () => {
      const s = screen(), i = s.lastIndexOf("> tell me everything");
      return i >= 0 && s.slice(i + 20).trim().length > 40;
    });
    const t0 = Date.now();
    tm("send-keys", "-t", "chat", "C-c");
    await until("the prompt after Ctrl-C", () => prompts() > before && lastLine() === ">", 10_000);
    assert.ok(Date.now() - t0 < 5000, `the answer stopped ${Date.now() - t0} ms after Ctrl-C`);
    assert.match(screen(), /\[stopped\]/);
    await send(`/save ${join(tmp, "stopped.json")}`);
    const stopped = saved(join(tmp, "stopped.json"));
    assert.equal(stopped.length, 2);
    const partial = String(stopped[1].content);
    assert.ok(partial.length > 0, "the partial answer stays in the history");
    assert.ok(greedy([{ role: "user", content: "tell me everything" }], tok.encode(partial).length + 8).startsWith(partial.slice(0, -4)), "the partial answer is the start of the full one");

    // still alive and sane
    await send("/reset");
    await send("/set max_tokens 12");
    await send("hello there");
    await send(`/save ${join(tmp, "after.json")}`);
    assert.deepEqual(saved(join(tmp, "after.json")).map((m) => m.content), ["hello there", first]);
    tm("send-keys", "-t", "chat", "-l", "/exit");
    tm("send-keys", "-t", "chat", "Enter");
    await until("aha chat to exit", () => tm("list-panes", "-t", "chat", "-F", "#{pane_current_command}").stdout.trim() === "sleep", 5000);
  } finally {
    tm("kill-server");
  }
});

test("aha chat with a pipe: one answer per line, commands work, then it exits", () => {
  const r = spawnSync(process.execPath, [bin, "chat", "--model", modelDir, "--temperature", "0", "--max-tokens", "12"], {
    input: "hello there\nand then?\n/reset\nhello there\n", encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const first = greedy([{ role: "user", content: "hello there" }], 12);
  const second = greedy([{ role: "user", content: "hello there" }, { role: "assistant", content: first }, { role: "user", content: "and then?" }], 12);
  assert.equal(r.stdout, `${first}\n${second}\n${first}\n`);
});
