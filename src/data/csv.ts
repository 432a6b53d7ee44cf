// CSV/TSV reader: a small RFC 4180 parser (quoted fields, "" escapes, delimiters and newlines inside quotes,
// CRLF or LF records), first record = header.
// Is: strict and exact — a stray quote, an unterminated quote or a record with the wrong number of fields is an
// error naming the line. Is not: a type-inferring reader — every value is a string (rewards parse numbers
// themselves; GSM8K answers are strings in its JSONL too). Simplifies: blank lines are skipped (as pandas does);
// an empty header cell is named "Unnamed: <i>" (as pandas names an index column).
// Why hand-written: ~80 lines, no dependency, and the exact error messages the data layer promises.
import { readFile } from "node:fs/promises";
import { DatasetError } from "./errors.ts";
import type { Row } from "./types.ts";

/** Parse CSV text into records of raw string fields, each with the 1-based line it starts on. */
export function parseCsvRecords(text: string, file: string, delimiter = ","): { fields: string[]; line: number }[] {
  const out: { fields: string[]; line: number }[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const startLine = line;
    const fields: string[] = [];
    // Blank line: skip.
    if (text[i] === "\n" || (text[i] === "\r" && text[i + 1] === "\n")) {
      i += text[i] === "\r" ? 2 : 1;
      line++;
      continue;
    }
    for (;;) {
      let field = "";
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= n) throw new DatasetError(file, `line ${startLine}`, "unterminated quoted field (a \" opens a field that never closes)");
          const c = text[i]!;
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === "\n") line++;
          field += c;
          i++;
        }
        const next = text[i];
        if (i < n && next !== delimiter && next !== "\n" && !(next === "\r" && text[i + 1] === "\n")) {
          throw new DatasetError(file, `line ${line}`, `unexpected ${JSON.stringify(next)} after a closing quote (quotes inside a quoted field are written "")`);
        }
      } else {
        const start = i;
        while (i < n && text[i] !== delimiter && text[i] !== "\n" && !(text[i] === "\r" && text[i + 1] === "\n")) {
          if (text[i] === '"') throw new DatasetError(file, `line ${line}`, `stray " inside an unquoted field (quote the whole field and write the quote as "")`);
          i++;
        }
        field = text.slice(start, i);
      }
      fields.push(field);
      if (i < n && text[i] === delimiter) {
        i++;
        continue;
      }
      if (text[i] === "\r") i++;
      if (text[i] === "\n") {
        i++;
        line++;
      }
      break;
    }
    out.push({ fields, line: startLine });
  }
  return out;
}

/** Parse CSV text (header + records) into rows of strings. */
export function parseCsv(text: string, file: string, delimiter = ","): Row[] {
  const records = parseCsvRecords(text, file, delimiter);
  if (records.length === 0) throw new DatasetError(file, "", "empty file (no header line)");
  const header = records[0]!.fields.map((h, i) => (h === "" ? `Unnamed: ${i}` : h));
  const seen = new Set<string>();
  for (const h of header) {
    if (seen.has(h)) throw new DatasetError(file, "line 1", `duplicate column name ${JSON.stringify(h)}`);
    seen.add(h);
  }
  const rows: Row[] = [];
  for (const r of records.slice(1)) {
    if (r.fields.length !== header.length) {
      throw new DatasetError(file, `line ${r.line}`, `${r.fields.length} fields, but the header has ${header.length}`);
    }
    const row: Row = {};
    header.forEach((h, j) => (row[h] = r.fields[j]));
    rows.push(row);
  }
  return rows;
}

export async function readCsv(file: string, delimiter = ","): Promise<Row[]> {
  return parseCsv(await readFile(file, "utf8"), file, delimiter);
}
