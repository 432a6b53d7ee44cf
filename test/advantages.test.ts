// Advantages and every normalisation against hand-computed values.
import { test } from "node:test";
import assert from "node:assert/strict";
import { computeAdvantages, gdpoAdvantages, groupAdvantages } from "../src/grpo/advantages.ts";

const close = (a: ArrayLike<number>, b: number[], tol = 1e-5) => b.forEach((x, i) => assert.ok(Math.abs(a[i] - x) < tol, `[${i}] ${a[i]} vs ${x}`));

test("group scaling: (r - group mean) / (unbiased group std + 1e-4)", () => {
  // group 1: 1, 0, 0.5, 0 → mean 0.375, std = sqrt(((.625²+.375²+.125²+.375²)/3)) = 0.478714
  // group 2: 2, 2, 0, 1 → mean 1.25, std = sqrt((.75²+.75²+1.25²+.25²)/3) = 0.957427
  const r = [1, 0, 0.5, 0, 2, 2, 0, 1];
  const a = groupAdvantages(r, 4, "group");
  const s1 = 0.478714 + 1e-4, s2 = 0.957427 + 1e-4;
  close(a.advantages, [0.625 / s1, -0.375 / s1, 0.125 / s1, -0.375 / s1, 0.75 / s2, 0.75 / s2, -1.25 / s2, -0.25 / s2], 1e-4);
  close(a.groupStd, [0.478714, 0.957427]);
  assert.equal(a.fracZeroStd, 0);
});

test("batch scaling divides by the std of all rewards; none only centres", () => {
  const r = [1, 0, 0.5, 0, 2, 2, 0, 1];
  // batch mean 0.8125; unbiased std over 8 values
  const m = 0.8125, sd = Math.sqrt(r.reduce((a, x) => a + (x - m) ** 2, 0) / 7);
  close(groupAdvantages(r, 4, "batch").advantages, [0.625, -0.375, 0.125, -0.375, 0.75, 0.75, -1.25, -0.25].map((x) => x / (sd + 1e-4)), 1e-5);
  close(groupAdvantages(r, 4, "none").advantages, [0.625, -0.375, 0.125, -0.375, 0.75, 0.75, -1.25, -0.25]);
});

test("a group with equal rewards has zero advantages and counts in frac_reward_zero_std; NaN samples are left out", () => {
  const a = groupAdvantages([1, 1, 1, 1, 0, NaN, 2, 1], 4, "group");
  close(a.advantages.subarray(0, 4), [0, 0, 0, 0]);
  assert.equal(a.fracZeroStd, 0.5);
  // group 2 without the NaN: 0, 2, 1 → mean 1, std 1
  close(a.advantages.subarray(4), [-1 / 1.0001, 0, 1 / 1.0001, 0]);
  assert.throws(() => groupAdvantages([1, 2, 3], 2, "group"), /whole groups/);
});

test("scale_rewards mean (MaxRL): (r - group mean) / (|group mean| + 1e-4); a group of zeros stays 0", () => {
  // binary rewards: [1, 0, 0, 0] → mean 0.25: [3, -1, -1, -1] (the paper's example); [0, 0, 0, 0] → 0
  const a = groupAdvantages([1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1], 4, "mean");
  close(a.advantages, [0.75 / 0.2501, -0.25 / 0.2501, -0.25 / 0.2501, -0.25 / 0.2501, 0, 0, 0, 0, 0.25 / 0.7501, 0.25 / 0.7501, -0.75 / 0.7501, 0.25 / 0.7501]);
  // a negative group mean keeps the signs of r - mean
  const neg = groupAdvantages([-1, -3], 2, "mean").advantages;
  assert.ok(neg[0] > 0 && neg[1] < 0, `${neg}`);
});

test("GDPO (normalize_then_sum): each function normalised in its group, weighted sum, then normalised over the batch", () => {
  // two functions, two groups of 2; f0 = correctness, f1 = format (null: not applicable)
  const f0 = [1, 0, 1, 1], f1: (number | null)[] = [0.5, 0.5, 1, 0], w = [1, 2];
  const total = f0.map((x, i) => x * w[0] + (f1[i] ?? 0) * w[1]);
  const a = gdpoAdvantages([f0, f1], total, w, 2);
  // group 0: f0 → ±(0.5 / (0.707107 + 1e-4)), f1 → 0 (no spread); group 1: f0 → 0, f1 → ±0.5 / (0.707107 + 1e-4)
  const z = 0.5 / (Math.SQRT1_2 + 1e-4);
  const summed = [z, -z, 2 * z, -2 * z];
  const m = summed.reduce((x, y) => x + y) / 4, sd = Math.sqrt(summed.reduce((x, y) => x + (y - m) ** 2, 0) / 3);
  close(a.advantages, summed.map((x) => (x - m) / (sd + 1e-4)));
  assert.deepEqual(a.spread, [true, true]);
  // the same totals under sum_then_normalize: group 0 totals 2, 1 and group 1 totals 3, 1
  const b = computeAdvantages({ perFunc: [f0, f1], total }, { numGenerations: 2, scaleRewards: "group", multiObjectiveAggregation: "sum_then_normalize" });
  close(b.advantages, groupAdvantages(total, 2, "group").advantages as unknown as number[]);
  // a group where no function varies has no spread; a skipped sample (NaN total) gets 0 and is left out
  const c = gdpoAdvantages([[1, 1, 0, 1], [0, 0, 1, 1]], [1, 1, NaN, 2], [1, 1], 2);
  assert.deepEqual(c.spread, [false, false]);
  assert.equal(c.advantages[2], 0);
});
