// Judges, group judges, embedding similarity and rubrics against a local server that follows the OpenAI API
// (test/openai-server.ts), through the official `openai` client: template filling, score parsing, the cache, the
// concurrency limit, retries on 429 and 500, the timeout, unparseable replies under both reward_errors policies;
// rubric checks (regex, contains, json_schema with ajv, max_length, judge) each logged as its own metric; a verifier
// file named in YAML.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  computeRewards, cosine, embeddingSimilarity, fillTemplate, judgeGroupReward, judgeReward, parseGroupScores, parseScore, promptGroups,
  resolveRewards, RewardError, rewardMetrics, rubricReward, type RewardArgs,
} from "../src/rewards/index.ts";
import { loadConfigFile } from "../src/grpo/config.ts";
import { letterCounts, startFakeOpenAI, type FakeOpenAI } from "./openai-server.ts";

let server: FakeOpenAI;
const tmp = mkdtempSync(join(tmpdir(), "aha-judge-"));
before(async () => (server = await startFakeOpenAI({ slowMs: 1500 })));
after(async () => {
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

function batch(completions: string[], columns: Record<string, unknown[]> = {}, prompts?: string[]): RewardArgs {
  return { prompts: prompts ?? completions.map((_, i) => `task ${i}`), completions, completionIds: completions.map(() => []), ...columns };
}
const chats = (pred: (text: string) => boolean = () => true) =>
  server.requests.filter((r) => r.path.endsWith("/chat/completions") && pred(JSON.stringify(r.body.messages))).length;

test("parseScore and parseGroupScores: the forms judges answer in, mapped to [0, 1]", () => {
  assert.equal(parseScore("Score: 7", 0, 10), 0.7);
  assert.equal(parseScore("I'd give it a score of 4.5 overall", 0, 10), 0.45);
  assert.equal(parseScore("8/10", 0, 10), 0.8);
  assert.equal(parseScore("<score>3</score>", 1, 5), 0.5);
  assert.equal(parseScore(" 10 ", 0, 10), 1);
  assert.equal(parseScore("Yes, it is correct.", 0, 10), 1);
  assert.equal(parseScore("no", 0, 10), 0);
  assert.throws(() => parseScore("Score: 11", 0, 10), /outside \[0, 10\]/);
  assert.throws(() => parseScore("it has 3 bugs and 2 typos", 0, 10), /no score/);
  assert.deepEqual(parseGroupScores('{"scores": [10, 0, 5]}', 3, 0, 10), [1, 0, 0.5]);
  assert.deepEqual(parseGroupScores("Sure: [2, 4]", 2, 0, 4), [0.5, 1]);
  assert.deepEqual(parseGroupScores("Response 1: 3\nResponse 2: 6", 2, 0, 6), [0.5, 1]);
  assert.throws(() => parseGroupScores('{"scores": [1, 2]}', 3), /3 scores/);
  assert.deepEqual(promptGroups(["a", "a", "b", "b", "a"]), [[0, 2], [2, 4], [4, 5]]);
  assert.equal(fillTemplate("{prompt} / {answer} {{x}}", { prompt: "p", answer: 4 }), "p / 4 {x}");
  assert.throws(() => fillTemplate("{nope}", { prompt: "p" }), /no value for \{nope\} \(known: \{prompt\}\)/);
});

test("judge: the template gets prompt, completion, answer and columns; scores come back in [0, 1]; cached", async () => {
  const judge = judgeReward({ baseUrl: server.url, model: "judge-a", prompt: "Task: {prompt}\nAnswer key: {answer} ({topic})\nReply: {completion}\nScore {min}-{max}." });
  const b = batch(["GOOD one", "BAD one", "OK one", "YES one", "NO one"], { answer: ["a1", "a2", "a3", "a4", "a5"], topic: ["t1", "t2", "t3", "t4", "t5"] });
  const before = chats();
  const res = await computeRewards([judge], undefined, b);
  assert.deepEqual(res.total, [0.9, 0.1, 0.5, 1, 0]);
  assert.equal(chats() - before, 5);
  const sent = server.requests.at(-1)!.body.messages!.at(-1)!.content;
  assert.match(sent, /^Task: task \d\nAnswer key: a\d \(t\d\)\nReply: \w+ one\nScore 0-10\.$/);
  // the same requests again: answered from the cache
  const again = await computeRewards([judge], undefined, b);
  assert.deepEqual(again.total, res.total);
  assert.equal(chats() - before, 5);
});

test("judge: a concurrency limit, retries on 429 and 500, and an unknown placeholder named", async () => {
  const judge = judgeReward({ baseUrl: server.url, model: "judge-b", concurrency: 2 });
  server.maxInFlight = 0;
  const cs = Array.from({ length: 8 }, (_, i) => (i === 2 ? `RATE429 GOOD ${i}` : i === 5 ? `FAIL500 BAD ${i}` : `OK ${i}`));
  const res = await computeRewards([judge], undefined, batch(cs));
  assert.deepEqual(res.total, [0.5, 0.5, 0.9, 0.5, 0.5, 0.1, 0.5, 0.5]);
  assert.ok(server.maxInFlight <= 2, `${server.maxInFlight} requests in flight with concurrency 2`);
  assert.equal(chats((t) => t.includes("RATE429 GOOD 2")), 2, "the 429 was retried once");
  assert.equal(chats((t) => t.includes("FAIL500 BAD 5")), 2, "the 500 was retried once");
  const bad = judgeReward({ baseUrl: server.url, model: "judge-b", prompt: "{question}" });
  await assert.rejects(computeRewards([bad], undefined, batch(["x"])), /no value for \{question\}/);
});

test("judge: unparseable replies, persistent 500s and timeouts go to the reward_errors policy, sample by sample", async () => {
  const judge = judgeReward({ baseUrl: server.url, model: "judge-c", maxRetries: 1, timeoutMs: 400 });
  const b = batch(["GOOD c0", "GARBLE c1", "BAD c2", "ALWAYS500 c3", "SLOW c4"]);
  const skip = await computeRewards([judge], undefined, b, { onError: "skip" });
  assert.deepEqual(skip.skipped, [false, true, false, true, true]);
  assert.deepEqual(skip.total.slice(0, 3).map((v) => (Number.isNaN(v) ? "NaN" : v)), [0.9, "NaN", 0.1]);
  assert.deepEqual(skip.errors.map((e) => e.index), [1, 3, 4]);
  assert.match(skip.errors[0]!.message, /judge reply has no score: "I would rather not say\."[\s\S]*sample 1/);
  assert.match(skip.errors[1]!.message, /500/);
  assert.match(skip.errors[2]!.message, /timed out|timeout/i);
  assert.equal(chats((t) => t.includes("ALWAYS500 c3")), 2, "one try and one retry");
  // stop: the run ends with the first failing sample named, and the good replies were not asked twice
  const before = chats();
  const stop = await computeRewards([judge], undefined, batch(["GOOD c0", "GARBLE c1"]), { onError: "stop" }).catch((e) => e);
  assert.ok(stop instanceof RewardError);
  assert.match(stop.message, /judge reply has no score[\s\S]*on sample 1/);
  assert.equal(chats() - before, 0, "both replies came from the cache");
});

test("judge_group: one call per group, scores relative within the group", async () => {
  const G = 4;
  const prompts = ["q1", "q1", "q1", "q1", "q2", "q2", "q2", "q2"];
  const cs = ["GOOD a", "BAD a", "meh a", "GOOD b", "BAD x", "BAD y", "GOOD z", "meh z"];
  const group = judgeGroupReward({ baseUrl: server.url, model: "judge-g" });
  const before = chats();
  const res = await computeRewards([group], undefined, batch(cs, {}, prompts));
  assert.equal(chats() - before, prompts.length / G, "one request per group");
  assert.deepEqual(res.total, [0.9, 0.1, 0.5, 0.9, 0.1, 0.1, 0.9, 0.5]);
  const shown = server.requests.at(-1)!.body.messages!.at(-1)!.content;
  assert.match(shown, /Response 1:\n(BAD x|GOOD a)[\s\S]*Response 4:\n(meh z|GOOD b)/);
  // an unparseable group reply fails that group's samples only
  const garbled = await computeRewards([group], undefined, batch(["GARBLE", "x", "GOOD", "BAD"], {}, ["p", "p", "r", "r"]), { onError: "skip" });
  assert.deepEqual(garbled.skipped, [true, true, false, false]);
  assert.deepEqual(garbled.total.slice(2), [0.9, 0.1]);
});

test("embedding_similarity: the cosine of the endpoint's embeddings, asked once per distinct text", async () => {
  const r = embeddingSimilarity({ baseUrl: server.url, model: "embed-a", column: "reference" });
  const cs = ["the cat sat", "a dog ran far", "zzz", "", "the cat sat"];
  const refs = ["the cat sat", "the cat sat", "the cat sat", "the cat sat", null];
  const before = server.requests.length;
  const res = await computeRewards([r], undefined, batch(cs, { reference: refs }));
  const want = cs.map((c, i) => (refs[i] === null ? null : c === "" ? 0 : cosine(letterCounts(c), letterCounts(refs[i]!))));
  res.byName.embedding_similarity!.forEach((v, i) => (want[i] === null ? assert.equal(v, null) : assert.ok(Math.abs(v! - want[i]!) < 1e-12, `${v} ≠ ${want[i]}`)));
  assert.equal(res.byName.embedding_similarity![0], 1);
  assert.ok(res.byName.embedding_similarity![1]! < 0.9 && res.byName.embedding_similarity![2] === 0);
  const sent = server.requests.slice(before);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0]!.body.input!.sort(), ["a dog ran far", "the cat sat", "zzz"]);
  assert.equal(sent[0]!.body.encoding_format, "float");
});

