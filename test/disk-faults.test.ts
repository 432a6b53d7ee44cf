// Disk full and read-only folders, for real: a training run on a small tmpfs that fills during a checkpoint save, and
// runs and exports under a file-size limit (ulimit -f: EFBIG), stop with an error that names the path, leave the
// earlier checkpoints and exports whole and no temporary name behind; after space is freed, --resume reproduces the
// uninterrupted run. A read-only output folder gives the same clear stop with its files untouched.
// Mounting a tmpfs (and remounting it read-only) needs root, which CI has; elsewhere those cases use chmod or skip.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { aha, ahaLimited, checkFinalNames, digest, metricsOf, model, mountTmpfs, remount, TEMP_NAME, trainConfig, unmount, walk } from "./faults.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-disk-"));
const mounts: string[] = [];
process.on("exit", () => {
  for (const m of mounts) unmount(m);
  rmSync(tmp, { recursive: true, force: true });
});
const root = process.getuid?.() === 0;
const temps = (dir: string) => walk(dir).filter((p) => p.split("/").some((x) => TEMP_NAME.test(x)));

/** A fresh folder on a tmpfs of `size` (root), or null. */
function tmpfs(name: string, size: string): string | null {
  const dir = join(tmp, name);
  mkdirSync(dir);
  if (!mountTmpfs(dir, `size=${size}`)) return null;
  mounts.push(dir);
  return dir;
}

test("disk full during a checkpoint save (a 700 KiB tmpfs): the error names the path, earlier files stay whole; --resume after freeing space reproduces the run", async (t) => {
  const disk = tmpfs("full", "700k");
  if (!disk) return t.skip("mounting a tmpfs needs root (CI has it)");
  const ref = join(tmp, "full-ref");
  assert.equal(aha(["train", trainConfig(tmp, "full-ref")]).status, 0);
  const cfg = trainConfig(disk, "run"), dir = join(disk, "run");
  const r = aha(["train", cfg]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`aha: cannot (write|append to) ${dir}/\\S+: no space left on device \\(ENOSPC\\)`));
  assert.ok(existsSync(join(dir, "checkpoint-1")), "the first checkpoint was written before the disk filled");
  await checkFinalNames(dir);
  assert.deepEqual(temps(dir), [], "temporary names left");
  remount(disk, "size=20m"); // space freed
  const resumed = aha(["train", cfg, "--resume"]);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.deepEqual(metricsOf(dir), metricsOf(ref));
  assert.equal(digest(join(dir, "final")), digest(join(ref, "final")));
});

test("a file-size limit (ulimit -f) during a checkpoint save and an export: errors name the path (EFBIG); earlier files stay whole", async () => {
  // optimizer.safetensors (~300 KiB) is past the limit, the adapter (~150 KiB) and logs are not
  const cfg = trainConfig(tmp, "efbig"), dir = join(tmp, "efbig");
  const r = ahaLimited(200, ["train", cfg]);
  assert.equal(r.status, 1, r.stderr);
  assert.ok(r.stderr.includes(`aha: cannot write ${join(dir, "checkpoint-1", "optimizer.safetensors")}: file too large (EFBIG)`), r.stderr);
  assert.ok(!existsSync(join(dir, "checkpoint-1")));
  assert.deepEqual(temps(dir), []);
  await checkFinalNames(dir);

  const out = join(tmp, "efbig-export", "model.gguf");
  assert.equal(aha(["export", "--model", model, "--format", "gguf", "--type", "q8_0", "--out", out]).status, 0);
  const old = digest(out);
  const e = ahaLimited(300, ["export", "--model", model, "--format", "gguf", "--type", "f32", "--out", out, "--overwrite"]);
  assert.equal(e.status, 1, e.stderr);
  assert.ok(e.stderr.includes(`aha: cannot write ${out}: file too large (EFBIG)`), e.stderr);
  assert.equal(digest(out), old, "the earlier export changed");
  assert.deepEqual(temps(join(tmp, "efbig-export")), []);
});

/** Make `dir` read-only: a read-only remount of its tmpfs (root), or chmod (others); null where neither works. */
function readOnly(dir: string, onTmpfs: boolean): boolean {
  if (onTmpfs) { remount(dir, "ro"); return true; }
  if (root) return false; // root ignores permission bits
  for (const p of [dir, ...walk(dir).map((q) => join(dir, q))].reverse()) chmodSync(p, 0o555);
  return true;
}

test("a read-only output folder: train and export stop with an error naming the path; the files in it are untouched", async (t) => {
  const disk = root ? tmpfs("ro", "20m") : join(tmp, "ro");
  if (!disk) return t.skip("root without mount: cannot make a read-only folder here");
  if (!existsSync(disk)) mkdirSync(disk);
  const cfg = trainConfig(disk, "run", ["max_steps: 2"]), dir = join(disk, "run");
  assert.equal(aha(["train", cfg]).status, 0);
  const out = join(disk, "adapter-export");
  assert.equal(aha(["export", "--model", model, "--adapter", join(dir, "final"), "--format", "peft", "--out", out]).status, 0);
  const before = digest(disk);
  if (!readOnly(disk, root)) return t.skip("cannot make a read-only folder here");
  try {
    const r = aha(["train", cfg, "--resume", "--max-steps", "4"]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`aha: cannot \\S+( \\S+)? ${dir}\\S*: (read-only file system \\(EROFS\\)|permission denied \\(EACCES\\))`));
    const e = aha(["export", "--model", model, "--adapter", join(dir, "final"), "--format", "peft", "--type", "bf16", "--out", out, "--overwrite"]);
    assert.equal(e.status, 1, e.stderr);
    assert.match(e.stderr, new RegExp(`aha: cannot \\S+( \\S+)? ${disk}\\S*: (read-only file system \\(EROFS\\)|permission denied \\(EACCES\\))`));
    assert.equal(digest(disk), before, "files in the read-only folder changed");
    assert.deepEqual(readdirSync(disk).sort(), ["adapter-export", "data.jsonl", "run", "run.yaml"]);
  } finally {
    if (!root) for (const p of [disk, ...walk(disk).map((q) => join(disk, q))]) chmodSync(p, 0o755);
  }
});
