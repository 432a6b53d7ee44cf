// Reward tests: every built-in on hand-written completions with hand-computed values, and the contract of
// computeRewards (columns, nulls, weights, concurrency, errors in both modes, timeouts), metrics and resolveReward.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  completionText,
  computeRewards, correctness, fromVerifier, intAnswer, lengthPenalty, numericProximity, regexReward, resolveReward,
  REWARD_REGISTRY, RewardError, rewardMetrics, softFormat, strictFormat, xmlCount, extractXmlAnswer, parseNumber,
  type RewardArgs, type RewardFunc,
} from "../src/rewards/index.ts";

/** A batch from completions plus columns; prompts and ids made up. */
function batch(completions: string[], columns: Record<string, unknown[]> = {}): RewardArgs {
  return {
    prompts: completions.map((_, i) => `prompt ${i}`),
    completions,
    completionIds: completions.map((c) => Array.from({ length: c.length }, (_, j) => j)),
    ...columns,
  };
}

const close = (a: number | null, b: number) => assert.ok(a !== null && Math.abs(a - b) < 1e-12, `${a} ≈ ${b}`);

const PERFECT = "<think>\nabc\n</think>\n<answer>\n42\n</answer>\n";
const NO_FINAL_NL = "<think>\nabc\n</think>\n<answer>\n42\n</answer>"; // 42 chars

test("extraction helpers", () => {
  assert.equal(extractXmlAnswer("x <answer> 1 </answer> y <answer>\n2\n</answer> z"), "2");
  assert.equal(extractXmlAnswer("  just 7  "), "just 7");
  assert.equal(parseNumber("$1,234.50"), 1234.5);
  assert.equal(parseNumber("7."), 7);
  assert.equal(parseNumber("seven"), null);
  assert.equal(parseNumber("3/4"), null);
});

test("gsm8k/correctness: 2.0 on a numeric match of <answer> with the answer column", () => {
  const cs = ["<answer>\n72\n</answer>", "<answer>72.0</answer>", "<answer>1,000</answer>", "<answer>71</answer>", "72", "<answer>x</answer>", "<answer>5</answer>"];
  assert.deepEqual(correctness(batch(cs, { answer: ["72", "72", "1000", "72", "72", "x", null] })), [2, 2, 2, 0, 2, 2, null]);
  assert.throws(() => correctness(batch(["a"])), /needs an "answer" column/);
});

test("gsm8k/int: 0.5 for an integer answer", () => {
  const cs = ["<answer>\n72\n</answer>", "<answer>7.5</answer>", "<answer>-3</answer>", "<answer>1,000</answer>", "<answer></answer>"];
  assert.deepEqual(intAnswer(batch(cs)), [0.5, 0, 0.5, 0, 0]);
});

test("gsm8k/strict_format", () => {
  const cs = [
    PERFECT,
    "<think>\nline 1\nline 2\n</think>\n<answer>\n42\n</answer>\n", // multi-line reasoning
    "<reasoning>\nabc\n</reasoning>\n<answer>\n42\n</answer>\n", // alias
    PERFECT + "\n", // Python's $ allows one more newline
    NO_FINAL_NL,
    "<think>\nabc\n</reasoning>\n<answer>\n42\n</answer>\n", // mismatched tags
    "Sure. " + PERFECT,
    PERFECT + "xyz",
    "<think>abc</think>\n<answer>\n42\n</answer>\n", // no newlines inside tags
  ];
  assert.deepEqual(strictFormat(batch(cs)), [0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0, 0]);
});

test("gsm8k/soft_format", () => {
  const cs = [
    "<think>abc</think> <answer>42</answer> extra",
    "<think>a\nb</think>\n\n<answer>\n42\n</answer>",
    "<reasoning>a</reasoning><answer>1</answer>",
    "hello <think>a</think><answer>1</answer>",
    "<think>a</think><answer>4",
    "<think>a</think> text <answer>4</answer>",
  ];
  assert.deepEqual(softFormat(batch(cs)), [0.5, 0.5, 0.5, 0, 0, 0]);
});