test("rubric: each check scored and logged as its own metric, the reward their weighted mean", async () => {
  const rubric = rubricReward({
    name: "report",
    items: [
      { name: "has_title", check: "regex", pattern: "^# ", flags: "m", weight: 1 },
      { name: "mentions", check: "contains", any: ["Budget", "cost"], weight: 1 },
      { name: "short", check: "max_length", max: 60, weight: 1 },
      { name: "valid_json", check: "json_schema", schema: { type: "object", required: ["total"], properties: { total: { type: "number", minimum: 0 } } }, weight: 2 },
      { name: "no_apology", check: "contains", text: "sorry", negate: true, weight: 1 },
      { name: "quality", check: "judge", base_url: server.url, model: "judge-r", weight: 4 },
    ],
  });
  const cs = [
    "# Plan\nbudget ok\n```json\n{\"total\": 3}\n```\nGOOD", // every check: 1, judge 0.9
    "sorry, the COST is high {\"total\": -1} BAD", // json fails the schema, apology, no title
    "# T\n{\"total\": 1} " + "x".repeat(80), // too long, no mention; whole-text JSON does not parse
  ];
  const res = await computeRewards([rubric], undefined, batch(cs));
  const parts = res.details.report!.parts!;
  assert.deepEqual(parts.has_title, [1, 0, 1]);
  assert.deepEqual(parts.mentions, [1, 1, 0]);
  assert.deepEqual(parts.short, [1, 1, 0]);
  assert.deepEqual(parts.valid_json, [1, 0, 0]);
  assert.deepEqual(parts.no_apology, [1, 0, 1]);
  assert.deepEqual(parts.quality, [0.9, 0.1, 0]);
  const W = 1 + 1 + 1 + 2 + 1 + 4;
  const want = [(1 + 1 + 1 + 2 + 1 + 4 * 0.9) / W, (0 + 1 + 1 + 0 + 0 + 4 * 0.1) / W, (1 + 0 + 0 + 0 + 1 + 0) / W];
  res.total.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-12, `${v} ≠ ${want[i]}`));
  const m = rewardMetrics(res);
  assert.ok(Math.abs(m["rewards/report/quality/mean"]! - (0.9 + 0.1) / 3) < 1e-12);
  assert.equal(m["rewards/report/valid_json/mean"], 1 / 3);
  assert.deepEqual((res.details.report!.samples![1] as { items: Record<string, number> }).items.no_apology, 0);
  assert.throws(() => rubricReward({ items: [{ name: "a", check: "json_schema", schema: { type: "nonsense" } }] }), /invalid JSON schema/);
  assert.throws(() => rubricReward({ items: [{ name: "a", check: "nope" } as never] }), /unknown check "nope"/);
});

