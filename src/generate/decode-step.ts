// One decode step (every sequence of a KV cache takes one token) in fixed shapes on fixed buffers, so that on CUDA
// the whole step (embedding, every layer, final norm, lm head) is captured once in a CUDA graph and then replayed
// with one launch per token instead of ~750 kernel launches from JavaScript.
// What changes from step to step lives in device buffers written before the launch: the ids, the rope tables of the
// new positions, the key masks (the cache's mask, each sliding window applied on the host) and the cache rows the
// new keys/values go to (KVCache.scatter). Attention covers the cache's whole capacity, unwritten slots masked, so
// no shape or kernel argument changes. The CPU backend captures too (it records and replays its kernel calls), so
// the tests check the captured step against model.forward on every machine; a refused capture runs it eagerly.
// With sampling parameters the step also draws each row's next token on the device (uniforms written before the
// launch) into its own ids buffer, so the next step can be enqueued before this one's tokens are read back
// (`launch`): generation then keeps the GPU busy while the host handles the previous step's tokens.
import { noGrad, scope, empty, sampleTokensInto, type SampleParams, type SampledTokens, type Tensor } from "../engine/index.ts";
import { ReplayedStep } from "../engine/replay.ts";
import { defaultPositions, RopeBuffers, type CausalLM, type ForwardInputs } from "../models/model.ts";
import type { KVCache } from "../models/kvcache.ts";

export class DecodeStep {
  /** [B] i32 token ids */
  private readonly ids: Tensor;
  /** [B] i32 cache row of each new key/value: b · capacity + position */
  private readonly rows: Tensor;
  /** cos/sin [B, rotaryDim/2] per distinct rope setting */
  private readonly rope: RopeBuffers;
  /** per distinct sliding window (0 = none): key mask [B, capacity] i32 */
  private readonly masks = new Map<number, Tensor>();
  /** the step, returning logits [B, V] of the new position */
  private readonly replay: ReplayedStep<Tensor>;
  /** with sampling: [B] f32 uniforms of the draws, [B] f32 log-probs of the drawn tokens (the tokens go to ids) */
  private readonly uniforms: Tensor | null = null;
  private readonly logprobs: Tensor | null = null;

  /** sampling: draw each row's next token in the step (no repetition penalty), for `launch` */
  constructor(readonly model: CausalLM, readonly cache: KVCache, graphs: boolean, readonly sampling?: SampleParams) {
    const cfg = model.config, B = cache.batch, be = cache.k[0].backend;
    this.replay = new ReplayedStep(be, () => this.forward(), graphs, sampling ? "decode+sample" : "decode");
    if (sampling) {
      if ((sampling.repetitionPenalty ?? 1) !== 1) throw new Error("DecodeStep: sampling on the device has no repetition penalty");
      this.uniforms = empty([B], "f32", be).keep();
      this.logprobs = empty([B], "f32", be).keep();
    }
    this.ids = empty([B], "i32", be).keep();
    this.rows = empty([B], "i32", be).keep();
    this.rope = new RopeBuffers(cfg, B, be);
    for (const w of new Set(cfg.windowByLayer)) this.masks.set(w, empty([B, cache.capacity], "i32", be).keep());
  }

  /** True when steps replay a captured graph. */
  get graphed(): boolean {
    return this.replay.graphed;
  }
  /** why steps run without a graph (capture refused), for reports */
  get graphError(): string | null {
    return this.replay.graphError;
  }

  /** Append one token per sequence (ids [B]) and return the logits [B, V] of the new position (valid until the next run). */
  run(ids: Int32Array): Tensor {
    return this.enqueue(ids);
  }

  /**
   * With sampling: enqueue a step whose input ids are `ids`, or (omitted) the tokens the previous step drew, each row
   * b drawing its next token with uniforms[b]. Returns a function that waits for this step only (not for steps
   * enqueued after it) and gives the drawn tokens and their log-probs; call it once, in launch order.
   */
  launch(uniforms: Float32Array, ids?: Int32Array): () => SampledTokens {
    if (!this.uniforms || !this.logprobs) throw new Error("DecodeStep.launch: made without sampling parameters");
    const B = this.cache.batch, be = this.ids.backend;
    if (uniforms.length !== B) throw new Error(`DecodeStep.launch: ${uniforms.length} uniforms for a batch of ${B}`);
    be.write(this.uniforms.buf, uniforms);
    this.enqueue(ids);
    const tokens = be.readAsync(this.ids.buf, "i32", B), logprobs = be.readAsync(this.logprobs.buf, "f32", B);
    return () => ({ tokens: tokens() as Int32Array, logprobs: logprobs() as Float32Array });
  }

  private enqueue(ids?: Int32Array): Tensor {
    const { cache } = this, B = cache.batch, cap = cache.capacity, past = cache.length;
    if (ids && ids.length !== B) throw new Error(`DecodeStep: ${ids.length} ids for a batch of ${B}`);
    const rows = cache.rowsOf(1); // (throws when the cache is full)
    const be = this.ids.backend;
    for (let b = 0; b < B; b++) cache.mask[b * cap + past] = 1;
    const positions = defaultPositions(B, 1, past, undefined, cache);
    if (ids) be.write(this.ids.buf, ids);
    be.write(this.rows.buf, rows);
    this.rope.write(positions);
    for (const [w, m] of this.masks) {
      const host = cache.mask.slice(0, B * cap);
      if (w > 0) for (let b = 0; b < B; b++) host.fill(0, b * cap, b * cap + Math.max(0, past - w + 1));
      be.write(m.buf, host);
    }
    const logits = this.replay.run();
    cache.length = past + 1;
    return logits;
  }

  /** The step on the fixed buffers: device work only. */
  private forward(): Tensor {
    const { model, cache } = this;
    const inputs: ForwardInputs = {
      ids: this.ids,
      rope: (p) => this.rope.get(p),
      keys: (w) => ({ mask: this.masks.get(w)!, window: 0 }),
      S: cache.capacity,
    };
    return noGrad(() => scope(() => {
      const logits = model.logits(model.forwardWith(inputs, cache.batch, 1, { cache, rows: this.rows }));
      if (this.sampling) sampleTokensInto(logits, this.uniforms!, this.ids, this.logprobs!, this.sampling);
      return logits;
    })).keep();
  }

  dispose(): void {
    this.replay.dispose();
    this.rope.dispose();
    for (const t of [this.ids, this.rows, ...this.masks.values()]) t.dispose();
    this.uniforms?.dispose();
    this.logprobs?.dispose();
  }
}