test("gsm8k/xml_count: 0.125 per tag, small penalty for trailing text", () => {
  const v = xmlCount(batch([
    PERFECT, // 4 × 0.125
    PERFECT + "xyz", // − 3·0.001 (after \n</answer>\n) − (4−1)·0.001 (after \n</answer>)
    NO_FINAL_NL, // no "\n</answer>\n": the recipe charges the whole 42 chars, then +0.001 for the empty tail
    "<reasoning>\nabc\n</reasoning>\n<answer>\n42\n</answer>\n", // alias
    "<think>\nabc\n</think>\n", // two tags
    "no tags at all",
  ]));
  close(v[0]!, 0.5);
  close(v[1]!, 0.494);
  close(v[2]!, 0.5 - 0.042 + 0.001);
  close(v[3]!, 0.5);
  close(v[4]!, 0.25);
  close(v[5]!, 0);
});

test("numeric_proximity: linear in relative error, full at equal", () => {
  const cs = ["<answer>100</answer>", "<answer>90</answer>", "<answer>250</answer>", "<answer>abc</answer>", "<answer>0.5</answer>", "<answer>1</answer>"];
  const v = REWARD_REGISTRY.numeric_proximity!.fn(batch(cs, { answer: ["100", "100", "100", "100", "0", "n/a"] })) as (number | null)[];
  close(v[0]!, 1);
  close(v[1]!, 0.9);
  close(v[2]!, 0);
  close(v[3]!, 0);
  close(v[4]!, 0.5); // |0.5 − 0| / max(0, 1)
  assert.equal(v[5], null);
  const w = numericProximity({ maxReward: 2, column: "target" }).fn(batch(["<answer>75</answer>"], { target: [100] })) as number[];
  close(w[0]!, 1.5);
});

test("regex and length-penalty factories", () => {
  const r = regexReward("^<think>.*</think>", { reward: 0.3, name: "starts_thinking" });
  assert.equal(r.name, "starts_thinking");
  assert.deepEqual(r.fn(batch(["<think>a\nb</think>", "x<think></think>"])), [0.3, 0]);
  assert.deepEqual(regexReward(/ANSWER/i, { otherwise: -1 }).fn(batch(["the answer", "none"])), [1, -1]);
  const tok = lengthPenalty({ target: 5, penaltyPer: 0.1 }); // completionIds length = text length in batch()
  const v = tok.fn(batch(["12345678", "123"])) as number[];
  close(v[0]!, -0.3);
  assert.equal(v[1], 0);
  const ch = lengthPenalty({ target: 2, penaltyPer: 1, unit: "chars" });
  assert.deepEqual(ch.fn({ ...batch(["ab", "🦥🦥🦥"]), completionIds: [[1], [1]] }), [0, -1]);
  assert.throws(() => lengthPenalty({ target: -1, penaltyPer: 1 }), /≥ 0/);
});

test("fromVerifier: async checks with the row's columns", async () => {
  const seen: unknown[] = [];
  const r = fromVerifier("exact", async (prompt, completion, row) => {
    seen.push([prompt, row]);
    if (row.answer === null) return null;
    return completion.trim() === row.answer;
  }, { correct: 1, incorrect: -1 });
  assert.deepEqual(await r.fn(batch([" 4 ", "5", "6"], { answer: ["4", "4", null], extra: [1, 2, 3] })), [1, -1, null]);
  assert.deepEqual(seen[0], ["prompt 0", { answer: "4", extra: 1 }]);
});

