// Gradient checkpointing: run a block without keeping its intermediates, and recompute them in the backward pass.
// The block's trainable tensors (which it reads from its closure) are named in `params`, so the recompute's own
// backward accumulates their gradients, and so the block is recorded even when its input needs no gradient.
// fn must be deterministic (same randomness on recompute: derive dropout masks from a seed, not a live stream).
// With `offload` (engine/offload.ts) the input waits in host memory between the forward and the backward: it must not
// be read by anything else after this call (the model's layer loop hands each layer's output only to the next layer).
import { Tensor, scope, viewAs } from "./tensor.ts";
import { backward, isGradEnabled, noGrad, record } from "./autograd.ts";
import type { ActivationOffload } from "./offload.ts";

export function checkpoint(fn: (x: Tensor) => Tensor, x: Tensor, params: Tensor[] = [], offload?: { chain: ActivationOffload; last: boolean }): Tensor {
  if (!isGradEnabled() || !(x.requiresGrad || params.some((p) => p.requiresGrad))) return fn(x);
  const out = noGrad(() => scope(() => fn(x)));
  const saved = offload?.chain.save(x, offload.last);
  return record(out, "checkpoint", [x, ...params], (g, owned) => {
    const dx = scope(() => {
      const src = saved ? offload!.chain.restore(saved) : null; // x's values back on the device (an own buffer, or a view of x's)
      const xi = src ? viewAs(src, x.shape) : viewAs(x, x.shape); // a detached leaf over the same data
      xi.requiresGrad = x.requiresGrad; // (the first layer's input, an embedding, needs none: its dx is not computed)
      backward(fn(xi), g, owned); // an owned g may be handed on inside the recomputed block
      const d = xi.grad;
      xi.grad = null;
      return d;
    });
    if (saved) offload!.chain.done(saved);
    if (!x.requiresGrad) dx?.dispose();
    return [x.requiresGrad ? dx : null, ...params.map(() => null)];
  });
}
