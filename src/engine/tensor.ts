// Tensor: shape, dtype, a backend buffer, and autograd links. Memory: tensors created inside `scope(fn)` are
// disposed when fn returns, except what it returns or what is `keep()`-ed; long-lived tensors (weights, LoRA,
// optimiser state) are created outside scopes or kept, and freed by dispose().
import { defaultBackend, getBackend, registerLazyBackend, type Backend, type Buf, type Device } from "./backend.ts";
import { byteSize, type DType, type HostArray } from "./dtype.ts";
import { registerCpuBackend } from "./cpu.ts";
import { registerCudaBackend, cudaInfo } from "./cuda.ts";
import type { FlatParams } from "./flat.ts";

registerCpuBackend();
registerLazyBackend("cuda", registerCudaBackend, () => cudaInfo().error);

/** A node of the autograd graph: the op that made a tensor, its inputs and how to map the output gradient back. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  /**
   * Returns one gradient per input (null where the input needs none). Must not keep `g`, but when `owned` is true
   * it may hand g's buffer on as one input's gradient with g.moveTo(shape) (no copy).
   */
  backward(g: Tensor, owned: boolean): (Tensor | null)[];
  /**
   * Set for a node several outputs share (recordMulti): autograd then calls this once with every output's gradient
   * (null where an output got none) instead of `backward`. It must not keep them.
   */
  multi?: { outputs: Tensor[]; backward(gs: (Tensor | null)[]): (Tensor | null)[] };
}

const scopes: Set<Tensor>[] = [];

/** What a buffer is for, in memory reports. */
export type MemoryCategory = "weights" | "lora" | "optimizer" | "gradients" | "kv_cache" | "activations";
const CATEGORIES: MemoryCategory[] = ["weights", "lora", "optimizer", "gradients", "kv_cache", "activations"];

interface CategoryBytes { now: number; peak: number }
const byCategory = new Map<Device, Map<MemoryCategory, CategoryBytes>>();

function account(device: Device, cat: MemoryCategory, delta: number): void {
  let m = byCategory.get(device);
  if (!m) { m = new Map(CATEGORIES.map((c) => [c, { now: 0, peak: 0 }])); byCategory.set(device, m); }
  const e = m.get(cat)!;
  e.now += delta;
  if (e.now > e.peak) e.peak = e.now;
}

/** Bytes held now and at peak (since resetMemoryPeaks) per category, for tensors that own their buffers. */
export function memoryByCategory(device: Device = defaultBackend().device): Record<MemoryCategory, CategoryBytes> {
  const m = byCategory.get(device);
  return Object.fromEntries(CATEGORIES.map((c) => [c, { ...(m?.get(c) ?? { now: 0, peak: 0 }) }])) as Record<MemoryCategory, CategoryBytes>;
}

export function resetMemoryPeaks(device: Device = defaultBackend().device): void {
  for (const e of byCategory.get(device)?.values() ?? []) e.peak = e.now;
}

export class Tensor {
  readonly numel: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  /** set for named parameters, used in error messages */
  name?: string;
  /** set for parameters stored in a FlatParams (offset in its buffers) */
  flat?: { params: FlatParams; offset: number };
  private disposed = false;
  private cat: MemoryCategory = "activations";

  constructor(
    readonly shape: number[],
    readonly dtype: DType,
    readonly buf: Buf,
    readonly backend: Backend,
    /** false for views that alias another tensor's buffer */
    readonly owner = true,
  ) {
    this.numel = shape.reduce((a, b) => a * b, 1);
    const s = scopes[scopes.length - 1];
    if (s) s.add(this);
    if (owner) account(backend.device, this.cat, this.bytes);
  }

  get category(): MemoryCategory {
    return this.cat;
  }
  /** File this tensor's bytes under another category of the memory report. */
  setCategory(c: MemoryCategory): this {
    if (this.owner && !this.disposed && !this.released && c !== this.cat) {
      account(this.backend.device, this.cat, -this.bytes);
      account(this.backend.device, c, this.bytes);
    }
    this.cat = c;
    return this;
  }

  get device(): Device {
    return this.backend.device;
  }
  get bytes(): number {
    return byteSize(this.dtype, this.numel);
  }
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Host copy of the data (f32 as Float32Array, bf16/f16 as raw Uint16Array words, i32 as Int32Array). */
  data(): HostArray {
    this.check();
    return this.backend.read(this.buf, this.dtype, this.numel);
  }
  /** Host copy as Float32Array (only for f32 tensors). */
  f32(): Float32Array {
    if (this.dtype !== "f32") throw new Error(`tensor ${this.describe()} is ${this.dtype}, not f32`);
    return this.data() as Float32Array;
  }
  item(): number {
    if (this.numel !== 1) throw new Error(`item() on a tensor of shape [${this.shape}]`);
    if (this.hostScalar !== undefined) return this.hostScalar; // no device round trip (a sync on CUDA)
    return this.data()[0];
  }

  /** A tensor of `shape` (same element count) that takes this one's buffer over; this one is disposed without freeing it. */
  moveTo(shape: number[] = this.shape): Tensor {
    this.check();
    if (!this.owner) throw new Error(`moveTo: ${this.describe()} does not own its buffer`);
    if (shape.reduce((a, b) => a * b, 1) !== this.numel) throw new Error(`moveTo [${this.shape}] -> [${shape}]: sizes differ`);
    const t = new Tensor(shape, this.dtype, this.buf, this.backend).setCategory(this.cat);
    account(this.backend.device, this.cat, -this.bytes);
    this.disposed = true;
    this.node = null;
    return t;
  }