test("computeRewards: columns passed through, weights, nulls, all-null → NaN", async () => {
  let got: RewardArgs | undefined;
  const a: RewardFunc = function spy(args) {
    got = args;
    return [1, null, null];
  };
  const b = { name: "b", fn: () => [null, 2, null] };
  const res = await computeRewards([a, b], [1, 0.5], batch(["x", "y", "z"], { answer: ["1", "2", "3"], extra: [true, false, true] }));
  assert.deepEqual(Object.keys(got!).sort(), ["answer", "completionIds", "completions", "extra", "prompts"]);
  assert.deepEqual(got!.answer, ["1", "2", "3"]);
  assert.deepEqual(res.names, ["spy", "b"]);
  assert.deepEqual(res.byName.spy, [1, null, null]);
  assert.deepEqual(res.total.slice(0, 2), [1, 1]);
  assert.ok(Number.isNaN(res.total[2]));
  assert.deepEqual(res.allNull, [2]);
  assert.deepEqual(res.skipped, [false, false, false]);
  assert.deepEqual(res.errors, []);
  // Default weights are 1; weight count must match; batch columns must match in length.
  assert.deepEqual((await computeRewards([() => [2], () => [3]], undefined, batch(["x"]))).total, [5]);
  await assert.rejects(computeRewards([a], [1, 2], batch(["x"])), /2 entries for 1 reward functions/);
  await assert.rejects(computeRewards([a], undefined, batch(["x"], { answer: [] })), /column "answer" has 0 values for 1/);
  // Duplicate names are made unique for metrics.
  assert.deepEqual((await computeRewards([b, b], undefined, batch(["x", "y", "z"]))).names, ["b", "b_2"]);
});

test("computeRewards: async functions run concurrently", async () => {
  // structural, not timed: both functions must be in flight at the same moment
  let inFlight = 0, maxInFlight = 0;
  const slow = (v: number): RewardFunc => async ({ completions }) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((r) => setTimeout(r, 20));
    inFlight--;
    return completions.map(() => v);
  };
  const res = await computeRewards([{ name: "s1", fn: slow(1) }, { name: "s2", fn: slow(2) }], [1, 1], batch(["a", "b"]));
  assert.deepEqual(res.total, [3, 3]);
  assert.equal(maxInFlight, 2, "the second reward started before the first finished");
});

const boom: RewardFunc = function boom({ completions }) {
  return completions.map((c) => {
    if (completionText(c).includes("boom")) throw new Error("cannot parse");
    return 1;
  });
};
const nanny: RewardFunc = function nanny({ completions }) {
  return completions.map((c) => (completionText(c).includes("nan") ? NaN : 1));
};

test("a throwing reward is reported with its sample: stop and skip", async () => {
  const b = batch(["fine", "it goes boom here", "fine too"]);
  await assert.rejects(computeRewards([boom], undefined, b, { onError: "stop" }), (e: Error) => {
    assert.ok(e instanceof RewardError);
    assert.equal(e.problem.reward, "boom");
    assert.equal(e.problem.kind, "threw");
    assert.equal(e.problem.index, 1);
    assert.match(e.message, /reward "boom" threw Error: cannot parse on sample 1/);
    assert.match(e.message, /prompt: "prompt 1"/);
    assert.match(e.message, /completion: "it goes boom here"/);
    return true;
  });
  const res = await computeRewards([boom, () => [0.5, 0.5, 0.5]], undefined, b, { onError: "skip" });
  assert.deepEqual(res.skipped, [false, true, false]);
  assert.deepEqual(res.byName.boom, [1, null, 1]);
  assert.equal(res.total[0], 1.5);
  assert.ok(Number.isNaN(res.total[1]));
  assert.equal(res.errors.length, 1);
  assert.equal(res.errors[0]!.completion, "it goes boom here");
  // Without isolation the whole batch is affected.
  const whole = await computeRewards([boom], undefined, b, { onError: "skip", isolateErrors: false });
  assert.deepEqual(whole.skipped, [true, true, true]);
  assert.equal(whole.errors[0]!.index, null);
});

