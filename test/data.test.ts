// Data tests: every file format, Hugging Face folder layouts, prompt formatting, the GSM8K preset on the real
// data, and the error messages for malformed input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parquetWriteFile } from "hyparquet-writer";
import {
  DatasetError, extractHashAnswer, formatPrompt, loadDataset, parseCsv, prepareGsm8k, rowPrompt, rowsToColumns,
  applyPreset,
} from "../src/data/index.ts";
import { loadTokenizer } from "../src/tokenize/index.ts";
import { fixtureModels } from "./fixtures.ts";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const GSM8K = resolve(ROOT, "datasets", "gsm8k");
const tmp = mkdtempSync(join(tmpdir(), "aha-data-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = join(tmp, name);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, text);
  return p;
}

async function rejects(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof DatasetError, `expected DatasetError, got ${e}`);
    for (const s of parts) assert.match(e.message, typeof s === "string" ? new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : s);
    return true;
  });
}

test("JSONL: rows, blank lines skipped, nested values kept", async () => {
  const f = write("a.jsonl", '{"prompt":"hi","answer":"1"}\n\n{"prompt":[{"role":"user","content":"x"}],"answer":"2"}\n');
  const rows = await loadDataset({ path: f });
  assert.deepEqual(rows, [
    { prompt: "hi", answer: "1" },
    { prompt: [{ role: "user", content: "x" }], answer: "2" },
  ]);
});

test("JSONL errors name the file and line", async () => {
  const f = write("bad.jsonl", '{"a":1}\n{"a":2}\n{"a":3,,}\n');
  await rejects(loadDataset({ path: f }), f, "line 3", "malformed JSON");
  const g = write("arr.jsonl", '{"a":1}\n[1,2]\n');
  await rejects(loadDataset({ path: g }), "line 2", "expected a JSON object, got an array");
});

test("JSON: array of objects and {data: [...]}", async () => {
  assert.deepEqual(await loadDataset({ path: write("a.json", '[{"x":1},{"x":2}]') }), [{ x: 1 }, { x: 2 }]);
  assert.deepEqual(await loadDataset({ path: write("b.json", '{"data":[{"x":3}]}') }), [{ x: 3 }]);
  await rejects(loadDataset({ path: write("c.json", '{"rows":[]}') }), "c.json", "expected an array of objects");
  await rejects(loadDataset({ path: write("d.json", '[{"x":1}, 5]') }), "row 1", "expected an object, got number");
  await rejects(loadDataset({ path: write("e.json", '[{"x":1}') }), "e.json", "malformed JSON");
});

test("CSV: RFC 4180 quoting", async () => {
  const text = 'prompt,answer,note\r\n"Say ""hi"", then stop",42,plain\r\n"two\nlines, with comma",7,""\r\n\r\nlast,1,x';
  const rows = await loadDataset({ path: write("a.csv", text) });
  assert.deepEqual(rows, [
    { prompt: 'Say "hi", then stop', answer: "42", note: "plain" },
    { prompt: "two\nlines, with comma", answer: "7", note: "" },
    { prompt: "last", answer: "1", note: "x" },
  ]);
  assert.deepEqual(parseCsv("\uFEFFa,b\n1,2\n", "x.csv"), [{ a: "1", b: "2" }]);
  assert.deepEqual(await loadDataset({ path: write("t.tsv", "a\tb\n1,5\t2\n") }), [{ a: "1,5", b: "2" }]);
});

test("CSV errors name the line", async () => {
  await rejects(loadDataset({ path: write("e1.csv", 'a,b\n1,2\n3\n') }), "e1.csv", "line 3", "1 fields, but the header has 2");
  await rejects(loadDataset({ path: write("e2.csv", 'a,b\n1,"2\n3,4\n') }), "line 2", "unterminated quoted field");
  await rejects(loadDataset({ path: write("e3.csv", 'a,b\n"x\ny"z,1\n') }), "line 3", "after a closing quote");
  await rejects(loadDataset({ path: write("e4.csv", 'a,b\n1,x"y\n') }), "line 2", "stray");
  await rejects(loadDataset({ path: write("e5.csv", 'a,a\n1,2\n') }), "duplicate column");
  await rejects(loadDataset({ path: write("e6.csv", "") }), "empty file");
});

function writeParquet(file: string): void {
  parquetWriteFile({
    filename: file,
    columnData: [
      { name: "prompt", data: ["What is 1+1?", "What is 2+2?", "big"], type: "STRING" },
      { name: "answer", data: [2n, 4n, 2n ** 60n], type: "INT64" },
      { name: "score", data: [0.5, 1.5, -1], type: "DOUBLE" },
    ],
  });
}

test("Parquet: strings, doubles, int64 → number when safe", async () => {
  const f = join(tmp, "p.parquet");
  writeParquet(f);
  const rows = await loadDataset({ path: f });
  assert.deepEqual(rows.slice(0, 2), [
    { prompt: "What is 1+1?", answer: 2, score: 0.5 },
    { prompt: "What is 2+2?", answer: 4, score: 1.5 },
  ]);
  assert.equal(rows[2]!.answer, 2n ** 60n, "an unsafe int64 stays BigInt");
  // Conversational prompts as HF stores them: list<struct<role, content>>.
  const g = join(tmp, "conv.parquet");
  parquetWriteFile({
    filename: g,
    columnData: [
      { name: "prompt", data: [[{ role: "system", content: "s" }, { role: "user", content: "y" }]] },
      { name: "answer", data: [7n] },
    ],
  });
  assert.deepEqual(await loadDataset({ path: g }), [{ prompt: [{ role: "system", content: "s" }, { role: "user", content: "y" }], answer: 7 }]);
  await rejects(loadDataset({ path: write("bad.parquet", "not parquet at all") }), "bad.parquet", "cannot read Parquet");
});

