// Offloaded gradient checkpointing (gradient_checkpointing: "offload"): each checkpointed layer's input waits in
// host memory from its forward to its backward, instead of on the device.
//   forward, layer l:  its input x_l starts copying to host memory (the backend's copy path: on CUDA pinned memory on
//                      a stream of its own, overlapping layer l's compute); x_{l-1}'s buffer is freed, its copy
//                      having had a whole layer's compute to finish. The last layer's input stays (its backward is next).
//   backward, layer l: x_{l-1} starts coming back (overlapping layer l's recompute and backward); x_l, brought back
//                      during layer l+1's backward, is waited for and recomputed from; its buffer is freed after.
// So the device holds one layer's input at a time beyond the current one, in both directions. The CPU backend runs the
// same steps through its own copy path (copy2d into host arrays), so the tests cover this logic.
// Simplifies: one chain per forward (the model's layer loop); an input that is a view (not its buffer's owner) stays.
import { Tensor } from "./tensor.ts";
import type { Backend } from "./backend.ts";

interface Entry {
  x: Tensor;
  /** the host copy (null: not offloaded, x stays) */
  id: number | null;
  /** x's buffer was freed */
  released: boolean;
  /** the buffer x's values are brought back into, once asked for */
  restored: unknown | null;
  prev: Entry | null;
}

export class ActivationOffload {
  private last: Entry | null = null;
  private pending: Entry | null = null; // copied, not yet freed
  constructor(private readonly be: Backend) {
    if (!be.offload) throw new Error(`offloaded checkpointing: the ${be.device} backend has no host copies`);
  }

  /** After a layer's forward from x (keep: the last layer, whose input is not offloaded): returns the layer's entry. */
  save(x: Tensor, keep: boolean): object {
    const copyable = !keep && x.owner && x.dtype === "f32";
    const e: Entry = { x, id: copyable ? this.be.offload!.toHost(x.buf, x.numel) : null, released: false, restored: null, prev: this.last };
    if (this.pending) {
      this.be.offload!.wait(this.pending.id!);
      this.pending.x.releaseBuffer();
      this.pending.released = true;
    }
    this.pending = e.id !== null ? e : null;
    this.last = e;
    return e;
  }

  /** At the start of a layer's backward: its input on the device (a tensor the caller disposes), its predecessor's on the way. */
  restore(entry: object): Tensor {
    const e = entry as Entry, off = this.be.offload!;
    if (this.pending === e) { // (no later layer freed it: still on the device)
      off.wait(e.id!);
      this.pending = null;
    }
    const bring = (p: Entry) => {
      if (!p.released || p.restored) return;
      p.restored = this.be.alloc("f32", p.x.numel, false);
      off.toDevice(p.id!, p.restored);
    };
    if (e.prev) bring(e.prev); // overlaps this layer's work
    if (!e.released) return new Tensor(e.x.shape, "f32", e.x.buf, this.be, false);
    bring(e);
    off.wait(e.id!);
    return new Tensor(e.x.shape, "f32", e.restored, this.be, true);
  }

  /** After a layer's backward: its host copy may be reused. */
  done(entry: object): void {
    const e = entry as Entry;
    if (e.id !== null) this.be.offload!.release(e.id);
    e.id = null;
  }
}
