// Gradient checkpointing: run a block without keeping its intermediates, and recompute them in the backward pass.
// The block's trainable tensors (which it reads from its closure) are named in `params`, so the recompute's own
// backward accumulates their gradients, and so the block is recorded even when its input needs no gradient.
// fn must be deterministic (same randomness on recompute: derive dropout masks from a seed, not a live stream).
import { Tensor, scope, viewAs } from "./tensor.ts";
import { backward, isGradEnabled, noGrad, record } from "./autograd.ts";

export function checkpoint(fn: (x: Tensor) => Tensor, x: Tensor, params: Tensor[] = []): Tensor {
  if (!isGradEnabled() || !(x.requiresGrad || params.some((p) => p.requiresGrad))) return fn(x);
  const out = noGrad(() => scope(() => fn(x)));
  return record(out, "checkpoint", [x, ...params], (g, owned) => {
    const dx = scope(() => {
      const xi = viewAs(x, x.shape); // a detached leaf over the same data
      xi.requiresGrad = x.requiresGrad; // (the first layer's input, an embedding, needs none: its dx is not computed)
      backward(fn(xi), g, owned); // an owned g may be handed on inside the recomputed block
      const d = xi.grad;
      xi.grad = null;
      return d;
    });
    if (!x.requiresGrad) dx?.dispose();
    return [x.requiresGrad ? dx : null, ...params.map(() => null)];
  });
}