test("Hugging Face folders: data/<split>-*.parquet shards, <split>-*.parquet, <split>.jsonl", async () => {
  const a = join(tmp, "hf1");
  mkdirSync(join(a, "data"), { recursive: true });
  writeParquet(join(a, "data", "train-00000-of-00002.parquet"));
  writeParquet(join(a, "data", "train-00001-of-00002.parquet"));
  writeParquet(join(a, "data", "test-00000-of-00001.parquet"));
  assert.equal((await loadDataset({ path: a })).length, 6, "train is the default split; shards concatenated");
  assert.equal((await loadDataset({ path: a, split: "test" })).length, 3);

  const b = join(tmp, "hf2");
  mkdirSync(b, { recursive: true });
  writeParquet(join(b, "validation-00000-of-00001.parquet"));
  assert.equal((await loadDataset({ path: b, split: "validation" })).length, 3);

  const c = join(tmp, "hf3");
  write("hf3/train.jsonl", '{"prompt":"a"}\n');
  write("hf3/test.csv", "prompt\nb\n");
  write("hf3/train_extra.jsonl", '{"prompt":"no"}\n');
  assert.deepEqual(await loadDataset({ path: c }), [{ prompt: "a" }]);
  assert.deepEqual(await loadDataset({ path: c, split: "test" }), [{ prompt: "b" }]);
  await rejects(loadDataset({ path: c, split: "validation" }), 'no files for split "validation"', "train.jsonl");
  await rejects(loadDataset({ path: join(tmp, "missing") }), "no such file");
  await rejects(loadDataset({ path: write("x.txt", "hi") }), "unknown data file type");
});

test("GSM8K preset on the real train and test files", async () => {
  const train = prepareGsm8k(await loadDataset({ path: GSM8K, split: "train" }), { systemPrompt: "SYS" });
  assert.equal(train.length, 7473);
  for (const r of train) {
    assert.equal(typeof r.answer, "string");
    assert.ok(Number.isFinite(Number(r.answer)), `answer ${String(r.answer)} is numeric`);
    assert.ok(!String(r.answer).includes(","));
  }
  assert.deepEqual(train[0]!.prompt, [
    { role: "system", content: "SYS" },
    { role: "user", content: "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?" },
  ]);
  assert.equal(train[0]!.answer, "72");
  assert.equal("question" in train[0]!, false);
  const test_ = applyPreset("gsm8k", await loadDataset({ path: join(GSM8K, "test.jsonl") }), {});
  assert.equal(test_.length, 1319);
  assert.equal((test_[0]!.prompt as unknown[]).length, 1, "no system prompt unless asked");
  assert.equal(extractHashAnswer("so\n#### 1,234,567"), "1234567");
  assert.equal(extractHashAnswer("no marker"), null);
  assert.throws(() => prepareGsm8k([{ question: "q", answer: "no marker" }]), /row 0.*####/);
  assert.throws(() => prepareGsm8k([{ question: 3, answer: "#### 1" }]), /row 0.*question/);
});

test("formatPrompt: standard and conversational, with system prompt and chat template", () => {
  const dir = fixtureModels()[0];
  assert.ok(dir, "a tiny model fixture");
  const tok = loadTokenizer(dir);
  const std = { prompt: "What is 2+2?", answer: "4" };
  const conv = { prompt: [{ role: "user", content: "What is 2+2?" }], answer: "4" };
  const expected = tok.applyChatTemplate(
    [{ role: "system", content: "S" }, { role: "user", content: "What is 2+2?" }],
    { addGenerationPrompt: true },
  );
  assert.equal(formatPrompt(std, tok, { chatTemplate: true, systemPrompt: "S" }), expected);
  assert.equal(formatPrompt(conv, tok, { chatTemplate: true, systemPrompt: "S" }), expected);
  // A conversation that already has a system message keeps it.
  const withSys = { prompt: [{ role: "system", content: "S" }, { role: "user", content: "What is 2+2?" }] };
  assert.equal(formatPrompt(withSys, tok, { chatTemplate: true, systemPrompt: "OTHER" }), expected);
  assert.equal(formatPrompt(std, tok, { chatTemplate: false }), "What is 2+2?");
  assert.equal(formatPrompt(std, tok, { chatTemplate: false, systemPrompt: "S" }), "S\n\nWhat is 2+2?");
  assert.throws(() => formatPrompt(conv, tok, { chatTemplate: false }), /needs chatTemplate: true/);
  assert.throws(() => formatPrompt({ question: "q" }, tok, { chatTemplate: true, where: "row 5" }), /row 5.*no "prompt" column.*question/);
  assert.throws(() => rowPrompt({ prompt: [{ content: "x" }] }), /prompt\[0\] is not a \{role, content\} message/);
  // Other columns pass through for rewards.
  assert.deepEqual(rowsToColumns([std, { ...std, answer: "5", extra: 1 }]), { answer: ["4", "5"], extra: [undefined, 1] });
});
