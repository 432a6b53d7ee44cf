// Multi-turn rollouts (src/generate/turns.ts, src/agents): the batched engine — appended ids prefilled into the live
// KV cache in forwards shared with other sequences' decode steps, handlers resolving out of order, holes, repacks —
// gives the same conversations as a one-sequence-at-a-time reference that runs a full forward (no cache) per token
// with the same random streams; the log-probs of the model's own tokens equal those of one forward over the whole
// conversation (the training batch), where tool and template tokens are masked; an environment (a small game) drives
// episodes, its messages rendered by the chat template, its rewards summed, whole trajectories given to rewards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fixtureModels } from "./fixtures.ts";
import { CausalLM } from "../src/models/model.ts";
import { loadTokenizer, type Message } from "../src/tokenize/index.ts";
import { fromHost, noGrad, scope, sampleTokens } from "../src/engine/index.ts";
import { mixSeed, Xoshiro } from "../src/engine/rng.ts";
import { generateTurns, type MultiTurnCompletion, type TurnEnd } from "../src/generate/turns.ts";
import { completionLogprobs } from "../src/grpo/loss.ts";
import { padBatch } from "../src/grpo/rollout.ts";
import { validateConfig } from "../src/grpo/config.ts";
import { agentRollout, runEpisodes, type Agent } from "../src/agents/rollout.ts";
import { idsAfterTurn } from "../src/agents/template.ts";
import type { Environment, StepResult } from "../src/agents/environment.ts";
import { GRPOTrainer } from "../src/grpo/trainer.ts";
import { completionText, type NamedReward } from "../src/rewards/index.ts";

const models = fixtureModels();
const modelDir = (name: string) => models.find((d) => basename(d) === name)!;

/** A deterministic handler on ids: up to 3 turns, then appends 1–9 ids (some after a delay, so answers come back out of order). */
function handler(V: number, stops: Set<number>, log?: Map<number, number[][]>) {
  const turns = new Map<number, number>();
  return async (t: TurnEnd): Promise<number[] | null> => {
    const k = (turns.get(t.seq) ?? 0) + 1;
    turns.set(t.seq, k);
    log?.set(t.seq, [...(log.get(t.seq) ?? []), t.ids]);
    if (t.finish === "length" || k >= 3) return null;
    let h = t.seq * 31 + k;
    for (const id of t.ids) h = (h * 1103515245 + id) >>> 0;
    if (h % 3 === 0) await new Promise((r) => setTimeout(r, h % 7));
    const ids = Array.from({ length: 1 + (h % 9) }, (_, i) => { let x = (h >>> (i % 16)) % V; while (stops.has(x)) x = (x + 1) % V; return x; });
    return ids.length < t.room ? ids : null;
  };
}

/** The reference: each sequence alone, a full forward over everything so far for every token, the same streams. */
async function reference(model: CausalLM, prompts: number[][], n: number, maxTokens: number, stops: number[], seed: number, onTurnEnd: (t: TurnEnd) => Promise<number[] | null>): Promise<MultiTurnCompletion[]> {
  const out: MultiTurnCompletion[] = [];
  const stop = new Set(stops);
  for (const [p, prompt] of prompts.entries()) {
    for (let i = 0; i < n; i++) {
      const rng = new Xoshiro(mixSeed(seed, p, i));
      const c: MultiTurnCompletion = { prompt: p, index: i, tokenIds: [], own: [], logprobs: [], turns: 0, finishReason: "stop" };
      let turnStart = 0;
      for (;;) {
        const seq = [...prompt, ...c.tokenIds];
        const { tokens, logprobs } = noGrad(() => scope(() => {
          const V = model.config.vocabSize;
          const z = model.logits(model.forward(Int32Array.from(seq), 1, seq.length)).f32();
          return sampleTokens(fromHost(z.slice((seq.length - 1) * V), [1, V]), Float32Array.of(rng.next()), { temperature: 1 });
        }));
        const tok = tokens[0];
        c.tokenIds.push(tok); c.own.push(1); c.logprobs.push(logprobs[0]);
        const finish = stop.has(tok) ? "stop" : c.tokenIds.length >= maxTokens ? "length" : null;
        if (!finish) continue;
        c.turns++;
        const more = await onTurnEnd({ seq: p * n + i, ids: c.tokenIds.slice(turnStart), finish, room: maxTokens - c.tokenIds.length });
        if (finish === "length") { c.finishReason = "length"; break; }
        if (more === null) break;
        for (const t of more) { c.tokenIds.push(t); c.own.push(0); c.logprobs.push(0); }
        turnStart = c.tokenIds.length;
      }
      out.push(c);
    }
  }
  return out;
}

