// examples/code: the config that trains on code with code_tests runs a few GRPO steps on the CPU (on a fixture
// model in place of its instruct model), every completion's outcome lands in completions.jsonl, the outcome counts
// and rewards in metrics.jsonl; and the tasks' reference solutions pass their own tests in the sandbox, so the
// reward can be earned.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { loadConfigFile } from "../src/grpo/config.ts";
import { GRPOTrainer } from "../src/grpo/trainer.ts";
import { closeSandboxes, computeRewards, resolveRewards } from "../src/rewards/index.ts";

const CONFIG = new URL("../examples/code/config.yaml", import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), "aha-example-code-"));
after(async () => {
  await closeSandboxes();
  rmSync(out, { recursive: true, force: true });
});

test("examples/code: the reference solutions earn the full reward in the sandbox", async () => {
  const cfg = loadConfigFile(CONFIG, { model: fixtureModels()[0] });
  const rows = readFileSync(new URL("../examples/code/tasks.jsonl", import.meta.url), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const [code] = await resolveRewards([cfg.rewardFuncs![0]] as never);
  const res = await computeRewards([code!], undefined, {
    prompts: rows.map((r) => r.prompt), completions: rows.map((r) => "```python\n" + r.solution + "\n```"), completionIds: rows.map(() => []), tests: rows.map((r) => r.tests),
  }, { timeoutMs: 600_000 }); // (Pyodide's cold start counts)
  assert.deepEqual(res.total, rows.map(() => 1));
});

test("examples/code: a few GRPO steps on the CPU with code_tests, outcomes in completions.jsonl and metrics", async () => {
  const model = fixtureModels().find((d) => d.endsWith("qwen2")) ?? fixtureModels()[0]!;
  const cfg = loadConfigFile(CONFIG, { model, output_dir: out, max_steps: 2, max_completion_length: 12, per_device_train_batch_size: 4, num_generations: 2, log_completions: 4, reward_timeout_ms: 600_000 });
  const t = await GRPOTrainer.create(cfg, { quiet: true });
  const metrics = await t.train();
  assert.equal(metrics.length, 2);
  const name = "code_tests/python";
  for (const m of metrics) {
    const counts = ["passed", "failed", "timeout", "error"].map((o) => m[`rewards/${name}/${o}`] as number);
    assert.equal(counts.reduce((a, b) => a + b, 0), 4, `outcome counts ${counts} of 4 completions`);
    assert.ok(typeof m[`rewards/${name}/mean`] === "number");
  }
  const lines = readFileSync(join(out, "completions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 8);
  for (const l of lines) {
    const d = l.details[name];
    assert.ok(["passed", "failed", "timeout", "error"].includes(d.outcome), JSON.stringify(d));
    assert.equal(l.rewards[name], d.outcome === "passed" ? 1 : d.passed / d.total);
  }
});
