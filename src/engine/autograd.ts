// Reverse-mode autograd over GradNodes recorded by ops. Gradients of leaves (requiresGrad, no node) accumulate
// into `.grad`; intermediate gradients are freed as soon as they have been propagated.
import { Tensor, type GradNode } from "./tensor.ts";
import type { Buf } from "./backend.ts";
import { add } from "./ops/elementwise.ts";

let enabled = true;

export function isGradEnabled(): boolean {
  return enabled;
}

/** Run fn with recording off (inference, generation, reference log-probs). */
export function noGrad<T>(fn: () => T): T {
  const prev = enabled;
  enabled = false;
  try {
    return fn();
  } finally {
    enabled = prev;
  }
}

/** Record `out` as made by `op` from `inputs` when any input needs a gradient. */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: GradNode["backward"]): Tensor {
  if (enabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

/** Record outputs `outs` as made together by `op` from `inputs` (one backward for all of them: GradNode.multi). */
export function recordMulti(outs: Tensor[], op: string, inputs: Tensor[], backward: (gs: (Tensor | null)[]) => (Tensor | null)[]): Tensor[] {
  if (enabled && inputs.some((t) => t.requiresGrad)) {
    const node: GradNode = { op, inputs, backward: () => { throw new Error(`${op}: multi-output node called as single`); }, multi: { outputs: outs, backward } };
    for (const o of outs) { o.requiresGrad = true; o.node = node; }
  }
  return outs;
}

/** A graph vertex: a tensor, or a multi-output node standing for all its outputs. */
type Vertex = Tensor | GradNode;
const vertexOf = (t: Tensor): Vertex => (t.node?.multi ? t.node : t);

/**
 * Backpropagate from `root` (a scalar unless `grad` is given). With `gradOwned` the caller hands `grad` over: it
 * may be moved on or disposed like any internal gradient (checkpoint passes its own gradient so).
 */
export function backward(root: Tensor, gradIn?: Tensor, gradOwned = false): void {
  const grad = gradOwned ? undefined : gradIn; // the gradient that stays the caller's, if any
  if (!root.requiresGrad) throw new Error("backward(): the tensor does not require a gradient");
  // topological order of vertices (a multi-output node runs once, after every consumer of any of its outputs)
  const order: Vertex[] = [];
  const seen = new Set<Vertex>();
  const stack: [Vertex, boolean][] = [[vertexOf(root), false]];
  while (stack.length) {
    const [v, done] = stack.pop()!;
    if (done) { order.push(v); continue; }
    if (seen.has(v)) continue;
    seen.add(v);
    stack.push([v, true]);
    const inputs = v instanceof Tensor ? v.node?.inputs ?? [] : v.inputs;
    for (const i of inputs) if (i.requiresGrad && !seen.has(vertexOf(i))) stack.push([vertexOf(i), false]);
  }
  const grads = new Map<Tensor, Tensor>();
  const g0 = gradIn ?? fill1(root);
  grads.set(root, g0);
  // a backward may return one tensor as the gradient of several inputs (add: both operands get g); `shared` counts
  // the holders beyond the first, and a gradient is disposed when its last holder lets it go
  const shared = new Map<Tensor, number>();
  const release = (x: Tensor) => {
    if (x === grad) return; // the caller's
    const n = shared.get(x) ?? 0;
    if (n > 0) shared.set(x, n - 1);
    else { shared.delete(x); x.dispose(); }
  };
  const exclusive = (x: Tensor) => x !== grad && !(shared.get(x) ?? 0);
  const propagate = (inputs: Tensor[], ins: (Tensor | null)[]) => {
    // count each returned tensor's holders at its first index (lists are short: plain loops, no allocation)
    for (let i = 0; i < ins.length; i++) {
      const gi = ins[i];
      if (!gi) continue;
      let first = true;
      for (let j = 0; j < i; j++) if (ins[j] === gi) { first = false; break; }
      if (!first) continue;
      let uses = 0;
      for (let j = i; j < ins.length; j++) if (ins[j] === gi && inputs[j].requiresGrad) uses++;
      if (uses === 0) gi.dispose();
      else if (uses > 1) shared.set(gi, (shared.get(gi) ?? 0) + uses - 1);
    }
    inputs.forEach((inp, i) => {
      const gi = ins[i];
      if (!gi || !inp.requiresGrad) return;
      const prev = grads.get(inp);
      if (prev) {
        const s = add(prev, gi);
        release(prev);
        release(gi);
        grads.set(inp, s);
      } else grads.set(inp, gi);
    });
  };
  for (let idx = order.length - 1; idx >= 0; idx--) {
    const v = order[idx];
    if (!(v instanceof Tensor)) {
      const outs = v.multi!.outputs, gs = outs.map((o) => grads.get(o) ?? null);
      for (const o of outs) grads.delete(o);
      if (gs.every((x) => !x)) continue;
      const ins = v.multi!.backward(gs);
      for (const x of gs) if (x) release(x);
      propagate(v.inputs, ins);
      continue;
    }
    const t = v;
    const g = grads.get(t);
    if (!g) continue;
    grads.delete(t);
    if (!t.node) {
      // leaf parameter
      if (t.flat) {
        // flat storage: accumulate in place in its gradient buffer
        const sink = gradSink(t)!;
        t.backend.k.copy2d(sink.buf, g.buf, 1, t.numel, 0, 0, sink.beta === 1);
        release(g);
      } else if (t.grad) {
        const s = add(t.grad, g);
        t.grad.dispose();
        t.grad = s.setCategory("gradients").keep();
        release(g);
      } else if (exclusive(g)) {
        t.grad = g.moveTo().setCategory("gradients").keep(); // moved: whoever handed g over sees it gone
      } else {
        t.grad = copyOf(g).setCategory("gradients");
        release(g);
      }
      continue;
    }
    // the caller's gradient, or one another input also holds, may not be taken over by the backward
    const ins = t.node.backward(g, exclusive(g));
    release(g); // a no-op when the backward moved g on
    propagate(t.node.inputs, ins);
  }
}

/**
 * Where a backward may write leaf p's gradient itself instead of returning it: for a parameter in flat storage,
 * its slice of the gradient buffer and the GEMM beta to use (0: the first gradient since zeroGrad, so overwrite;
 * 1: add). Sets p.grad to that slice. Null for any other tensor (then return the gradient as usual).
 */
export function gradSink(p: Tensor): { buf: Buf; beta: 0 | 1 } | null {
  if (!p.flat || p.node) return null;
  if (p.grad) return { buf: p.grad.buf, beta: 1 };
  p.grad = p.flat.params.gradView(p);
  return { buf: p.grad.buf, beta: 0 };
}

function fill1(t: Tensor): Tensor {
  const g = new Tensor(t.shape, "f32", t.backend.alloc("f32", t.numel), t.backend);
  const ones = new Float32Array(t.numel).fill(1);
  t.backend.write(g.buf, ones);
  return t.numel === 1 ? g.knownScalar(1) : g;
}

function copyOf(t: Tensor): Tensor {
  const c = new Tensor(t.shape, t.dtype, t.backend.alloc(t.dtype, t.numel), t.backend);
  t.backend.k.copy2d(c.buf, t.buf, 1, t.numel, 0, 0, false);
  return c.keep();
}