for (const name of ["llama", "gemma3"]) {
  test(`${name}: batched multi-turn generation equals one sequence at a time (full forwards, no cache)`, async () => {
    const dir = modelDir(name);
    if (!dir) return;
    const model = CausalLM.load(dir);
    const V = model.config.vocabSize;
    const stops = Array.from({ length: 24 }, (_, i) => 40 + i * 17); // frequent enough to end turns every ~20 tokens
    const prompts = [[5, 17, 99, 3, 250], [7, 8, 9, 10, 11, 12, 13, 14, 300], [400, 2, 61]];
    const n = 3, maxTokens = 40, seed = 11;
    const stats = { forwards: 0, repacks: 0 };
    const batched = await generateTurns(model, prompts, { n, maxTokens, stopTokenIds: stops, seed, onTurnEnd: handler(V, new Set(stops)), stats });
    const ref = await reference(model, prompts, n, maxTokens, stops, seed, handler(V, new Set(stops)));
    assert.equal(batched.length, ref.length);
    let appended = 0, multi = 0;
    batched.forEach((b, i) => {
      const r = ref[i];
      assert.deepEqual(b.tokenIds, r.tokenIds, `completion ${i}: tokens`);
      assert.deepEqual(b.own, r.own, `completion ${i}: own mask`);
      assert.equal(b.turns, r.turns);
      assert.equal(b.finishReason, r.finishReason);
      b.logprobs.forEach((lp, t) => assert.ok(Math.abs(lp - r.logprobs[t]) < 1e-4, `completion ${i} token ${t}: ${lp} vs ${r.logprobs[t]}`));
      appended += b.own.filter((o) => o === 0).length;
      if (b.turns > 1) multi++;
    });
    assert.ok(multi >= 5 && appended > 20, `the case exercises several turns (${multi} multi-turn completions, ${appended} appended ids)`);
    // fewer forwards than one per token per sequence: turns share them
    const sampled = batched.reduce((a, b) => a + b.own.filter((o) => o === 1).length, 0);
    assert.ok(stats.forwards < sampled / 3, `${stats.forwards} forwards for ${sampled} sampled tokens`);
    if (name === "llama") assert.ok(stats.repacks > 0, "the cache was repacked at least once");
  });
}

test("the log-probs of the model's own tokens equal one forward over the whole conversation; appended tokens are masked", async () => {
  const model = CausalLM.load(modelDir("llama"));
  const V = model.config.vocabSize;
  const stops = Array.from({ length: 24 }, (_, i) => 40 + i * 17);
  const prompts = [[5, 17, 99, 3, 250], [7, 8, 9, 10, 11, 12, 13, 14, 300]];
  const n = 4;
  const out = await generateTurns(model, prompts, { n, maxTokens: 48, stopTokenIds: stops, seed: 3, onTurnEnd: handler(V, new Set(stops)) });
  const batch = padBatch(out.map((c) => prompts[c.prompt]), out.map((c) => c.tokenIds), out.map((c) => c.own), out.map(() => true), 0);
  const logp = noGrad(() => scope(() => completionLogprobs(model, batch, 1).logp.f32()));
  let own = 0, worst = 0;
  out.forEach((c, b) => {
    for (let t = 0; t < batch.T; t++) {
      const m = batch.completionMask[b * batch.T + t];
      assert.equal(m, t < c.own.length ? c.own[t] : 0, `mask of completion ${b} token ${t}`);
      if (!m) continue;
      own++;
      worst = Math.max(worst, Math.abs(logp[b * batch.T + t] - c.logprobs[t]));
    }
  });
  assert.ok(own > 50 && batch.completionMask.some((m, i) => m === 0 && i % batch.T < out[Math.floor(i / batch.T)].tokenIds.length), "own and appended tokens both present");
  assert.ok(worst < 1e-4, `max |Δ logp| ${worst}`);
});

