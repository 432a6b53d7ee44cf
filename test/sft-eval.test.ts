// SFT lowers the completion-token loss on the rows it trains on; eval reports accuracy from the correctness reward
// and the mean of every reward function.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixtureModels } from "./fixtures.ts";
import { CausalLM } from "../src/models/model.ts";
import { loadTokenizer } from "../src/tokenize/index.ts";
import { validateConfig } from "../src/grpo/config.ts";
import { sft } from "../src/grpo/sft.ts";
import { evaluate } from "../src/grpo/eval.ts";
import type { NamedReward } from "../src/rewards/index.ts";
import { Xoshiro } from "../src/engine/rng.ts";

const dir = fixtureModels()[0];

test("SFT: the completion loss falls on the rows it trains on", () => {
  const model = CausalLM.load(dir);
  model.addAdapter({ r: 8, lora_alpha: 16, target_modules: "all-linear" }, new Xoshiro(1).fn);
  const tok = loadTokenizer(dir);
  const rows = Array.from({ length: 4 }, (_, i) => ({ prompt: `add ${i} and ${i}`, completion: `<answer>${2 * i}</answer>` }));
  const cfg = validateConfig({ model: dir, learningRate: 1e-2, maxSteps: 30, perDeviceTrainBatchSize: 4, numGenerations: 4, lrSchedulerType: "constant", chatTemplate: false });
  const { losses } = sft(model, tok, rows, cfg);
  assert.equal(losses.length, 30);
  assert.ok(losses[29] < losses[0] * 0.5, `loss ${losses[0]} → ${losses[29]}`);
});

test("eval: accuracy is the share of full correctness rewards; every function gets a mean", async () => {
  const model = CausalLM.load(dir);
  const tok = loadTokenizer(dir);
  const rows = Array.from({ length: 6 }, (_, i) => ({ prompt: `q${i}`, answer: String(i) }));
  // a 'correctness' that is full exactly for even answers, whatever the completion
  const correctness: NamedReward = { name: "my/correctness", fn: ({ answer }) => answer.map((a) => (Number(a) % 2 === 0 ? 2 : 0)) };
  const length: NamedReward = { name: "length", fn: ({ completions }) => completions.map((c) => c.length) };
  const cfg = validateConfig({ model: dir, rewardFuncs: ["x"], maxCompletionLength: 5, chatTemplate: false });
  const r = await evaluate(model, tok, rows, [length, correctness], cfg);
  assert.equal(r.accuracyReward, "my/correctness");
  assert.equal(r.accuracy, 0.5);
  assert.equal(r.meanReward["my/correctness"], 1);
  assert.ok(r.meanReward.length > 0);
  assert.equal(r.n, 6);
});
