// AdamW over a list of parameter tensors (decoupled weight decay, bias correction as torch.optim.AdamW),
// global-norm gradient clipping, and learning-rate schedules (constant, linear, cosine, with warmup) as
// transformers' get_scheduler computes them. Optimiser state is f32 moments, one pair per parameter. When the
// parameters are exactly the members of one flat storage (a LoRA adapter's), the moments are laid out like it and
// a step whose parameters all have gradients is one kernel call, the norm one reduction and the clipping one scale.
import { zeros, type Tensor } from "../engine/index.ts";
import { flatOf, type FlatParams } from "../engine/flat.ts";

export interface AdamWOpts {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  /** first and second moments per parameter (views of mFlat / vFlat for flat parameters) */
  readonly m: Tensor[];
  readonly v: Tensor[];
  step = 0;
  private readonly flat: FlatParams | null;
  private readonly mFlat: Tensor | null = null;
  private readonly vFlat: Tensor | null = null;

  constructor(readonly params: Tensor[], readonly opts: AdamWOpts) {
    this.flat = flatOf(params);
    const f = this.flat;
    if (f) {
      this.mFlat = zeros([f.total], "f32", f.backend).setCategory("optimizer").keep();
      this.vFlat = zeros([f.total], "f32", f.backend).setCategory("optimizer").keep();
      this.m = params.map((p) => f.slice(this.mFlat!, p));
      this.v = params.map((p) => f.slice(this.vFlat!, p));
    } else {
      this.m = params.map((p) => zeros(p.shape, "f32", p.backend).setCategory("optimizer").keep());
      this.v = params.map((p) => zeros(p.shape, "f32", p.backend).setCategory("optimizer").keep());
    }
  }

  /** One update with learning rate lr (defaults to opts.lr); parameters without a gradient are skipped. */
  update(lr = this.opts.lr): void {
    this.step++;
    const { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0 } = this.opts;
    const f = this.flat;
    if (f && f.gradsInBuffer(this.params)) {
      f.backend.k.adamw(f.data.buf, this.mFlat!.buf, this.vFlat!.buf, f.grad.buf, f.total, lr, beta1, beta2, eps, weightDecay, this.step);
      return;
    }
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      p.backend.k.adamw(p.buf, this.m[i].buf, this.v[i].buf, p.grad.buf, p.numel, lr, beta1, beta2, eps, weightDecay, this.step);
    });
  }

  zeroGrad(): void {
    for (const p of this.params) if (p.grad) { p.grad.dispose(); p.grad = null; }
  }

  dispose(): void {
    if (this.mFlat) { this.mFlat.dispose(); this.vFlat!.dispose(); return; }
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}

/** Global L2 norm of the gradients; scales them down to maxNorm when above it (torch clip_grad_norm_). */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  const f = flatOf(params);
  // flat parameters, all with gradients: one reduction and one scale over the gradient buffer (padding is zero)
  const whole = f && f.gradsInBuffer(params) ? f.grad : null;
  let sq = 0;
  if (whole) sq = whole.backend.k.sum_squares(whole.buf, whole.numel);
  else for (const p of params) if (p.grad) sq += p.backend.k.sum_squares(p.grad.buf, p.numel);
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const c = maxNorm / (norm + 1e-6);
    if (whole) whole.backend.k.scale(whole.buf, whole.buf, c, whole.numel);
    else for (const p of params) if (p.grad) p.backend.k.scale(p.grad.buf, p.grad.buf, c, p.numel);
  }
  return norm;
}

export type SchedulerType = "constant" | "linear" | "cosine" | "constant_with_warmup";

/** Learning rate at optimiser step `step` (0-based) of `total`, with `warmup` warm-up steps. */
export function scheduledLr(base: number, type: SchedulerType, step: number, total: number, warmup: number): number {
  if (warmup > 0 && step < warmup) return (base * step) / warmup;
  if (type === "constant" || type === "constant_with_warmup") return base;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  if (type === "linear") return base * Math.max(0, 1 - progress);
  return base * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
