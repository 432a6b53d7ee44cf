// AdamW over a list of parameter tensors (decoupled weight decay, bias correction as torch.optim.AdamW),
// global-norm gradient clipping, and learning-rate schedules (constant, linear, cosine, with warmup) as
// transformers' get_scheduler computes them. Optimiser state is f32 moments, one pair per parameter.
import { zeros, type Tensor } from "../engine/index.ts";

export interface AdamWOpts {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  readonly m: Tensor[];
  readonly v: Tensor[];
  step = 0;

  constructor(readonly params: Tensor[], readonly opts: AdamWOpts) {
    this.m = params.map((p) => zeros(p.shape, "f32", p.backend).setCategory("optimizer").keep());
    this.v = params.map((p) => zeros(p.shape, "f32", p.backend).setCategory("optimizer").keep());
  }

  /** One update with learning rate lr (defaults to opts.lr); parameters without a gradient are skipped. */
  update(lr = this.opts.lr): void {
    this.step++;
    const { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0 } = this.opts;
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      p.backend.k.adamw(p.buf, this.m[i].buf, this.v[i].buf, p.grad.buf, p.numel, lr, beta1, beta2, eps, weightDecay, this.step);
    });
  }

  zeroGrad(): void {
    for (const p of this.params) if (p.grad) { p.grad.dispose(); p.grad = null; }
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}

/** Global L2 norm of the gradients; scales them down to maxNorm when above it (torch clip_grad_norm_). */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  let sq = 0;
  for (const p of params) if (p.grad) sq += p.backend.k.sum_squares(p.grad.buf, p.numel);
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const c = maxNorm / (norm + 1e-6);
    for (const p of params) if (p.grad) p.backend.k.scale(p.grad.buf, p.grad.buf, c, p.numel);
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