  /**
   * Record the value a [1]-tensor was just given from the host, so item() needs no device read. Only for tensors no
   * kernel writes afterwards (an op's scalar output, autograd's seed gradient).
   */
  knownScalar(v: number): this {
    if (this.numel !== 1) throw new Error(`knownScalar on ${this.describe()}`);
    this.hostScalar = this.dtype === "f32" ? Math.fround(v) : v;
    return this;
  }
  private hostScalar?: number;

  /** Exclude from the enclosing scope's cleanup. */
  keep(): this {
    for (const s of scopes) s.delete(this);
    return this;
  }

  /**
   * Free the buffer now but keep the tensor's shape and autograd links: offloaded checkpointing (engine/offload.ts)
   * keeps its values in host memory until its layer's backward. Reading it afterwards is an error.
   */
  releaseBuffer(): void {
    this.check();
    if (!this.owner) throw new Error(`releaseBuffer: ${this.describe()} does not own its buffer`);
    this.backend.free(this.buf, this.dtype, this.numel);
    account(this.backend.device, this.cat, -this.bytes);
    this.released = true;
  }
  private released = false;

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.owner && !this.released) {
      this.backend.free(this.buf, this.dtype, this.numel);
      account(this.backend.device, this.cat, -this.bytes);
    }
    this.node = null;
    if (this.grad) { this.grad.dispose(); this.grad = null; }
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  check(): void {
    if (this.disposed) throw new Error(`use of disposed tensor ${this.describe()}`);
    if (this.released) throw new Error(`use of ${this.describe()}, whose values were offloaded to host memory`);
  }
  describe(): string {
    return `${this.name ?? "tensor"}[${this.shape.join(",")}] ${this.dtype}`;
  }
}

/** A new zero-filled tensor. */
export function zeros(shape: number[], dtype: DType = "f32", backend: Backend = defaultBackend()): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(shape, dtype, backend.alloc(dtype, n), backend);
}

/** A new tensor whose contents are undefined (for outputs a kernel writes in full). */
export function empty(shape: number[], dtype: DType = "f32", backend: Backend = defaultBackend()): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(shape, dtype, backend.alloc(dtype, n, false), backend);
}

/** A tensor holding a copy of host data. */
export function fromHost(data: HostArray | number[], shape: number[], dtype?: DType, backend: Backend = defaultBackend()): Tensor {
  const dt: DType = dtype ?? (data instanceof Int32Array ? "i32" : data instanceof Uint16Array ? "bf16" : "f32");
  const arr: HostArray = Array.isArray(data) ? (dt === "i32" ? Int32Array.from(data) : Float32Array.from(data)) : data;
  const n = shape.reduce((a, b) => a * b, 1);
  if (arr.length !== n) throw new Error(`fromHost: ${arr.length} values for shape [${shape}]`);
  const t = empty(shape, dt, backend);
  backend.write(t.buf, arr);
  return t;
}

/** A tensor sharing `src`'s buffer with another shape (same numel, no copy). */
export function viewAs(src: Tensor, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== src.numel) throw new Error(`reshape [${src.shape}] -> [${shape}]: sizes differ`);
  return new Tensor(shape, src.dtype, src.buf, src.backend, false);
}

/** Rows [r0, r0 + rows) of a tensor whose first dimension is rows (no copy). */
export function rowsView(src: Tensor, r0: number, rows: number): Tensor {
  const rowSize = src.numel / src.shape[0];
  const buf = src.backend.view(src.buf, src.dtype, r0 * rowSize, rows * rowSize);
  return new Tensor([rows, ...src.shape.slice(1)], src.dtype, buf, src.backend, false);
}

/** Run fn; dispose every tensor it created except those in its result (a Tensor, array or object of Tensors). */
export function scope<T>(fn: () => T): T {
  const s = new Set<Tensor>();
  scopes.push(s);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const keepSet = new Set<Tensor>();
  collect(result, keepSet);
  const parent = scopes[scopes.length - 1];
  for (const t of s) {
    if (keepSet.has(t)) { if (parent) parent.add(t); continue; }
    t.dispose();
  }
  return result;
}

/** Async variant of scope. */
export async function scopeAsync<T>(fn: () => Promise<T>): Promise<T> {
  const s = new Set<Tensor>();
  scopes.push(s);
  let result: T;
  try {
    result = await fn();
  } finally {
    const i = scopes.lastIndexOf(s);
    if (i >= 0) scopes.splice(i, 1);
  }
  const keepSet = new Set<Tensor>();
  collect(result, keepSet);
  for (const t of s) if (!keepSet.has(t)) t.dispose();
  return result;
}

function collect(v: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 4 || v == null) return;
  if (v instanceof Tensor) { out.add(v); return; }
  if (Array.isArray(v)) { for (const x of v) collect(x, out, depth + 1); return; }
  if (typeof v === "object" && !(ArrayBuffer.isView(v))) for (const x of Object.values(v as object)) collect(x, out, depth + 1);
}

/** Memory report of a backend (bytes allocated, peak, live buffers). */
export function memory(device?: Device) {
  return getBackend(device).memory();
}
