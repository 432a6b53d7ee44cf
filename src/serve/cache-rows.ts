// Moving sequences between KV caches, for continuous batching: sequences of a running batch and sequences just
// prefilled in a cache of their own become rows of one cache, each row's used positions placed so that the row ends
// at the cache's common length (the slot the next decode step writes).
// Is: a layout change (a copy per layer per source cache, the masks moved alike), into a new cache (assembleCache)
// or into free rows of a running one (placeRows: its shapes, and so its captured decode step, stay). Moving a row does
// not change its keys: positions come from the mask (the count of real tokens before a slot), and a row's real
// tokens stay contiguous and in order, so rope, attention and sliding windows see the same sequence. Is not: paging
// (vLLM's block tables); a re-layout copies the live rows once.
import { fromHost } from "../engine/index.ts";
import { DTYPE_BYTES } from "../engine/dtype.ts";
import { KVCache } from "../models/kvcache.ts";

/** A sequence's keys and values: row `row` of `src`, its positions [from, src.length). */
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

/** Positions a source row holds. */
export const spanOf = (r: RowSource) => r.src.length - r.from;

/**
 * Copy each source into row destRows[i] of `dest`, right-aligned to dest.length; that row's mask is replaced (zero
 * outside the copied span). Spans must fit: spanOf(r) ≤ dest.length.
 */
export function placeRows(dest: KVCache, sources: RowSource[], destRows: number[]): void {
  const cfg = dest.cfg, cap = dest.capacity, rowElems = cfg.kvHeads * cfg.headDim, be = dest.k[0].backend;
  const bySource = new Map<KVCache, number[]>(); // (destination row, source row) pairs of [B · capacity, Hkv · D]
  sources.forEach((r, i) => {
    const span = spanOf(r), at = dest.length - span, d = destRows[i];
    if (span > dest.length) throw new Error(`placeRows: a row of ${span} positions in a cache of length ${dest.length}`);
    if (r.src.cfg !== cfg || r.src.dtype !== dest.dtype) throw new Error("placeRows: caches of different models or dtypes");
    let pairs = bySource.get(r.src);
    if (!pairs) bySource.set(r.src, (pairs = []));
    for (let p = 0; p < span; p++) pairs.push(d * cap + at + p, r.row * r.src.capacity + r.from + p);
    dest.mask.fill(0, d * cap, (d + 1) * cap);
    dest.mask.set(r.src.mask.subarray(r.row * r.src.capacity + r.from, r.row * r.src.capacity + r.src.length), d * cap + at);
  });
  for (const [src, pairs] of bySource) {
    if (pairs.length === 0) continue;
    const t = fromHost(Int32Array.from(pairs), [pairs.length], "i32", be);
    for (let l = 0; l < cfg.layers; l++)
      be.k.copy_rows(dest.k[l].buf, src.k[l].buf, t.buf, pairs.length / 2, rowElems, DTYPE_BYTES[dest.dtype], dest.v[l].buf, src.v[l].buf);
    t.dispose();
  }
}

/**
 * A new cache of `batch` rows (≥ sources.length; the rest empty) and `capacity` positions whose length is the longest
 * source's span; row i holds sources[i]. The sources are left as they are.
 */
export function assembleCache(sources: RowSource[], batch: number, capacity: number): KVCache {
  if (sources.length === 0 || batch < sources.length) throw new Error(`assembleCache: ${sources.length} rows in a batch of ${batch}`);
  const length = Math.max(...sources.map(spanOf));
  if (length > capacity) throw new Error(`assembleCache: rows of ${length} positions in a cache of ${capacity}`);
  const first = sources[0].src;
  const out = new KVCache(first.cfg, batch, capacity, first.dtype);
  out.length = length;
  placeRows(out, sources, sources.map((_, i) => i));
  return out;
}
