// judge, judge_group, embedding_similarity and a rubric's judge item against a real OpenAI-compatible server: `aha
// serve` (startServer) of a fixture model, through the rewards' own code (YAML params → resolveRewards → endpoint.ts →
// the official openai client). The fixture is first fully fine-tuned (a few seconds) to answer a few judge prompts with a
// score, a group's scores, or words with no score, so that every path is taken on replies the served model really
// wrote. Oracles: the score parsed from a direct greedy generate() of the prompt rendered independently (string
// replacement of the default templates, the model's chat template), the server's own request log for request counts,
// and cosines of mean-pooled hidden states from a direct forward, one text at a time, for embedding_similarity.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { CausalLM } from "../src/models/model.ts";
import { loadTokenizer, type Message, type Tokenizer } from "../src/tokenize/index.ts";
import { generate } from "../src/generate/generate.ts";
import { noGrad, scope } from "../src/engine/index.ts";
import { startServer, type RunningServer } from "../src/serve/server.ts";
import { validateConfig } from "../src/grpo/config.ts";
import { prepareForTraining } from "../src/grpo/trainer.ts";
import { sft } from "../src/grpo/sft.ts";
import { saveFullModel } from "../src/grpo/checkpoint.ts";
import {
  computeRewards, DEFAULT_GROUP_PROMPT, DEFAULT_JUDGE_PROMPT, parseGroupScores, parseScore, resolveRewards, RewardError, type RewardArgs,
} from "../src/rewards/index.ts";

const fixture = fixtureModels().find((d) => existsSync(join(d, "chat_template.jinja")))!;
const tmp = mkdtempSync(join(tmpdir(), "aha-judge-serve-"));
const served = join(tmp, `${basename(fixture)}-judge`);
const MODEL = basename(served);
const MAX_TOKENS = 24;
const KEY_ENV = "AHA_JUDGE_SERVE_TEST_KEY";
process.env[KEY_ENV] = "sk-judge-serve";

// What the judge is asked, and what the fine-tuned model learns to answer.
const TASK = "Is the sky blue?";
const GOOD = "Yes, the sky is blue on a clear day.", WRONG = "The sky is green.", ODD = "Bananas.";
const UNSEEN = "Perhaps, who knows?"; // not taught: the reply is whatever the model makes of it
const TASK2 = "Name a prime number.";
const GROUP2 = ["7", "8", "9"];

/** DEFAULT_JUDGE_PROMPT filled by plain string replacement (an oracle independent of fillTemplate). */
const judgeText = (task: string, completion: string) =>
  DEFAULT_JUDGE_PROMPT.replaceAll("{prompt}", task).replaceAll("{completion}", completion).replaceAll("{min}", "0").replaceAll("{max}", "10");
const groupText = (task: string, cs: string[]) =>
  DEFAULT_GROUP_PROMPT.replaceAll("{n}", String(cs.length)).replaceAll("{prompt}", task).replaceAll("{min}", "0").replaceAll("{max}", "10")
    .replaceAll("{completions}", cs.map((c, k) => `Response ${k + 1}:\n${c}`).join("\n\n")).replaceAll("{{", "{").replaceAll("}}", "}");
const user = (content: string): Message[] => [{ role: "user", content }];

let srv: RunningServer;
let model: CausalLM, tok: Tokenizer;
const log: string[] = [];
const posts = (path: string, status = 200) => log.filter((l) => l.startsWith(`POST /v1/${path} ${status} `)).length;

