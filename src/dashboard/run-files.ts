// Reading a training run's folder for the dashboard: metrics.jsonl from a byte offset (only complete lines, so a
// line being appended is read on the next poll; a file that shrank, as --resume cuts it, starts over), the newest
// lines of completions.jsonl (read from the end: the file can be large), run_config.json and summary.json.
// Is: read-only, tolerant (a missing file is empty, a torn or bad line is skipped). Is not: a watcher (the page polls).
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { join } from "node:path";

export type Row = Record<string, unknown>;

function readRange(path: string, from: number, to: number): string {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(to - from);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, from + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

const parse = (line: string): Row | null => {
  try {
    const v = JSON.parse(line);
    return v && typeof v === "object" && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
};

/** metrics.jsonl rows after byte `offset`: the rows, the offset to ask from next, and whether the file started over. */
export function readMetrics(dir: string, offset: number): { rows: Row[]; offset: number; reset: boolean } {
  const path = join(dir, "metrics.jsonl");
  if (!existsSync(path)) return { rows: [], offset: 0, reset: offset > 0 };
  const size = statSync(path).size, reset = size < offset;
  const from = reset ? 0 : offset;
  if (size === from) return { rows: [], offset: from, reset };
  const text = readRange(path, from, size);
  const end = text.lastIndexOf("\n") + 1; // complete lines only
  const rows = text.slice(0, end).split("\n").filter(Boolean).map(parse).filter((r): r is Row => r !== null);
  return { rows, offset: from + Buffer.byteLength(text.slice(0, end)), reset };
}

/** The newest n rows of completions.jsonl, newest last. */
export function tailCompletions(dir: string, n: number, maxBytes = 2 ** 20): Row[] {
  const path = join(dir, "completions.jsonl");
  if (!existsSync(path) || n <= 0) return [];
  const size = statSync(path).size, from = Math.max(0, size - maxBytes);
  const lines = readRange(path, from, size).split("\n");
  if (from > 0) lines.shift(); // a partial first line
  return lines.filter(Boolean).slice(-n).map(parse).filter((r): r is Row => r !== null);
}

export function readJsonFile(dir: string, name: string): unknown {
  const path = join(dir, name);
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return null;
  }
}

/** Newest modification time (ms) of the run's log files, 0 when it has none. */
export function lastUpdate(dir: string): number {
  let t = 0;
  for (const f of ["metrics.jsonl", "completions.jsonl"]) {
    const p = join(dir, f);
    if (existsSync(p)) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}
