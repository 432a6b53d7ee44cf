// One run per output folder. A fresh run refuses a folder that holds another run (its metrics, completions,
// checkpoints or final model) and names the two ways on: --resume (continue it) and --overwrite (replace it). A
// resumed run continues from the newest complete checkpoint and cuts metrics.jsonl and completions.jsonl back to it,
// so the files end up as an uninterrupted run's; a torn last line (a disk that filled mid-append) is dropped with a
// warning naming the file. Nothing of an earlier run is touched before the new run's first step has run: the start
// only reads (and checks that the folder can be written), and removes what dead processes left under temporary names.
// Is not: a lock against two live runs in one folder.
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { cleanStaleTemps, ensureDir, namingPath, removeFolder, writeFileAtomic } from "../files/atomic.ts";
import { listCheckpoints } from "./checkpoint.ts";

export const LOG_FILES = ["metrics.jsonl", "completions.jsonl"];
/** Files and folders a run writes in its output folder (the bases of its temporary names). */
const RUN_ENTRY = /^(checkpoint-\d+|final|metrics\.jsonl|completions\.jsonl|reward\.svg|summary\.json|run_config\.json)$/;

/** What in `dir` belongs to an earlier run, one description each (empty: nothing). */
export function priorRun(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  for (const f of LOG_FILES) {
    const p = join(dir, f);
    if (existsSync(p) && statSync(p).size > 0) found.push(f);
  }
  const ckpts = listCheckpoints(dir);
  if (ckpts.length) found.push(ckpts.map((s) => `checkpoint-${s}`).join(", "));
  if (existsSync(join(dir, "final"))) found.push("final/");
  return found;
}

export interface RunStart {
  /** the checkpoint folder to continue from (resume), or null */
  checkpoint: string | null;
  /** lines for the console: cleaned temporary names, the checkpoint continued from */
  notes: string[];
}

/**
 * Decide how a run starts in `dir`, touching nothing of an earlier run: a fresh run into a used folder throws
 * (unless overwrite), a resumed one gets the newest complete checkpoint. Temporary names of dead processes are cleaned.
 */
export function startRun(dir: string, o: { resume?: boolean; overwrite?: boolean }): RunStart {
  checkRunDir(dir, o);
  ensureDir(dir); // an output_dir that cannot be written fails now, not after the first step
  namingPath("write to", dir, () => accessSync(dir, constants.W_OK));
  const notes = cleanStaleTemps(dir, (base) => RUN_ENTRY.test(base));
  if (o.resume) {
    const last = listCheckpoints(dir).pop();
    if (last === undefined) {
      notes.push(`resume: no checkpoint in ${dir} yet; starting from step 0${priorRun(dir).length ? " (its logs will be cut back to step 0)" : ""}`);
      return { checkpoint: null, notes };
    }
    for (const f of LOG_FILES) readLog(join(dir, f)); // a bad line is reported now, before any work
    const checkpoint = join(dir, `checkpoint-${last}`);
    notes.push(`resume: continuing from ${checkpoint} (step ${last}); metrics.jsonl and completions.jsonl are cut back to step ${last}`);
    return { checkpoint, notes };
  }
  return { checkpoint: null, notes };
}

/**
 * Throw if the options clash, `dir` is not a folder, or a fresh run (not resume, not overwrite) would write into a
 * folder that holds another run. Reads only.
 */
export function checkRunDir(dir: string, o: { resume?: boolean; overwrite?: boolean }): void {
  if (o.resume && o.overwrite) throw new Error("--resume and --overwrite (overwrite_output_dir) exclude each other: continue the run in the folder, or replace it");
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new Error(`output_dir ${dir} exists and is not a folder`);
  const prior = o.resume || o.overwrite ? [] : priorRun(dir);
  if (prior.length)
    throw new Error(`output_dir ${dir} holds another run (${prior.join("; ")}): pass --resume to continue it, ` +
      `--overwrite (overwrite_output_dir: true) to replace it, or choose another output_dir`);
}

/** Remove an earlier run's checkpoints and final model (overwrite), each folder whole or not at all. */
export function clearRun(dir: string): void {
  if (!existsSync(dir)) return;
  for (const n of readdirSync(dir)) if (/^(checkpoint-\d+|final)$/.test(n)) removeFolder(join(dir, n));
}

/** A JSONL log's complete lines with their steps, and its torn last line (an append cut short: no newline), if any. */
function readLog(path: string): { lines: { text: string; step: number }[]; torn: string } {
  if (!existsSync(path)) return { lines: [], torn: "" };
  const all = namingPath("read", path, () => readFileSync(path, "utf8")).split("\n");
  const torn = all.pop()!; // "" when the file ends with a newline
  const lines = all.flatMap((text, i) => {
    if (!text) return [];
    let row: { step?: unknown };
    try {
      row = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path}: line ${i + 1} is not valid JSON (${(e as Error).message}); fix or remove that line`);
    }
    return [{ text, step: typeof row.step === "number" ? row.step : 0 }];
  });
  return { lines, torn };
}

/**
 * Keep the lines of a JSONL log up to `step`, rewriting the file atomically (only if anything goes). A torn last line
 * is dropped; returns a warning for it, naming the file.
 */
export function cutLog(path: string, step: number): string | null {
  const { lines, torn } = readLog(path);
  const kept = lines.filter((l) => l.step <= step);
  if (torn || kept.length !== lines.length) writeFileAtomic(path, kept.map((l) => l.text + "\n").join(""));
  return torn ? `${path}: dropped a torn last line (${torn.length} bytes without a newline; an append was cut short)` : null;
}
