// Key/value cache for generation: per layer, keys and values [B, capacity, Hkv, D], the first `length`
// positions valid, plus the key padding mask [B, capacity] (1 = real token). Sequences can be dropped
// (compaction) when they finish, so they stop costing compute. Values are f32, or bf16 / f16 (half the memory and the
// bandwidth decode attention reads) where the model's GEMMs take such activations anyway (CausalLM.kvDtype; f16 on
// Turing GPUs, which keep bf16 weights as f16).
import { fromHost, zeros, type DType, type Tensor } from "../engine/index.ts";
import { DTYPE_BYTES, DTYPE_CODE } from "../engine/dtype.ts";
import type { ModelConfig } from "./config.ts";

export class KVCache {
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  /** [B, capacity] host mask; copied to the device per forward */
  mask: Int32Array;
  length = 0;

  constructor(readonly cfg: ModelConfig, public batch: number, readonly capacity: number, readonly dtype: "f32" | "bf16" | "f16" = "f32") {
    for (let l = 0; l < cfg.layers; l++) {
      this.k.push(zeros([batch, capacity, cfg.kvHeads, cfg.headDim], dtype).setCategory("kv_cache").keep());
      this.v.push(zeros([batch, capacity, cfg.kvHeads, cfg.headDim], dtype).setCategory("kv_cache").keep());
    }
    this.mask = new Int32Array(batch * capacity);
  }

  /** elements between batch rows */
  get strideB(): number {
    return this.capacity * this.cfg.kvHeads * this.cfg.headDim;
  }

  /** Bytes a cache of this shape takes. */
  static bytes(cfg: ModelConfig, batch: number, capacity: number, dtype: DType = "f32"): number {
    return 2 * cfg.layers * batch * capacity * cfg.kvHeads * cfg.headDim * DTYPE_BYTES[dtype];
  }

  /**
   * Cache rows [B · T] i32 of the positions [length, length + T) of every sequence (row b · capacity + position in
   * the cache viewed as [B · capacity, Hkv · D]): where `scatter` writes a forward's T new keys and values.
   */
  rowsOf(T: number): Int32Array {
    if (this.length + T > this.capacity) throw new Error(`KV cache full: ${this.length} + ${T} > ${this.capacity}`);
    return Int32Array.from({ length: this.batch * T }, (_, i) => Math.floor(i / T) * this.capacity + this.length + (i % T));
  }

  /**
   * Write layer l's new keys/values ([B, T, Hkv, D]: each sequence's T rows, T = 1 when decoding) at the cache rows
   * given on the device by `rows` ([B · T] i32, rowsOf): one kernel for keys and values. The positions are data, not
   * kernel arguments, so DecodeStep's captured graph replays the write at every step.
   */
  scatter(l: number, k: Tensor, v: Tensor, rows: Tensor): void {
    const row = this.cfg.kvHeads * this.cfg.headDim;
    const be = this.k[l].backend;
    if (k.numel !== rows.numel * row || v.numel !== k.numel || rows.numel % this.batch) throw new Error(`KVCache.scatter: [${k.shape}] / ${rows.numel} rows for a batch of ${this.batch}`);
    be.k.scatter_rows(this.k[l].buf, k.buf, rows.buf, rows.numel, row, this.v[l].buf, v.buf, DTYPE_CODE[this.dtype]);
  }

  /**
   * Keep only batch rows `keep` (in that order; indices may repeat, e.g. to fan a prefilled prompt out to n
   * completions). Returns a new cache; this one is disposed.
   */
  select(keep: number[]): KVCache {
    const Kind = this.constructor as new (...a: ConstructorParameters<typeof KVCache>) => KVCache; // (a subclass selects into its own kind)
    const out = new Kind(this.cfg, keep.length, this.capacity, this.dtype);
    out.length = this.length;
    // the used rows of every kept sequence (row b · capacity + p of [B · capacity, Hkv · D]): one copy per layer
    const be = this.k[0].backend, len = this.length, cap = this.capacity;
    if (len > 0 && keep.length > 0) {
      const pairs = new Int32Array(2 * keep.length * len); // (destination row, source row)
      keep.forEach((b, i) => {
        for (let p = 0, j = 2 * i * len; p < len; p++, j += 2) {
          pairs[j] = i * cap + p;
          pairs[j + 1] = b * cap + p;
        }
      });
      const rows = fromHost(pairs, [pairs.length], "i32", be);
      for (let l = 0; l < this.cfg.layers; l++)
        be.k.copy_rows(out.k[l].buf, this.k[l].buf, rows.buf, keep.length * len, this.cfg.kvHeads * this.cfg.headDim, DTYPE_BYTES[this.dtype],
          out.v[l].buf, this.v[l].buf);
      rows.dispose();
    }
    keep.forEach((b, i) => out.mask.set(this.mask.subarray(b * this.capacity, (b + 1) * this.capacity), i * this.capacity));
    this.dispose();
    return out;
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t.dispose();
    this.k.length = 0;
    this.v.length = 0;
  }
}