// ---- an environment: a guessing game ----

/** Guess the secret digit: "higher"/"lower" until the model writes it (reward 1, done) or 3 guesses are spent (−0.1 per wrong guess). */
function guessingGame(row: Record<string, unknown>): Environment {
  const secret = Number(row.secret);
  let guesses = 0;
  return {
    reset: () => [{ role: "user", content: `Guess my number (0-9). Hint: ${secret % 2 ? "odd" : "even"}.` }],
    step: (msg): StepResult => {
      guesses++;
      const m = /\d/.exec(msg.content);
      if (m && Number(m[0]) === secret) return { done: true, reward: 1, messages: [] };
      const reply = !m ? "Say a digit." : Number(m[0]) < secret ? "Higher." : "Lower.";
      return { done: guesses >= 3, reward: -0.1, messages: [{ role: "user", content: reply }] };
    },
  };
}

/** Replays the game over the assistant turns of a trajectory: the environment's replies and total reward. */
function replay(secret: number, msgs: Message[]): { replies: string[]; reward: number } {
  const replies: string[] = [];
  let reward = 0, guesses = 0;
  for (const m of msgs) {
    if (m.role !== "assistant") continue;
    guesses++;
    const d = /\d/.exec(m.content as string);
    if (d && Number(d[0]) === secret) { reward += 1; break; }
    reward -= 0.1;
    if (guesses >= 3) break;
    replies.push(!d ? "Say a digit." : Number(d[0]) < secret ? "Higher." : "Lower.");
  }
  return { replies, reward };
}

/**
 * A copy of a fixture model whose generation_config lists 40 more end-of-turn ids (as Llama 3.1 lists three), none of
 * them in the template's rendering of the game's replies: a random model then ends its turns every ~13 tokens.
 */
function withFrequentStops(dir: string): string {
  const tok = loadTokenizer(dir);
  const used = new Set<number>();
  for (const reply of ["Higher.", "Lower.", "Say a digit.", "Guess my number (0-9). Hint: odd.", "Guess my number (0-9). Hint: even.", "dummy"])
    for (const id of tok.encodeChat([{ role: "user", content: reply }, { role: "assistant", content: "" }, { role: "user", content: reply }], { addGenerationPrompt: true })) used.add(id);
  const extra = Array.from({ length: 512 }, (_, i) => i).filter((i) => i > 2 && !used.has(i)).filter((_, k) => k % 11 === 0).slice(0, 40);
  const out = mkdtempSync(join(tmpdir(), "aha-stops-"));
  for (const f of readdirSync(dir)) if (statSync(join(dir, f)).isFile()) copyFileSync(join(dir, f), join(out, f));
  const gen = JSON.parse(readFileSync(join(dir, "generation_config.json"), "utf8"));
  writeFileSync(join(out, "generation_config.json"), JSON.stringify({ ...gen, eos_token_id: [2, ...extra] }));
  return out;
}

