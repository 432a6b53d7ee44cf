// Advantages and every normalisation against hand-computed values.
import { test } from "node:test";
import assert from "node:assert/strict";
import { groupAdvantages } from "../src/grpo/advantages.ts";

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
