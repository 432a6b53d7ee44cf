// Folders appear whole and nothing is left lying about: a kill inside the final save leaves no partial final/ (and
// --resume writes it whole); a kill between the two renames of an export's swap loses nothing (the next export into
// that name puts the old folder back first); temporary names that dead processes left are removed at the next start
// (a live process's are not); an error ("exists and is not a folder") leaves no temporary folder.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { aha, ahaKilledAt, checkFinalNames, digest, fsCalls, metricsOf, model, trainConfig } from "./faults.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-atomic-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(r.stdout);
}

test("a kill inside the final save leaves no partial final/; --resume writes it whole", async () => {
  const ref = join(tmp, "final-ref"), dir = join(tmp, "final-kill");
  const { calls } = fsCalls(["train", trainConfig(tmp, "final-ref", ["save_steps: 2"])], ref);
  // just before final's adapter_config.json is written: its adapter_model.safetensors is already complete
  const k = 1 + calls.findIndex((c) => /\/final[^/]*\/adapter_config\.json/.test(c));
  assert.ok(k > 0, "the run writes final/adapter_config.json");
  const cfg = trainConfig(tmp, "final-kill", ["save_steps: 2"]);
  assert.equal(ahaKilledAt(k, ["train", cfg], dir).signal, "SIGKILL");
  assert.ok(!existsSync(join(dir, "final")) || existsSync(join(dir, "final", "adapter_config.json")), "final/ is there without its adapter_config.json");
  await checkFinalNames(dir);
  const r = aha(["train", cfg, "--resume"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(digest(join(dir, "final")), digest(join(ref, "final")));
  assert.deepEqual(metricsOf(dir), metricsOf(ref));
  assert.deepEqual(readdirSync(dir).filter((n) => /\.(tmp|old|trash)-\d+$/.test(n)), []);
});

test("a kill between the two renames of an HF export loses nothing: the next export into that name puts the old one back", () => {
  const dir = join(tmp, "swap"), out = join(dir, "merged");
  const args = (type: string, extra: string[] = []) => ["export", "--model", model, "--adapter", join(model, "adapter"), "--format", "hf", "--type", type, "--out", out, ...extra];
  assert.equal(aha(args("f32")).status, 0);
  const old = digest(out);
  cpSync(out, join(tmp, "swap-old"), { recursive: true });
  const { calls } = fsCalls(args("bf16", ["--overwrite"]), dir); // (this replaces it: put the old export back)
  rmSync(out, { recursive: true });
  cpSync(join(tmp, "swap-old"), out, { recursive: true });
  // just before the new folder is renamed into place, after the old one was moved aside
  const k = 1 + calls.findIndex((c) => new RegExp(`^renameSync ${out}\\.tmp-\\d+$`).test(c));
  assert.ok(k > 0, `no rename of ${out}.tmp-… in ${calls.join("\n")}`);
  assert.equal(ahaKilledAt(k, args("bf16", ["--overwrite"]), dir).signal, "SIGKILL");
  assert.ok(!existsSync(out), "the kill fell between the two renames");
  // the next export into that name (here one that then fails: without --overwrite) first puts the old folder back
  const again = aha(args("bf16"));
  assert.match(again.stderr, /already exists; pass overwrite/);
  assert.equal(digest(out), old, "the old export is back, whole");
  assert.deepEqual(readdirSync(dir).filter((n) => n !== "merged"), [], "temporary names left");
});

test("temporary names left by dead processes are removed at the next start; a live process's stay", () => {
  const dead = deadPid();
  const run = join(tmp, "stale"), exp = join(tmp, "stale-export");
  mkdirSync(join(run, `checkpoint-3.tmp-${dead}`), { recursive: true });
  writeFileSync(join(run, `checkpoint-3.tmp-${dead}`, "optimizer.safetensors"), "partial");
  writeFileSync(join(run, `metrics.jsonl.tmp-${dead}`), "{");
  mkdirSync(join(run, `final.trash-${dead}`));
  writeFileSync(join(run, `notes.txt.tmp-${dead}`), "not ours: stays");
  writeFileSync(join(run, `metrics.jsonl.tmp-${process.pid}`), "a live process's: stays");
  const r = aha(["train", trainConfig(tmp, "stale", ["max_steps: 1"])]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(run).filter((n) => n.includes(".tmp-") || n.includes(".trash-")).sort(), [`metrics.jsonl.tmp-${process.pid}`, `notes.txt.tmp-${dead}`]);

  mkdirSync(exp);
  writeFileSync(join(exp, `model.gguf.tmp-${dead}`), "GGUF partial");
  writeFileSync(join(exp, `model.Modelfile.tmp-${dead}`), "FROM");
  const e = aha(["export", "--model", model, "--format", "gguf", "--type", "q8_0", "--out", join(exp, "model.gguf")]);
  assert.equal(e.status, 0, e.stderr);
  assert.deepEqual(readdirSync(exp).sort(), ["model.Modelfile", "model.gguf"]);
});

test("an export that finds a file where its folder goes stops before writing, names the path, and leaves no temporary folder", () => {
  const dir = join(tmp, "not-a-folder"), out = join(dir, "merged");
  mkdirSync(dir);
  writeFileSync(out, "a file");
  const r = aha(["export", "--model", model, "--format", "hf", "--out", out, "--overwrite"]);
  assert.equal(r.status, 1);
  assert.ok(r.stderr.includes(`${out} exists and is not a folder`), r.stderr);
  assert.deepEqual(readdirSync(dir), ["merged"]);
});
