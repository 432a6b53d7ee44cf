// Test helpers for the fault tests (not a test file): run `aha` as a child process (killed, or under a file-size
// limit), check that every file under a final name in a folder parses completely, compare runs, and mount small or
// read-only folders where the tests run as root.
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gguf } from "@huggingface/gguf";
import { readSafetensors } from "../src/models/safetensors.ts";
import { ggmlNbytes, type GgmlType } from "../src/export/gguf-types.ts";
import { fixtureModels } from "./fixtures.ts";
import { runMetrics } from "../src/grpo/metrics.ts";

export const root = fileURLToPath(new URL("..", import.meta.url));
export const bin = join(root, "bin", "aha.js");
/** Temporary names of the atomic writers (src/files/atomic.ts). */
export const TEMP_NAME = /\.(tmp|old|trash)-\d+$/;
export const model = fixtureModels().find((d) => d.endsWith("llama")) ?? fixtureModels()[0];

/** A seeded generator in [0, 1) (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The kill-at-a-file-system-call preload (fs-kill.mjs): inert unless AHA_FS_ROOT and AHA_KILL_AT / AHA_FS_LOG are set. */
const preload = ["--import", join(root, "test", "fs-kill.mjs")];

/** Run `aha args…` to completion. */
export function aha(args: string[], env: Record<string, string> = {}, timeout = 120_000): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [...preload, bin, ...args], { encoding: "utf8", env: { ...process.env, ...env }, timeout });
}

/** The file-system calls a run of `aha args…` makes under `fsRoot` ("<call> <path>", in order), and its wall time in ms. */
export function fsCalls(args: string[], fsRoot: string): { calls: string[]; ms: number } {
  const log = join(fsRoot, "..", `${relative(join(fsRoot, ".."), fsRoot)}.fs-calls.txt`);
  rmSync(log, { force: true });
  const t0 = Date.now();
  const r = aha(args, { AHA_FS_ROOT: fsRoot, AHA_FS_LOG: log });
  if (r.status !== 0) throw new Error(`aha ${args.join(" ")}: ${r.stderr}`);
  return { calls: readFileSync(log, "utf8").trim().split("\n"), ms: Date.now() - t0 };
}

/** Run `aha args…`, killed with SIGKILL just before its k-th file-system call under `fsRoot` (1-based). */
export function ahaKilledAt(k: number, args: string[], fsRoot: string): SpawnSyncReturns<string> {
  return aha(args, { AHA_FS_ROOT: fsRoot, AHA_KILL_AT: String(k) });
}

/** Run `aha args…` under a shell's file-size limit (ulimit -f, KiB): writes past it fail with EFBIG. */
export function ahaLimited(kib: number, args: string[]): SpawnSyncReturns<string> {
  const quoted = [process.execPath, bin, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  return spawnSync("bash", ["-c", `ulimit -f ${kib}; exec ${quoted}`], { encoding: "utf8", timeout: 120_000 });
}

/** Run `aha args…`, killing it with SIGKILL after `ms` (unless it ended first); resolves when it has exited. */
export function ahaKilledAfter(ms: number, args: string[], env: Record<string, string> = {}): Promise<{ killed: boolean; stderr: string }> {
  const child = spawn(process.execPath, [...preload, bin, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (b) => { stderr += String(b); });
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  return new Promise((res) => child.on("exit", (_code, signal) => { clearTimeout(timer); res({ killed: signal === "SIGKILL", stderr }); }));
}

/** Every path under `dir` (files and folders), relative, sorted. */
export function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const go = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      out.push(relative(dir, p));
      if (statSync(p).isDirectory()) go(p);
    }
  };
  go(dir);
  return out;
}

/** Throw unless a GGUF file is complete: header, tensor table, and every tensor's data inside the file. */
export async function checkGguf(path: string): Promise<void> {
  const g = await gguf(path, { allowLocalFile: true });
  const size = statSync(path).size;
  const align = Number((g.metadata as Record<string, unknown>)["general.alignment"] ?? 32);
  if (g.tensorDataOffset % BigInt(align) !== 0n) throw new Error(`${path}: data offset ${g.tensorDataOffset} not aligned to ${align}`);
  for (const t of g.tensorInfos) {
    const end = Number(g.tensorDataOffset + t.offset) + ggmlNbytes(t.dtype as unknown as GgmlType, t.shape.map(Number));
    if (Number(t.offset) % align !== 0) throw new Error(`${path}: tensor ${t.name} offset ${t.offset} not aligned`);
    if (end > size) throw new Error(`${path}: tensor ${t.name} ends at ${end}, past the file's ${size} bytes`);
  }
}