test("environment: a guessing game drives the episodes; its messages are prefilled as the template renders them; rewards see the trajectory", async () => {
  const dir = withFrequentStops(modelDir("llama"));
  const model = CausalLM.load(dir);
  const tok = loadTokenizer(dir);
  const cfg = validateConfig({ model: dir, maxCompletionLength: 160, numGenerations: 4, perDeviceTrainBatchSize: 16, seed: 5, environment: guessingGame, temperature: 1 });
  const agent: Agent = { tools: [], format: null, environment: guessingGame, maxToolCallingIterations: Infinity, toolTimeoutMs: 1000 };
  const rows = [{ secret: 3 }, { secret: 8 }, { secret: 0 }, { secret: 5 }];
  const seen: number[] = [];
  const echo: NamedReward = { name: "turns", fn: ({ completions }) => completions.map((c) => { seen.push((c as Message[]).length); return (c as Message[]).filter((m) => m.role === "assistant").length; }) };
  const ro = await agentRollout(model, tok, rows, [echo], cfg, 0, agent);
  const eps = await runEpisodes(model, tok, rows, agent, { ...cfg, n: 4, seed: mixSeed(cfg.seed, 0) });
  let multi = 0;
  eps.forEach((ep, i) => {
    const secret = Number(rows[ep.row].secret);
    // (a last turn that ran out of tokens is not sent to the game)
    const { replies, reward } = replay(secret, ep.completion.finishReason === "length" ? ep.messages.slice(0, -1) : ep.messages);
    const userTurns = ep.messages.filter((m) => m.role === "user").map((m) => m.content);
    // (a reply that does not fit the token budget is dropped and the episode cut, as TRL drops tool results)
    assert.deepEqual(userTurns, ep.cut === "budget" ? replies.slice(0, userTurns.length) : replies, `episode ${i}: the game's replies`);
    if (ep.cut !== "budget") assert.equal(userTurns.length, replies.length);
    assert.ok(Math.abs((ep.envReward ?? 0) - reward) < 1e-9, `episode ${i}: reward ${ep.envReward} vs ${reward}`);
    assert.ok(Math.abs((ro.rewards.byName.environment[i] ?? 0) - reward) < 1e-9, "the rollout's environment reward");
    assert.equal(ro.rewards.byName.turns[i], ep.completion.turns, "rewards see every assistant turn");
    // the completion is: own turn, the template's rendering of the reply up to the next generation prompt, own turn, …
    // the completion is: own turn, the template's rendering of the game's reply up to the next generation prompt, own turn, …
    const ids = ep.completion.tokenIds, stopIds = [...new Set([...tok.eosTokenIds, ...model.config.eosTokenIds])];
    let pos = 0;
    for (const [j, m] of ep.messages.entries()) {
      if (m.role === "assistant") {
        const start = pos;
        while (pos < ids.length && ep.completion.own[pos] === 1) pos++;
        assert.ok(pos > start, `episode ${i}: assistant turn ${j} has its own tokens`);
      } else {
        const after = idsAfterTurn(tok, ep.messages[j - 1], [m], { stopIds });
        assert.deepEqual(ids.slice(pos, pos + after.length), after, `episode ${i}: the reply's ids`);
        assert.ok(ep.completion.own.slice(pos, pos + after.length).every((o) => o === 0), "the reply takes no loss");
        pos += after.length;
      }
    }
    assert.equal(pos, ids.length, `episode ${i}: every id accounted for`);
    if (ep.completion.turns > 1) multi++;
  });
  assert.ok(multi >= 8, `${multi} episodes took several turns`);
  assert.ok(eps.filter((e) => e.messages.filter((m) => m.role === "user").length >= 2).length >= 3, "some episodes got two replies or more");
  assert.deepEqual(ro.completionIds, eps.map((e) => e.completion.tokenIds), "the rollout is the same episodes (same seed)");
  assert.equal(seen.length, 16);
  rmSync(dir, { recursive: true, force: true });
});

test("environment in the trainer: metrics, the environment reward, completions.jsonl with whole conversations", async () => {
  const dir = modelDir("llama");
  const out = mkdtempSync(join(tmpdir(), "aha-env-"));
  try {
    const rows = Array.from({ length: 4 }, (_, i) => ({ secret: i * 2 + 1 }));
    const t = await GRPOTrainer.create({
      model: dir, fullFinetune: true, environment: guessingGame, maxCompletionLength: 64, numGenerations: 4, perDeviceTrainBatchSize: 8,
      maxSteps: 2, learningRate: 1e-3, seed: 1, outputDir: out, logCompletions: 3, gradientCheckpointing: false,
    }, { rows, quiet: true });
    const metrics = await t.train();
    assert.equal(metrics.length, 2);
    for (const k of ["episodes/turns_mean", "episodes/cut_by_budget", "episodes/cut_by_iterations", "tools/call_frequency", "rewards/environment/mean", "reward"]) assert.ok(k in metrics[0], `metric ${k}`);
    assert.ok((metrics[0]["episodes/turns_mean"] as number) > 1);
    const logged = readFileSync(join(out, "completions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(logged.length >= 3);
    const c = logged[0].completion as Message[];
    assert.ok(Array.isArray(c) && c[0].role === "assistant", "a logged completion is the conversation");
    assert.ok(Array.isArray(logged[0].prompt) && /Guess my number/.test(logged[0].prompt[0].content), "with its own prompt (the reset)");
    assert.ok(typeof completionText(c) === "string");
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
