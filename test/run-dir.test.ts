// One run per output folder: a fresh run refuses a used folder (naming --resume and --overwrite) and touches
// nothing; --overwrite replaces the old run only once the new one's first step has run, so a later --resume continues
// the new run, not the old one's newest checkpoint; a run that fails before its first step leaves the old logs as they
// were; --resume says which checkpoint it continues and cuts the logs back; a torn last line is dropped with a warning
// naming the file, a bad line elsewhere is an error naming the file and line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GRPOTrainer } from "../src/grpo/trainer.ts";
import { digest, metricsOf, model } from "./faults.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-rundir-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const rows = Array.from({ length: 16 }, (_, i) => ({ prompt: `question ${i}: what is ${i} + ${i}?`, answer: String(2 * i) }));
const base = {
  model, maxCompletionLength: 6, numGenerations: 4, perDeviceTrainBatchSize: 8, learningRate: 1e-2, seed: 5, beta: 0.04,
  logCompletions: 2, rewardFuncs: [{ type: "regex", pattern: "[aeiou]" }], rewardWorkers: 0,
};

/** Train in `dir`; console lines are returned. */
async function run(dir: string, extra: Record<string, unknown>, opts: Record<string, unknown> = {}): Promise<string> {
  let out = "";
  const t = await GRPOTrainer.create({ ...base, outputDir: dir, ...extra } as never, { rows, console: { write: (s: string) => (out += s) }, ...opts });
  await t.train();
  return out;
}

test("a fresh run into a folder that holds a run refuses, names --resume and --overwrite, and touches nothing", async () => {
  const dir = join(tmp, "used");
  await run(dir, { maxSteps: 2, saveSteps: 1 });
  const before = digest(dir);
  await assert.rejects(run(dir, { maxSteps: 2 }), (e: Error) => /--resume/.test(e.message) && /--overwrite/.test(e.message) && e.message.includes(dir) && /checkpoint-1/.test(e.message));
  assert.equal(digest(dir), before, "the earlier run's files changed");
});

test("--overwrite replaces the old run after the new one's first step; a later --resume continues the new run", async () => {
  const dir = join(tmp, "over"), fresh = join(tmp, "over-ref");
  await run(dir, { maxSteps: 6, saveSteps: 3 }); // the old run: checkpoint-3, checkpoint-6, final
  const cfg = { maxSteps: 4, saveSteps: 2, overwriteOutputDir: true };
  await run(dir, cfg, { stopAfter: 2 }); // the new run, interrupted after checkpoint-2
  assert.ok(!existsSync(join(dir, "checkpoint-6")) && !existsSync(join(dir, "final")), "the old run's checkpoints and final model are gone");
  const log = await run(dir, { maxSteps: 4, saveSteps: 2 }, { resume: true });
  assert.match(log, /continuing from .*checkpoint-2 \(step 2\)/);
  await run(fresh, cfg);
  assert.deepEqual(metricsOf(dir).map((m) => m.step), [1, 2, 3, 4]);
  assert.deepEqual(metricsOf(dir), metricsOf(fresh));
  assert.equal(digest(join(dir, "final")), digest(join(fresh, "final")));
});

test("a run that fails before its first step (a missing column) leaves the earlier run's logs and checkpoints as they were", async () => {
  const dir = join(tmp, "keep");
  await run(dir, { maxSteps: 2, saveSteps: 1 });
  const before = digest(dir);
  // gsm8k/correctness needs an `answer` column; these rows have none: the first rollout's rewards fail
  const t = await GRPOTrainer.create({ ...base, outputDir: dir, maxSteps: 2, overwriteOutputDir: true, rewardFuncs: ["gsm8k/correctness"] } as never,
    { rows: rows.map(({ prompt }) => ({ prompt })), quiet: true });
  await assert.rejects(t.train(), /answer/);
  assert.equal(digest(dir), before, "the earlier run's files changed");
});

test("--resume prints its checkpoint, cuts the logs back, and drops a torn last line with a warning naming the file", async () => {
  const full = join(tmp, "full"), dir = join(tmp, "torn");
  const cfg = { maxSteps: 4, saveSteps: 2 };
  await run(full, cfg);
  await run(dir, cfg, { stopAfter: 3 }); // logged step 3, newest checkpoint is checkpoint-2
  const metrics = join(dir, "metrics.jsonl");
  appendFileSync(metrics, '{"step":4,"loss":0.1,"rew'); // an append cut short (disk full)
  const log = await run(dir, cfg, { resume: true });
  assert.match(log, /continuing from .*checkpoint-2 \(step 2\)/);
  assert.ok(log.includes(`${metrics}: dropped a torn last line`), log);
  assert.deepEqual(metricsOf(dir), metricsOf(full));
  assert.equal(readFileSync(join(dir, "completions.jsonl"), "utf8"), readFileSync(join(full, "completions.jsonl"), "utf8"));
});

test("a bad line before the last one is an error naming the file and the line", async () => {
  const dir = join(tmp, "bad-line");
  await run(dir, { maxSteps: 2, saveSteps: 1 });
  const metrics = join(dir, "metrics.jsonl");
  const lines = readFileSync(metrics, "utf8").split("\n");
  lines[0] = lines[0].slice(0, 20);
  writeFileSync(metrics, lines.join("\n"));
  await assert.rejects(run(dir, { maxSteps: 3, saveSteps: 1 }, { resume: true }), (e: Error) => e.message.includes(`${metrics}: line 1 is not valid JSON`));
});
