// Fault injection: `aha train` and `aha export` (gguf, hf, peft) killed with SIGKILL at seeded random moments — half
// of the trials just before a file-system call picked at random among those the run makes in its output folder (inside
// checkpoint, final and export saves, between the renames of a folder swap, mid-file between writes, around log
// appends: test/fs-kill.mjs), half after a random delay. After each kill: every file under a final name parses
// completely; a resumed train run reproduces the uninterrupted run's metrics.jsonl (all but the machine's measurements: step_time, tokens/s, memory),
// completions.jsonl and final weights bit for bit; an export run again replaces what the killed one left and writes
// the same bytes as an uninterrupted export, leaving no temporary name behind.
// AHA_FAULT_TRIALS (train trials; exports get half as many, split over the formats; default 16 → 24 in all) and
// AHA_FAULT_SEED (default 18) choose the set; bench/fault-trials.sh runs a fuller one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { aha, ahaKilledAfter, ahaKilledAt, checkFinalNames, digest, fsCalls, metricsOf, model, rng, TEMP_NAME, trainConfig } from "./faults.ts";

const TRIALS = Number(process.env.AHA_FAULT_TRIALS ?? 16);
const SEED = Number(process.env.AHA_FAULT_SEED ?? 18);
const tmp = mkdtempSync(join(tmpdir(), "aha-faults-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

/** Kill a run of `args` as trial `i` decides: just before a random one of its file-system calls in `fsRoot` (even
 *  trials), or after a random delay (odd); returns how. */
async function killRun(i: number, next: () => number, args: string[], fsRoot: string, ref: { calls: string[]; ms: number }): Promise<string> {
  if (i % 2 === 0) {
    const k = 1 + Math.floor(next() * ref.calls.length);
    const r = ahaKilledAt(k, args, fsRoot);
    assert.equal(r.signal, "SIGKILL", `trial ${i}: the run was to be killed at call ${k} (${ref.calls[k - 1]}): ${r.stderr}`);
    return `before call ${k} of ${ref.calls.length}, ${ref.calls[k - 1].replace(fsRoot, "")}`;
  }
  const ms = Math.round(next() * ref.ms);
  const r = await ahaKilledAfter(ms, args);
  return `after ${ms} ms${r.killed ? "" : " (it had finished)"}`;
}

const noTemps = (dir: string) => readdirSync(dir).filter((n) => TEMP_NAME.test(n));

/** Where a kill fell, for the summary: the kind of file the interrupted call was on, or how a timed kill went. */
function where(how: string): string {
  if (how.startsWith("after")) return how.includes("finished") ? "after a delay (run had ended)" : "after a random delay";
  for (const [k, re] of [["checkpoint save", /\/checkpoint-/], ["final save", /\/final/], ["log append", /\.jsonl/], ["reward plot", /\.svg/], ["gguf", /\.gguf|Modelfile/], ["folder swap", /renameSync|rmSync/]] as const) if (re.test(how)) return k;
  return "other write";
}
const tally = (xs: string[]) => Object.entries(xs.reduce<Record<string, number>>((a, x) => ((a[x] = (a[x] ?? 0) + 1), a), {})).map(([k, n]) => `${k} ${n}`).join(", ");

test(`kill -9 during train (${TRIALS} seeded trials): final names parse, --resume reproduces the run bit for bit`, async (t) => {
  const refDir = join(tmp, "ref");
  const ref = fsCalls(["train", trainConfig(tmp, "ref")], refDir);
  assert.ok(ref.calls.some((c) => c.includes("/checkpoint-")) && ref.calls.some((c) => c.includes("/final")), "the calls reach into checkpoint and final saves");
  assert.ok(metricsOf(refDir).some((m) => (m.kl as number) > 0), "the reference run's weights moved (else bit-for-bit equality would say little)");
  const next = rng(SEED);
  const seen: string[] = [];
  let files = 0;
  for (let i = 0; i < TRIALS; i++) {
    const name = `run${i}`, dir = join(tmp, name);
    const cfg = trainConfig(tmp, name);
    const how = await killRun(i, next, ["train", cfg], dir, ref);
    seen.push(how);
    files += await checkFinalNames(dir).catch((e) => assert.fail(`trial ${i} (killed ${how}): ${e.message}`));
    const r = aha(["train", cfg, "--resume"]);
    assert.equal(r.status, 0, `trial ${i} (killed ${how}): resume failed: ${r.stderr}`);
    assert.deepEqual(metricsOf(dir), metricsOf(refDir), `trial ${i} (killed ${how}): metrics differ`);
    assert.equal(readFileSync(join(dir, "completions.jsonl"), "utf8"), readFileSync(join(refDir, "completions.jsonl"), "utf8"), `trial ${i}: completions differ`);
    assert.equal(digest(join(dir, "final")), digest(join(refDir, "final")), `trial ${i} (killed ${how}): final weights differ`);
    assert.deepEqual(readdirSync(dir).sort(), readdirSync(refDir).sort(), `trial ${i} (killed ${how}): the folder's entries differ`);
    assert.deepEqual(noTemps(dir), []);
    rmSync(dir, { recursive: true });
  }
  assert.ok(seen.some((s) => s.includes("/checkpoint-")), `no trial was killed inside a checkpoint save: ${seen.join("; ")}`);
  t.diagnostic(`train: ${TRIALS} kills (${tally(seen.map(where))}); ${files} files under final names checked, 0 partial; resume exact in ${TRIALS} of ${TRIALS}`);
});

const FORMATS = [
  { format: "gguf", out: "model.gguf", type: "f16", old: "q8_0" },
  { format: "hf", out: "merged", type: "bf16", old: "f32" },
  { format: "peft", out: "adapter", type: "bf16", old: "f32" },
];

test(`kill -9 during export (${FORMATS.length * Math.ceil(TRIALS / 2 / FORMATS.length)} seeded trials): the old or the new output, whole; a rerun completes`, async (t) => {
  const next = rng(SEED + 1);
  const seen: string[] = [];
  let files = 0, replacing = 0;
  const adapter = join(model, "adapter");
  for (const f of FORMATS) {
    const args = (out: string, type: string) => ["export", "--model", model, "--adapter", adapter, "--format", f.format, "--type", type, "--out", out, "--overwrite"];
    const refDir = join(tmp, `export-ref-${f.format}`);
    const ref = fsCalls(args(join(refDir, f.out), f.type), refDir);
    const oldDir = join(tmp, `export-old-${f.format}`);
    assert.equal(aha(args(join(oldDir, f.out), f.old)).status, 0);
    const [newOut, oldOut] = [digest(join(refDir, f.out)), digest(join(oldDir, f.out))];
    for (let i = 0; i < Math.ceil(TRIALS / 2 / FORMATS.length); i++) {
      const dir = join(tmp, `export-${f.format}-${i}`), out = join(dir, f.out);
      const withOld = next() < 0.5; // half the trials replace an earlier export
      if (withOld) cpSync(oldDir, dir, { recursive: true });
      const how = await killRun(i, next, args(out, f.type), dir, ref);
      seen.push(`${f.format}`);
      if (withOld) replacing++;
      const what = `${f.format} trial ${i} (${withOld ? "replacing an old export, " : ""}killed ${how})`;
      files += await checkFinalNames(dir).catch((e) => assert.fail(`${what}: ${e.message}`));
      // a kill between the two renames of a swap leaves the old output whole under <out>.old-<pid> (the rerun restores it)
      const aside = existsSync(dir) ? readdirSync(dir).find((n) => n.startsWith(`${f.out}.old-`)) : undefined;
      const now = digest(out) ?? (aside ? digest(join(dir, aside)) : null);
      assert.ok(now === newOut || now === (withOld ? oldOut : null), `${what}: ${f.out} is neither the old output nor the new one, whole`);
      const r = aha(args(out, f.type));
      assert.equal(r.status, 0, `${what}: the rerun failed: ${r.stderr}`);
      assert.equal(digest(out), newOut, `${what}: the rerun's output differs from an uninterrupted export`);
      assert.deepEqual(noTemps(dir), [], `${what}: temporary names left`);
      rmSync(dir, { recursive: true, force: true });
    }
    assert.ok(statSync(join(refDir, f.out)));
  }
  t.diagnostic(`export: ${seen.length} kills (${tally(seen)}; ${replacing} replacing an earlier export); ${files} files under final names checked, 0 partial; every rerun gave the uninterrupted export's bytes`);
});
