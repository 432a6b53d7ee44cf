// GRPO micro-batches of one optimiser step replayed from one captured graph. Every micro-batch of a step has the
// same shape (B completions of P + T tokens), so the whole of one (forward, fused lm-head log-probs, loss,
// backward into the flat gradient buffer) is captured once and replayed for each: one launch per micro-batch
// instead of thousands of kernel launches from JavaScript. As in generate/decode-step.ts, what differs between
// micro-batches lives in device buffers written before each launch: ids, key mask, rope tables of the positions,
// targets, old/reference log-probs, per-token advantages and loss weights. The loss stays on the device
// (grpoLoss onDevice) and the backward's seed is a fixed [1] tensor of ones, so nothing inside syncs; gradients
// accumulate with beta 1 into a gradient buffer zeroed for the step (FlatParams.zeroGradsForAccumulation).
// Needs the trainable parameters in one flat storage. LoRA dropout masks are drawn on the device from a seed written
// before each launch (one per micro-batch, as an eager forward draws it), so replays draw new masks.
import { backward, empty, fromHost, grpoLoss, scope, tokenLogprobs, embedding, type Tensor } from "../engine/index.ts";
import type { GrpoLossParams } from "../engine/ops/logprobs.ts";
import { ReplayedStep } from "../engine/replay.ts";
import { defaultPositions, RopeBuffers, type CausalLM, type ForwardInputs } from "../models/model.ts";
import { completionInputs, type CompletionBatch } from "./loss.ts";

export interface MicroBatchOut {
  /** [1] the micro-batch's loss (a copy the caller owns) */
  loss: Tensor;
  /** [B*T] token log-probs and entropies (copies the caller owns) */
  logp: Tensor;
  entropy: Tensor;
}

export class GraphedMicroBatches {
  private readonly L: number;
  private readonly ids: Tensor; // [B*L] i32
  private readonly mask: Tensor; // [B, L] i32
  private readonly rows: Tensor; // [B*T] i32
  private readonly targets: Tensor; // [B*T] i32
  private readonly old: Tensor | null; // [B*T]
  private readonly ref: Tensor | null; // [B*T]
  private readonly adv: Tensor; // [B*T]
  private readonly w: Tensor; // [B*T]
  private readonly one: Tensor; // [1] = 1, the backward's seed
  private readonly dropoutSeed: Tensor; // [1] i32, the micro-batch's LoRA dropout seed (with dropout)
  private readonly rope: RopeBuffers; // cos/sin [B*L, rot/2] per rope setting
  /** forward, loss and backward, returning the loss [1] and the token log-probs and entropies [B*T] */
  private readonly replay: ReplayedStep<{ loss: Tensor; logp: Tensor; entropy: Tensor }>;

  constructor(private readonly model: CausalLM, readonly B: number, readonly P: number, readonly T: number, private readonly temperature: number,
    private readonly loss: GrpoLossParams, hasOld: boolean, hasRef: boolean) {
    const be = model.embed.backend, cfg = model.config, L = (this.L = P + T), N = B * T;
    // (offloaded checkpointing's pinned copies are not captured in CUDA graphs: offload.cu)
    const offloadCuda = model.gradientCheckpointing === "offload" && be.device === "cuda";
    this.replay = new ReplayedStep(be, () => this.step(), !offloadCuda, offloadCuda ? "train-offload" : "train");
    this.ids = empty([B * L], "i32", be).keep();
    this.mask = empty([B, L], "i32", be).keep();
    this.rows = empty([N], "i32", be).keep();
    this.targets = empty([N], "i32", be).keep();
    this.old = hasOld ? empty([N], "f32", be).keep() : null;
    this.ref = hasRef ? empty([N], "f32", be).keep() : null;
    this.adv = empty([N], "f32", be).keep();
    this.w = empty([N], "f32", be).keep();
    this.one = fromHost(Float32Array.of(1), [1], "f32", be).knownScalar(1).keep();
    this.dropoutSeed = empty([1], "i32", be).keep();
    this.rope = new RopeBuffers(cfg, B * L, be);
  }

  /** True once the micro-batches replay a captured graph. */
  get graphed(): boolean {
    return this.replay.graphed;
  }
  /** why the micro-batches run without a graph (capture refused), for reports */
  get graphError(): string | null {
    return this.replay.graphError;
  }

  /**
   * One micro-batch: gradients added to the parameters' (flat) gradients; returns copies of its loss, log-probs
   * and entropies. old / ref: [B*T] or null as given at construction; advTok and w: per-token advantages and weights.
   */
  run(mb: CompletionBatch, old: Float32Array | null, ref: Float32Array | null, advTok: Float32Array, w: Float32Array): MicroBatchOut {
    const { B, T } = this, be = this.ids.backend;
    if (mb.B !== B || mb.P !== this.P || mb.T !== T) throw new Error(`GraphedMicroBatches: a [${mb.B}, ${mb.P} + ${mb.T}] micro-batch for [${B}, ${this.P} + ${T}]`);
    if (!old !== !this.old || !ref !== !this.ref) throw new Error("GraphedMicroBatches: old / ref log-probs given differently from construction");
    const { ids, mask, rows } = completionInputs(mb);
    const positions = defaultPositions(B, this.L, 0, mask);
    be.write(this.ids.buf, ids);
    be.write(this.mask.buf, mask);
    be.write(this.rows.buf, rows);
    be.write(this.targets.buf, mb.completionIds);
    if (old) be.write(this.old!.buf, old);
    if (ref) be.write(this.ref!.buf, ref);
    be.write(this.adv.buf, advTok);
    be.write(this.w.buf, w);
    this.rope.write(positions);
    if (this.model.dropout > 0) be.write(this.dropoutSeed.buf, Int32Array.of(this.model.dropoutSeedValue()));
    const out = this.replay.run();
    const copy = (t: Tensor) => { const c = empty(t.shape, "f32", be); be.k.copy2d(c.buf, t.buf, 1, t.numel, 0, 0, false); return c.keep(); };
    return { loss: copy(out.loss), logp: copy(out.logp), entropy: copy(out.entropy) };
  }

  /** Forward, loss and backward on the fixed buffers: device work only. */
  private step(): { loss: Tensor; logp: Tensor; entropy: Tensor } {
    const { model, B, L } = this;
    const inputs: ForwardInputs = {
      ids: this.ids,
      rope: (p) => this.rope.get(p),
      keys: (window) => ({ mask: this.mask, window }),
      S: L,
      dropoutSeed: this.dropoutSeed,
    };
    return scope(() => {
      const h = model.forwardWith(inputs, B, L);
      const { logp, entropy } = tokenLogprobs(embedding(this.rows, h), model.lmHead, this.targets, this.temperature, model.config.finalSoftcap);
      const oldT = this.old ?? logp; // the kernel reads values only: no gradient through old
      const loss = grpoLoss(logp, oldT, this.ref ?? oldT, this.adv, this.w, this.loss, true, { rows: this.B, entropy });
      backward(loss, this.one);
      logp.node = entropy.node = loss.node = null; // values only from here on
      return { loss, logp, entropy };
    });
  }

  dispose(): void {
    this.replay.dispose();
    this.rope.dispose();
    for (const t of [this.ids, this.mask, this.rows, this.targets, this.old, this.ref, this.adv, this.w, this.one, this.dropoutSeed]) t?.dispose();
  }
}
