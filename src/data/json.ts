// JSON Lines and JSON readers.
// Is: JSONL (one object per line, blank lines skipped) and JSON (an array of objects, or {data: [...]}).
// Is not: a streaming parser — the file is read whole (GSM8K-sized data sets are a few MB).
import { readFile } from "node:fs/promises";
import { DatasetError } from "./errors.ts";
import type { Row } from "./types.ts";

function isObject(v: unknown): v is Row {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function kind(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
}

/** Parse JSONL text; `file` is used in error messages. */
export function parseJsonl(text: string, file: string): Row[] {
  const rows: Row[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (i === 0 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    if (line.trim() === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new DatasetError(file, `line ${i + 1}`, `malformed JSON (${(e as Error).message}): ${line.slice(0, 80)}`);
    }
    if (!isObject(v)) throw new DatasetError(file, `line ${i + 1}`, `expected a JSON object, got ${kind(v)}`);
    rows.push(v);
  }
  return rows;
}

/** Parse a JSON document holding an array of objects or {data: [...]}. */
export function parseJsonDocument(text: string, file: string): Row[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    throw new DatasetError(file, "", `malformed JSON (${(e as Error).message}); for one object per line name the file .jsonl`);
  }
  const list = Array.isArray(doc) ? doc : isObject(doc) && Array.isArray(doc.data) ? doc.data : undefined;
  if (!list) throw new DatasetError(file, "", `expected an array of objects or {"data": [...]}, got ${isObject(doc) ? `an object with keys ${Object.keys(doc).slice(0, 5).join(", ")}` : kind(doc)}`);
  list.forEach((v, i) => {
    if (!isObject(v)) throw new DatasetError(file, `row ${i}`, `expected an object, got ${kind(v)}`);
  });
  return list as Row[];
}

export async function readJsonl(file: string): Promise<Row[]> {
  return parseJsonl(await readFile(file, "utf8"), file);
}

export async function readJson(file: string): Promise<Row[]> {
  return parseJsonDocument(await readFile(file, "utf8"), file);
}
