// The default run end to end, shortened: the embedded model, tokenizer and data load, a few GRPO steps run, and the
// run reports held-out accuracy before and after, a reward curve and a summary. (The full run's lift is measured,
// not tested: see the README.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runDefault } from "../src/defaults/run.ts";

test("npx aha train (default run), 2 steps: accuracy before/after, reward curve, summary, trained model", async () => {
  const out = mkdtempSync(join(tmpdir(), "aha-default-"));
  try {
    const r = await runDefault({ maxSteps: 2, heldOut: 40, outputDir: out, quiet: true });
    for (const acc of [r.before.accuracy, r.after.accuracy]) assert.ok(acc >= 0 && acc <= 1);
    // the embedded model already writes the format: every held-out completion gets the strict-format reward
    assert.ok(r.before.meanReward["gsm8k/strict_format"] > 0.4, JSON.stringify(r.before.meanReward));
    assert.ok(r.before.accuracy > 0.1, `the embedded model solves some problems before RL (${r.before.accuracy})`);
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
    assert.equal(summary.steps, 2);
    assert.equal(readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").length, 2);
    assert.ok(readFileSync(join(out, "reward.svg"), "utf8").includes("<polyline"));
    assert.ok(existsSync(join(out, "final", "model.safetensors")));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
