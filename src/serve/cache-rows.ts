// Assembling a KV cache from rows of other caches, for continuous batching: sequences of a running batch and
// sequences just prefilled in a cache of their own become the rows of one new cache, each row's used positions moved
// so that every row ends at the new cache's common length (the slot the next decode step writes).
// Is: a layout change (a copy per layer per source cache, the masks moved alike). Moving a row does not change its
// keys: positions come from the mask (the count of real tokens before a slot), and a row's real tokens stay
// contiguous and in order, so rope, attention and sliding windows see the same sequence. Is not: paging (vLLM's
// block tables); a join or a compaction copies the live rows once.
import { fromHost } from "../engine/index.ts";
import { DTYPE_BYTES } from "../engine/dtype.ts";
import { KVCache } from "../models/kvcache.ts";

/** One row of the new cache: row `row` of `src`, its positions [from, src.length). */
export interface RowSource {
  src: KVCache;
  row: number;
  from: number;
}

/** First slot of row b holding a real token (b's left padding ends there); cache.length when none. */
export function firstReal(cache: KVCache, b: number): number {
  const m = cache.mask, base = b * cache.capacity;
  for (let p = 0; p < cache.length; p++) if (m[base + p]) return p;
  return cache.length;
}

/**
 * A new cache of rows.length rows and `capacity` positions whose length is the longest row's span; row i holds
 * rows[i]'s positions right-aligned to that length (left-padded). The sources are left as they are.
 */
export function assembleCache(rows: RowSource[], capacity: number): KVCache {
  if (rows.length === 0) throw new Error("assembleCache: no rows");
  const first = rows[0].src, cfg = first.cfg, dtype = first.dtype;
  const length = Math.max(...rows.map((r) => r.src.length - r.from));
  if (length > capacity) throw new Error(`assembleCache: rows of ${length} positions in a cache of ${capacity}`);
  const out = new KVCache(cfg, rows.length, capacity, dtype);
  out.length = length;
  const rowElems = cfg.kvHeads * cfg.headDim, be = out.k[0].backend;
  // per source cache: (destination row, source row) pairs of [B · capacity, Hkv · D], one copy per layer
  const bySource = new Map<KVCache, number[]>();
  rows.forEach((r, i) => {
    const span = r.src.length - r.from, at = length - span;
    let pairs = bySource.get(r.src);
    if (!pairs) bySource.set(r.src, (pairs = []));
    for (let p = 0; p < span; p++) pairs.push(i * capacity + at + p, r.row * r.src.capacity + r.from + p);
    out.mask.set(r.src.mask.subarray(r.row * r.src.capacity + r.from, r.row * r.src.capacity + r.src.length), i * capacity + at);
  });
  for (const [src, pairs] of bySource) {
    if (pairs.length === 0) continue;
    if (src.cfg !== cfg || src.dtype !== dtype) throw new Error("assembleCache: source caches of different models or dtypes");
    const t = fromHost(Int32Array.from(pairs), [pairs.length], "i32", be);
    for (let l = 0; l < cfg.layers; l++)
      be.k.copy_rows(out.k[l].buf, src.k[l].buf, t.buf, pairs.length / 2, rowElems, DTYPE_BYTES[dtype], out.v[l].buf, src.v[l].buf);
    t.dispose();
  }
  return out;
}