test("every new reward resolves from YAML, a verifier file relative to the config", async () => {
  writeFileSync(join(tmp, "verify.ts"), "export function sameLength(prompt: string, completion: string, row: { answer: string }) { return completion.length === row.answer.length; }\n");
  writeFileSync(join(tmp, "config.yaml"), [
    "model: ./model", "dataset: { path: ./data }", "reward_funcs:",
    "  - { type: verifier, path: ./verify.ts#sameLength, correct: 2, incorrect: -1 }",
    "  - { type: code_tests, language: javascript, tests_column: tests, timeout_ms: 1000, memory_mb: 64, partial: true }",
    `  - { type: judge, base_url: "${server.url}", model: m, min: 0, max: 10, prompt: "{completion}" }`,
    `  - { type: judge_group, base_url: "${server.url}", model: m }`,
    `  - { type: embedding_similarity, base_url: "${server.url}", model: e, column: answer }`,
    "  - { type: rubric, name: r, items: [{ name: t, check: contains, text: a }] }",
  ].join("\n"));
  const cfg = loadConfigFile(join(tmp, "config.yaml"));
  const funcs = await resolveRewards(cfg.rewardFuncs as never);
  assert.deepEqual(funcs.map((f) => f.name), ["sameLength", "code_tests/javascript", "judge", "judge_group", "embedding_similarity", "r"]);
  assert.deepEqual(await funcs[0]!.fn(batch(["abc", "ab"], { answer: ["xyz", "xyz"] })), [2, -1]);
  assert.deepEqual(await funcs[5]!.fn(batch(["a", "b"])), [1, 0]);
  await assert.rejects(resolveRewards([{ type: "verifier", path: "./missing.ts#x" }], { baseDir: tmp }), /cannot import .*missing\.ts/);
  await assert.rejects(resolveRewards([{ type: "code_tests", language: "ruby" }]), /python or javascript/);
  await assert.rejects(resolveRewards([{ type: "judge", base_url: server.url }]), /needs "model"/);
  await assert.rejects(resolveRewards([{ type: "judge", model: "m", api_key_env: "AHA_SURELY_UNSET_KEY" }]), /AHA_SURELY_UNSET_KEY is not set/);
});