/**
 * Throw unless every file under a final name in `dir` parses completely (safetensors header and sizes, GGUF header,
 * tensor table and data offsets, JSON, JSONL lines each ending in a newline). Temporary names are skipped.
 */
export async function checkFinalNames(dir: string): Promise<number> {
  let n = 0;
  for (const rel of walk(dir)) {
    if (rel.split("/").some((part) => TEMP_NAME.test(part))) continue;
    const p = join(dir, rel);
    if (statSync(p).isDirectory()) continue;
    n++;
    try {
      if (p.endsWith(".safetensors")) readSafetensors(p);
      else if (p.endsWith(".gguf")) await checkGguf(p);
      else if (p.endsWith(".json")) JSON.parse(readFileSync(p, "utf8"));
      else if (p.endsWith(".jsonl")) {
        const text = readFileSync(p, "utf8");
        if (text && !text.endsWith("\n")) throw new Error("last line is torn");
        for (const l of text.split("\n").filter(Boolean)) JSON.parse(l);
      } else if (p.endsWith(".svg") && !readFileSync(p, "utf8").trimEnd().endsWith("</svg>")) throw new Error("svg cut short");
    } catch (e) {
      throw new Error(`${p} is under a final name but does not parse: ${(e as Error).message}`);
    }
  }
  return n;
}

/** metrics.jsonl rows without the machine's measurements (step_time, tokens/s, memory: what a resumed run may not reproduce). */
export function metricsOf(dir: string): Record<string, unknown>[] {
  return readFileSync(join(dir, "metrics.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => runMetrics(JSON.parse(l)));
}

/** Content hash of a file or of a folder (every file's relative name and bytes). */
export function digest(path: string): string | null {
  if (!existsSync(path)) return null;
  const h = createHash("sha256");
  if (!statSync(path).isDirectory()) return h.update(readFileSync(path)).digest("hex");
  for (const rel of walk(path)) {
    const p = join(path, rel);
    h.update(rel + "\0");
    if (!statSync(p).isDirectory()) h.update(readFileSync(p));
  }
  return h.digest("hex");
}

/** A GRPO config for the tiny fixture model, written to <dir>/<name>.yaml; `extra` lines ("key: value") override. */
export function trainConfig(dir: string, name: string, extra: string[] = []): string {
  const data = join(dir, "data.jsonl");
  if (!existsSync(data)) writeFileSync(data, Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `count to ${i}`, answer: String(i) })).join("\n") + "\n");
  const p = join(dir, `${name}.yaml`);
  const key = (l: string) => l.split(":")[0];
  const overridden = new Set(extra.map(key));
  writeFileSync(p, [
    // a built-in (inline, no worker start-up) whose values vary within groups, so the weights move
    `model: ${model}`, `dataset: { path: ${data} }`, `reward_funcs: [{ type: regex, pattern: "[aeiou]" }]`,
    "num_generations: 4", "per_device_train_batch_size: 8", "max_completion_length: 8", "learning_rate: 1.0e-3",
    "max_steps: 4", "save_steps: 1", "save_total_limit: 2", "beta: 0.04", "log_completions: 2", `output_dir: ${join(dir, name)}`,
  ].filter((l) => !overridden.has(key(l))).concat(extra, "").join("\n"));
  return p;
}

/** Mount a tmpfs at `dir` (root only); false where that is not possible here. */
export function mountTmpfs(dir: string, opts: string): boolean {
  if (process.getuid?.() !== 0) return false;
  return spawnSync("mount", ["-t", "tmpfs", "-o", opts, "tmpfs", dir]).status === 0;
}

export function remount(dir: string, opts: string): void {
  const r = spawnSync("mount", ["-o", `remount,${opts}`, dir], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`remount ${dir} ${opts}: ${r.stderr}`);
}

export function unmount(dir: string): void {
  spawnSync("umount", ["-l", dir]);
}
