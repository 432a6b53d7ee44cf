// A training process killed with SIGKILL after its first checkpoint, then resumed with --resume, ends with the same
// metrics.jsonl as a run that was never interrupted (step_time aside).
import { runMetrics } from "../src/grpo/metrics.ts";
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixtureModels } from "./fixtures.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = join(root, "bin", "aha.js");
const tmp = mkdtempSync(join(tmpdir(), "aha-kill-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

function config(out: string): string {
  const p = join(tmp, `${out}.yaml`);
  const data = join(tmp, "data.jsonl");
  writeFileSync(data, Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `count to ${i}`, answer: String(i) })).join("\n"));
  writeFileSync(p, [
    `model: ${fixtureModels()[0]}`, `dataset: { path: ${data} }`, "reward_funcs: [numeric_proximity]",
    "num_generations: 4", "per_device_train_batch_size: 8", "max_completion_length: 8", "learning_rate: 1.0e-3",
    "max_steps: 6", "save_steps: 2", "beta: 0.04", `output_dir: ${join(tmp, out)}`, "",
  ].join("\n"));
  return p;
}

const metrics = (dir: string) => readFileSync(join(tmp, dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => runMetrics(JSON.parse(l)));

test("kill -9 after a checkpoint, resume: same metrics as an uninterrupted run", async () => {
  const full = spawnSync(process.execPath, [bin, "train", config("full")], { encoding: "utf8" });
  assert.equal(full.status, 0, full.stderr);
  const cfg = config("killed");
  const child = spawn(process.execPath, [bin, "train", cfg], { stdio: "ignore" });
  const ckpt = join(tmp, "killed", "checkpoint-2", "trainer_state.json");
  await new Promise<void>((resolve, reject) => {
    const t0 = Date.now();
    const poll = setInterval(() => {
      if (existsSync(ckpt)) { clearInterval(poll); child.kill("SIGKILL"); resolve(); }
      else if (Date.now() - t0 > 60_000) { clearInterval(poll); child.kill("SIGKILL"); reject(new Error("no checkpoint within 60 s")); }
    }, 5);
  });
  await new Promise((r) => child.once("exit", r));
  assert.ok(!existsSync(join(tmp, "killed", "final")), "the killed run must not have finished");
  const resumed = spawnSync(process.execPath, [bin, "train", cfg, "--resume"], { encoding: "utf8" });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.deepEqual(metrics("killed"), metrics("full"));
});
