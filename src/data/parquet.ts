// Parquet reader over hyparquet (+ hyparquet-compressors for gzip/zstd/brotli/lz4).
// Is: whole-file read into row objects, with int64 BigInt values turned into numbers where they are safe integers.
// Is not: a streaming or column-selective reader. Simplifies: unsafe int64 stay BigInt; nested lists/structs are kept
// as hyparquet returns them (arrays / objects), with the same BigInt conversion inside.
// hyparquet ships only ES modules: it is imported when a Parquet file is read, so that aha's CommonJS build loads
// with require() on every Node 20 (which cannot require() an ES module before 20.19).
import { DatasetError } from "./errors.ts";
import type { Row } from "./types.ts";

/** BigInt → number when it fits exactly; recurses into arrays and plain objects. */
export function normalizeParquetValue(v: unknown): unknown {
  if (typeof v === "bigint") {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  if (Array.isArray(v)) return v.map(normalizeParquetValue);
  if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = normalizeParquetValue(x);
    return o;
  }
  return v;
}

export async function readParquet(file: string): Promise<Row[]> {
  let rows: Record<string, unknown>[];
  try {
    const [{ asyncBufferFromFile, parquetReadObjects }, { compressors }] = await Promise.all([import("hyparquet"), import("hyparquet-compressors")]);
    const buf = await asyncBufferFromFile(file);
    rows = await parquetReadObjects({ file: buf, compressors });
  } catch (e) {
    throw new DatasetError(file, "", `cannot read Parquet (${(e as Error).message})`);
  }
  return rows.map((r) => normalizeParquetValue(r) as Row);
}