before(async () => {
  tok = loadTokenizer(fixture);
  const rows = [
    [judgeText(TASK, GOOD), "Score: 9"],
    [judgeText(TASK, WRONG), "Score: 2"],
    [judgeText(TASK, ODD), "I cannot tell."],
    [groupText(TASK, [GOOD, WRONG]), '{"scores": [8, 1]}'],
    [groupText(TASK2, GROUP2), "Hmm, hard to say."],
  ].map(([q, a]) => ({ prompt: tok.applyChatTemplate(user(q!), { addGenerationPrompt: true }), completion: a! }));
  const cfg = validateConfig({ model: fixture, chatTemplate: false, fullFinetune: true, learningRate: 6e-3, maxSteps: 30, perDeviceTrainBatchSize: 5, numGenerations: 5,
    lrSchedulerType: "constant", gradientCheckpointing: false });
  const m = prepareForTraining(CausalLM.load(fixture, { dtype: "f32" }), cfg);
  sft(m, tok, rows, cfg); // (whether it learnt is checked against the served model's replies below)
  saveFullModel(m, served);
  model = CausalLM.load(served); // the oracle's copy; the server loads its own from the folder
  srv = await startServer({ model: served, port: 0, maxBatch: 8, apiKey: process.env[KEY_ENV], log: (l) => log.push(l) });
});
after(async () => {
  await srv?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** The served model's greedy reply to one user message, by generate() alone (no server, no batching). */
function direct(text: string): string {
  const ids = tok.encodeChat(user(text), { addGenerationPrompt: true });
  const [c] = generate(model, [ids], { temperature: 0, maxTokens: MAX_TOKENS, stopTokenIds: tok.eosTokenIds });
  return tok.decode(c!.tokenIds, { skipSpecialTokens: true });
}
/** What parsing gives for a reply: the score, or the parser's error. */
const outcome = <T>(f: () => T): T | string => {
  try {
    return f();
  } catch (e) {
    return (e as Error).message;
  }
};
const batch = (prompts: (string | Message[])[], completions: string[], columns: Record<string, unknown[]> = {}): RewardArgs =>
  ({ prompts, completions, completionIds: completions.map(() => []), ...columns });
/** A text longer than the served model's context. */
const tooLong = () => "word ".repeat(model.config.maxPositions);
const endpointKeys = () => ({ base_url: `${srv.url}/v1`, model: MODEL, api_key_env: KEY_ENV, max_tokens: MAX_TOKENS, max_retries: 0 });

test("judge against aha serve: each score is what the served model's greedy reply parses to; unparseable replies follow reward_errors", async () => {
  const [judge] = await resolveRewards([{ type: "judge", ...endpointKeys() }]);
  const cs = [GOOD, WRONG, ODD, UNSEEN];
  const args = batch(cs.map(() => user(TASK)), cs); // conversational prompts: the judge shows the last user message
  const want = cs.map((c) => outcome(() => parseScore(direct(judgeText(TASK, c)), 0, 10)));
  assert.deepEqual(want.slice(0, 3), [0.9, 0.2, 'judge reply has no score: "I cannot tell."'], "the fine-tuned judge answers as taught");

  const before = posts("chat/completions");
  const skip = await computeRewards([judge!], undefined, args, { onError: "skip" });
  assert.equal(posts("chat/completions") - before, cs.length, "one request per completion");
  assert.deepEqual(skip.skipped, want.map((w) => typeof w === "string"));
  want.forEach((w, i) => (typeof w === "number" ? assert.equal(skip.total[i], w) : assert.ok(Number.isNaN(skip.total[i]))));
  const failed = want.flatMap((w, i) => (typeof w === "string" ? [i] : []));
  assert.deepEqual(skip.errors.map((e) => e.index), failed);
  // (an error quotes the reply: the untaught sample's reply, sampled instead of greedy, would differ here)
  skip.errors.forEach((e) => assert.ok(e.message.includes(want[e.index!] as string), e.message));

  // stop: the run ends naming the sample; every reply now comes from the cache
  const stop = await computeRewards([judge!], undefined, args, { onError: "stop" }).catch((e: unknown) => e);
  assert.ok(stop instanceof RewardError, String(stop));
  assert.match(stop.message, /reward "judge" .*judge reply has no score[\s\S]*on sample 2/);
  assert.equal(posts("chat/completions") - before, cs.length, "cached: no request repeated");
});

test("judge_group against aha serve: one request per group, scores parsed from the served model's reply", async () => {
  const [group] = await resolveRewards([{ type: "judge_group", ...endpointKeys() }]);
  const prompts = [TASK, TASK, TASK2, TASK2, TASK2];
  const cs = [GOOD, WRONG, ...GROUP2];
  const want1 = parseGroupScores(direct(groupText(TASK, [GOOD, WRONG])), 2, 0, 10);
  const want2 = outcome(() => parseGroupScores(direct(groupText(TASK2, GROUP2)), 3, 0, 10));
  assert.deepEqual(want1, [0.8, 0.1], "the fine-tuned judge ranks as taught");
  assert.equal(typeof want2, "string", "and has no scores for the second group");

  const before = posts("chat/completions");
  const res = await computeRewards([group!], undefined, batch(prompts, cs), { onError: "skip" });
  assert.equal(posts("chat/completions") - before, 2, "one request per group, not per completion");
  assert.deepEqual(res.skipped, [false, false, true, true, true]);
  assert.deepEqual(res.total.slice(0, 2), want1);
  assert.deepEqual(res.errors.map((e) => e.index), [2, 3, 4]);
  for (const e of res.errors) assert.ok(e.message.includes(want2 as string), e.message);
});

test("rubric with a judge item against aha serve: the item's scores are the judge's, from the shared cache", async () => {
  const [rubric] = await resolveRewards([{
    type: "rubric", name: "r", items: [
      { name: "mentions_sky", check: "contains", text: "sky" },
      { name: "quality", check: "judge", weight: 2, ...endpointKeys() },
    ],
  }]);
  const cs = [GOOD, WRONG];
  const before = posts("chat/completions");
  const res = await computeRewards([rubric!], undefined, batch(cs.map(() => TASK), cs));
  const quality = cs.map((c) => parseScore(direct(judgeText(TASK, c)), 0, 10));
  assert.deepEqual(res.details.r!.parts!.quality, quality);
  assert.deepEqual(res.details.r!.parts!.mentions_sky, [1, 1]);
  res.total.forEach((v, i) => assert.ok(Math.abs(v - (1 + 2 * quality[i]!) / 3) < 1e-12, `${v}`));
  assert.equal(posts("chat/completions") - before, 0, "the judge test's requests are reused: one endpoint, one cache");
});

test("embedding_similarity against aha serve: cosines of the served embeddings equal a direct forward's, one request per batch", async () => {
  const [emb] = await resolveRewards([{ type: "embedding_similarity", base_url: `${srv.url}/v1`, model: MODEL, api_key_env: KEY_ENV, column: "reference" }]);
  const cs = ["The cat sat on the mat.", "A dog ran far away.", "", "The cat sat on the mat.", "anything"];
  const refs = ["The cat sat on the mat.", "The cat sat on the mat.", "The cat sat on the mat.", "A cat sat on a mat.", null];
  const before = posts("embeddings");
  const res = await computeRewards([emb!], undefined, batch(cs.map(() => "p"), cs, { reference: refs }));
  assert.equal(posts("embeddings") - before, 1, "one /v1/embeddings request for the batch");
  const got = res.byName.embedding_similarity!;
  const want = cs.map((c, i) => (refs[i] === null ? null : c === "" ? 0 : cosineOf(pooled(c), pooled(refs[i]!))));
  want.forEach((w, i) => (w === null ? assert.equal(got[i], null) : assert.ok(Math.abs(got[i]! - w) < 1e-5, `sample ${i}: ${got[i]} vs ${w}`)));
  assert.ok(Math.abs(got[0]! - 1) < 1e-6, "a text and itself");
  assert.ok(got[1]! < got[3]!, `a paraphrase (${got[3]}) is closer than another sentence (${got[1]})`);

  // a completion longer than the embedding model's context: the server refuses the batch (400), the runner asks again
  // sample by sample (isolateErrors), and only that sample fails
  const cs2 = ["Birds fly south.", tooLong(), "Rain falls."], refs2 = ["Birds migrate south.", "Birds migrate south.", "It rains."]; // (not cached yet)
  const refused = posts("embeddings", 400);
  const mixed = await computeRewards([emb!], undefined, batch(cs2.map(() => "p"), cs2, { reference: refs2 }), { onError: "skip" });
  assert.ok(posts("embeddings", 400) > refused, "the server refused the long input");
  assert.deepEqual(mixed.skipped, [false, true, false]);
  [0, 2].forEach((i) => assert.ok(Math.abs(mixed.byName.embedding_similarity![i]! - cosineOf(pooled(cs2[i]!), pooled(refs2[i]!))) < 1e-5, `sample ${i}`));
  assert.equal(mixed.errors.length, 1);
  assert.match(mixed.errors[0]!.message, /400 This model's maximum context length is \d+ tokens.* on sample 1/);
});

test("judge against aha serve: the server's refusals (context too long, unknown model, wrong key) fail their samples with its message, unretried", async () => {
  process.env.AHA_JUDGE_SERVE_WRONG_KEY = "sk-wrong";
  const cases: [Record<string, unknown>, string[], number, RegExp][] = [
    [{}, [GOOD, tooLong()], 400, /maximum context length is \d+ tokens/],
    [{ model: "no-such-judge" }, [GOOD], 404, /The model 'no-such-judge' does not exist/],
    [{ api_key_env: "AHA_JUDGE_SERVE_WRONG_KEY" }, [GOOD], 401, /Incorrect API key/],
  ];
  for (const [keys, cs, status, message] of cases) {
    const { max_retries: _, ...rest } = endpointKeys(); // the client's default retries: a refusal is not retried
    const [judge] = await resolveRewards([{ type: "judge", ...rest, ...keys }]);
    const before = posts("chat/completions", status);
    const res = await computeRewards([judge!], undefined, batch(cs.map(() => TASK), cs), { onError: "skip" });
    assert.equal(posts("chat/completions", status) - before, 1, `one ${status}, not retried`);
    const bad = cs.length - 1;
    assert.deepEqual(res.skipped, cs.map((_, i) => i === bad));
    assert.equal(res.errors.length, 1);
    assert.match(res.errors[0]!.message, new RegExp(`reward "judge" ${status} .*${message.source}.* on sample ${bad}`));
    if (bad > 0) assert.equal(res.total[0], 0.9, "the other sample is scored");
  }
});

/** Mean of the last hidden states over one text's tokens (one forward of that text alone, no padding). */
function pooled(text: string): Float64Array {
  const ids = tok.encode(text), C = model.config.hidden;
  const h = noGrad(() => scope(() => model.forward(Int32Array.from(ids), 1, ids.length).f32()));
  const mean = new Float64Array(C);
  for (let t = 0; t < ids.length; t++) for (let c = 0; c < C; c++) mean[c] += h[t * C + c]! / ids.length;
  return mean;
}
function cosineOf(a: Float64Array, b: Float64Array): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i]! * b[i]!; na += a[i]! ** 2; nb += b[i]! ** 2; }
  return dot / Math.sqrt(na * nb);
}