test("a NaN reward is reported with its sample: stop and skip", async () => {
  const b = batch(["ok", "gives nan", "ok"]);
  await assert.rejects(computeRewards([nanny], undefined, b), (e: Error) => {
    assert.ok(e instanceof RewardError);
    assert.equal(e.problem.kind, "not_a_number");
    assert.equal(e.problem.index, 1);
    assert.match(e.message, /reward "nanny" returned NaN .* on sample 1/);
    assert.match(e.message, /completion: "gives nan"/);
    return true;
  });
  const res = await computeRewards([nanny], undefined, b, { onError: "skip" });
  assert.deepEqual(res.skipped, [false, true, false]);
  assert.deepEqual(res.total.map(Number.isNaN), [false, true, false]);
  assert.equal(res.errors[0]!.reward, "nanny");
  // Other wrong returns: undefined, a string, the wrong length, not an array.
  const bad = await computeRewards(
    [{ name: "undef", fn: () => [1, undefined as never, 1] }, { name: "short", fn: () => [1] }, { name: "obj", fn: () => ({}) as never }],
    undefined, b, { onError: "skip" },
  );
  assert.deepEqual(bad.errors.map((e) => [e.reward, e.kind, e.index]), [["undef", "not_a_number", 1], ["short", "wrong_length", null], ["obj", "not_an_array", null]]);
  assert.deepEqual(bad.skipped, [true, true, true]);
});

test("a reward that never finishes times out", async () => {
  const hang = { name: "hang", fn: () => new Promise<never>(() => {}) };
  const t0 = performance.now();
  await assert.rejects(computeRewards([hang], undefined, batch(["a"]), { timeoutMs: 50 }), (e: Error) => {
    assert.ok(e instanceof RewardError);
    assert.equal(e.problem.kind, "timeout");
    assert.match(e.message, /reward "hang" timed out after 50 ms/);
    return true;
  });
  const res = await computeRewards([hang, () => [1, 1]], undefined, batch(["a", "b"]), { timeoutMs: 50, onError: "skip" });
  assert.deepEqual(res.skipped, [true, true]);
  assert.equal(res.errors[0]!.kind, "timeout");
  assert.ok(performance.now() - t0 < 1000);
});

test("metrics: TRL names, nulls ignored, sample std", () => {
  const m = rewardMetrics({ names: ["a", "b"], perFunc: [[1, null, 3], [null, null, 5]], total: [1, NaN, 8] });
  close(m["rewards/a/mean"]!, 2);
  close(m["rewards/a/std"]!, Math.SQRT2);
  close(m["rewards/b/mean"]!, 5);
  assert.ok(Number.isNaN(m["rewards/b/std"]));
  close(m.reward!, 4.5);
});

test("resolveReward: built-ins, factories, user TypeScript files", async () => {
  for (const n of ["gsm8k/correctness", "gsm8k/int", "gsm8k/strict_format", "gsm8k/soft_format", "gsm8k/xml_count", "numeric_proximity"]) {
    assert.equal((await resolveReward(n)).name, n);
  }
  const lp = await resolveReward({ type: "length_penalty", target: 1, penalty_per: 2, unit: "chars" });
  assert.deepEqual(await lp.fn(batch(["abc"])), [-4]);
  await assert.rejects(resolveReward({ type: "length_penalty", target: 1 }), /needs "penalty_per"/);
  await assert.rejects(resolveReward("gsm8k/nope"), /unknown reward "gsm8k\/nope"; built-ins: gsm8k\/correctness/);

  const dir = mkdtempSync(join(tmpdir(), "aha-rewards-"));
  try {
    writeFileSync(join(dir, "rewards.ts"), [
      "type Args = { completions: string[] };",
      "export const brevity = ({ completions }: Args): number[] => completions.map((c) => (c.length < 4 ? 0.2 : 0));",
      "export default { name: 'custom', fn: ({ completions }: Args) => completions.map(() => 1) };",
      "export const notAFunction = 3;",
    ].join("\n"));
    const r = await resolveReward("./rewards.ts#brevity", { baseDir: dir });
    assert.equal(r.name, "brevity");
    assert.deepEqual(await r.fn(batch(["ab", "abcdef"])), [0.2, 0]);
    assert.equal((await resolveReward(join(dir, "rewards.ts"))).name, "custom");
    await assert.rejects(resolveReward("./rewards.ts#missing", { baseDir: dir }), /no export "missing" \(exports: .*brevity/);
    await assert.rejects(resolveReward("./rewards.ts#notAFunction", { baseDir: dir }), /is number, expected a reward function/);
    await assert.rejects(resolveReward("./nothere.ts#x", { baseDir: dir }), /cannot import/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
