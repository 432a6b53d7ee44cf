// Flat parameter storage: trainable f32 tensors that are views into one buffer, with one gradient buffer laid out
// the same way. The optimiser step, the gradient norm and the clipping then run as one kernel each over all of them
// (instead of one per tensor, each norm a device-to-host sync on CUDA), and an op can accumulate a parameter's
// gradient in place (a GEMM with beta = 1) instead of allocating a gradient and adding it (autograd.gradSink).
// Each member starts on a 64-element (256-byte) boundary, the alignment cuBLASLt's fast path wants, unless it is
// packed right after the previous one (to form one matrix with it); the padding stays zero in both buffers, so it
// adds nothing to norms and AdamW leaves it at zero.
import { Tensor } from "./tensor.ts";
import type { Backend } from "./backend.ts";
import type { MemoryCategory } from "./tensor.ts";

const ALIGN = 64;

export interface FlatSpec {
  shape: number[];
  name?: string;
  /** initial values (zeros when absent) */
  data?: Float32Array;
  /** start right after the previous member, without alignment padding (so the two form one matrix) */
  packed?: boolean;
}

export class FlatParams {
  /** [total] f32: owns the members' storage */
  readonly data: Tensor;
  /** the member tensors (views of data), in spec order */
  readonly members: Tensor[];
  readonly offsets: number[];
  readonly total: number;
  private gradT: Tensor | null = null;
  private readonly gradViews = new WeakSet<Tensor>();

  constructor(readonly backend: Backend, specs: FlatSpec[], category: MemoryCategory) {
    const offsets: number[] = [];
    let end = 0; // end of the previous member
    for (const s of specs) {
      const start = s.packed ? end : Math.ceil(end / ALIGN) * ALIGN;
      offsets.push(start);
      end = start + s.shape.reduce((a, b) => a * b, 1);
    }
    const total = Math.ceil(end / ALIGN) * ALIGN;
    this.offsets = offsets;
    this.total = total;
    this.data = new Tensor([total], "f32", backend.alloc("f32", total), backend).setCategory(category).keep();
    this.members = specs.map((s, i) => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const t = new Tensor(s.shape, "f32", backend.view(this.data.buf, "f32", offsets[i], n), backend, false).keep();
      if (s.name) t.name = s.name;
      if (s.data) {
        if (s.data.length !== n) throw new Error(`FlatParams: ${s.data.length} values for ${t.describe()}`);
        backend.write(t.buf, s.data);
      }
      t.flat = { params: this, offset: offsets[i] };
      return t;
    });
  }

  /** [total] f32 gradient buffer (zero-filled once; members' gradients are views of it). */
  get grad(): Tensor {
    if (!this.gradT) this.gradT = new Tensor([this.total], "f32", this.backend.alloc("f32", this.total), this.backend).setCategory("gradients").keep();
    return this.gradT;
  }

  /** Member p's slice of the gradient buffer, to become p.grad (autograd.gradSink). */
  gradView(p: Tensor): Tensor {
    const g = this.slice(this.grad, p).setCategory("gradients");
    this.gradViews.add(g);
    return g;
  }

  /**
   * Start a step whose gradients all accumulate (beta 1) into a fresh zeroed gradient buffer: every member's .grad
   * is its slice from now on, so what a backward writes does not depend on whether it is the first of the step
   * (a captured graph replays the same GEMMs for every micro-batch).
   */
  zeroGradsForAccumulation(): void {
    this.gradT?.dispose();
    this.gradT = null;
    for (const m of this.members) m.grad = this.gradView(m);
  }

  /** True when every one of params has its gradient in the gradient buffer (not one set by hand). */
  gradsInBuffer(params: Tensor[]): boolean {
    return params.every((p) => p.grad !== null && this.gradViews.has(p.grad));
  }

  /** A view of `whole` ([total], laid out like data) over member p's elements. */
  slice(whole: Tensor, p: Tensor): Tensor {
    if (p.flat?.params !== this) throw new Error(`FlatParams.slice: ${p.describe()} is not a member`);
    return new Tensor(p.shape, whole.dtype, this.backend.view(whole.buf, whole.dtype, p.flat.offset, p.numel), this.backend, false).keep();
  }

  dispose(): void {
    for (const m of this.members) { m.grad = null; m.dispose(); }
    this.data.dispose();
    this.gradT?.dispose();
    this.gradT = null;
  }
}

/** The flat storage all of `params` belong to, when they are exactly its members; else null. */
export function flatOf(params: Tensor[]): FlatParams | null {
  const f = params[0]?.flat?.params;
  if (!f || params.length !== f.members.length) return null;
  const seen = new Set<Tensor>();
  for (const p of params) if (p.flat?.params !== f || seen.has(p)) return null; else seen.add(p);
  return f;
}
