// The backend interface every device implements (CPU native addon today; CUDA behind the same methods), and the
// registry. A backend owns buffers (opaque handles) and runs named kernels on them; it never knows about models.
// No silent fallback: a kernel a backend lacks is an error naming the op and the device.
import type { CpuAddon } from "./native.ts";
import type { DType, HostArray } from "./dtype.ts";

/** An opaque device buffer handle (a typed array on the CPU, a device pointer object on CUDA). */
export type Buf = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Kernel table: same names and argument order as native/cpu/kernels.h; buffers are the backend's handles. */
export type Kernels = { [K in keyof CpuAddon]: (...args: any[]) => any }; // eslint-disable-line @typescript-eslint/no-explicit-any

export type Device = "cpu" | "cuda";

export interface MemoryReport {
  /** bytes currently allocated through this backend */
  allocated: number;
  /** high-water mark since the last resetPeak() */
  peak: number;
  /** live buffer count */
  buffers: number;
  /** the largest single buffer allocated since the last resetPeak() (CUDA: the kernels' scratch included) */
  largest?: number;
}

export interface Backend {
  readonly device: Device;
  /** a buffer of numel elements, zero-filled unless zero is false (then its contents are undefined) */
  alloc(dtype: DType, numel: number, zero?: boolean): Buf;
  free(buf: Buf, dtype: DType, numel: number): void;
  /** a buffer that aliases `numel` elements of `buf` from element `offset` (no copy, not owned) */
  view(buf: Buf, dtype: DType, offset: number, numel: number): Buf;
  write(buf: Buf, data: HostArray): void;
  read(buf: Buf, dtype: DType, numel: number): HostArray;
  /**
   * Start a read of what the work enqueued so far leaves in buf; the returned function waits for that work only
   * (not for what is enqueued after this call) and gives the values. Call it once.
   */
  readAsync(buf: Buf, dtype: DType, numel: number): () => HostArray;
  supports(op: string, dtype: DType): boolean;
  synchronize(): void;
  memory(): MemoryReport;
  resetPeak(): void;
  readonly k: Kernels;
  /**
   * The dtype a GEMM rounds f32 activations to before multiplying them by a matrix stored as `weight` ("f32": it
   * does not round them). An op that feeds one input to several such GEMMs converts it once (loraLinearGroup).
   * Absent: "f32".
   */
  gemmActivationDtype?(weight: DType): DType;
  /**
   * Graphs, where the device has them (CUDA): run fn once capturing every kernel it enqueues instead of running
   * them, and return a graph that replays them on the same buffers. fn must not write, read or synchronise.
   * discard: called with fn's result when the capture fails after fn returned (its tensors are then nobody's).
   */
  captureGraph?<T>(fn: () => T, discard?: (result: T) => void): { graph: number; result: T };
  /** Copies to host memory and back for offloaded checkpointing (engine/offload.ts). */
  offload?: OffloadCopies;
  launchGraph?(graph: number): void;
  destroyGraph?(graph: number): void;
}

/**
 * A device buffer's copy in host memory and back (offloaded checkpointing). CUDA: pinned memory, transfers on a copy
 * stream of their own that overlap the compute; the CPU: another array, copied by a kernel (so graphs record it).
 */
export interface OffloadCopies {
  /** start copying numel f32 elements of buf to host memory, after the work enqueued so far; returns the copy's id */
  toHost(buf: Buf, numel: number): number;
  /** later work waits for copy id's latest transfer (after toHost its source may be freed; after toDevice, read) */
  wait(id: number): void;
  /** start copying copy id back into buf (a buffer of its size), after the work enqueued so far */
  toDevice(id: number, buf: Buf): void;
  /** copy id's host memory may be reused */
  release(id: number): void;
}

/** Whether be's GEMMs round f32 activations by `weight`-typed matrices to that 16-bit type anyway, so they may be
 * given the activations already rounded (x16 inputs). */
export function gemmTakes16(be: Backend, weight: DType): boolean {
  return weight !== "f32" && be.gemmActivationDtype?.(weight) === weight;
}

const backends = new Map<Device, Backend>();
let defaultDevice: Device = "cpu";

export function registerBackend(b: Backend): void {
  backends.set(b.device, b);
}

/** Backends registered on first use (CUDA loads its module only when asked for); `why` explains a refusal. */
const lazy = new Map<Device, { load: () => boolean; why: () => string | undefined }>();

export function registerLazyBackend(device: Device, load: () => boolean, why: () => string | undefined): void {
  lazy.set(device, { load, why });
}

export function getBackend(device: Device = defaultDevice): Backend {
  let b = backends.get(device);
  if (!b && lazy.has(device)) {
    const l = lazy.get(device)!;
    if (l.load()) b = backends.get(device);
    else throw new Error(`aha: backend '${device}' is not available: ${l.why() ?? "unknown reason"}`);
  }
  if (!b) throw new Error(`aha: backend '${device}' is not available`);
  return b;
}

export function setDefaultDevice(d: Device): void {
  getBackend(d);
  defaultDevice = d;
}

/**
 * Whether decode steps and training micro-batches replay captured graphs unless told otherwise: on the CPU (where
 * replaying recorded kernel calls saves the JavaScript of every step) but not yet on CUDA (until measured on a GPU);
 * the environment variable AHA_GRAPHS=1 or 0 decides for every device.
 */
export function graphsByDefault(device: Device): boolean {
  const env = process.env.AHA_GRAPHS;
  if (env === "1" || env === "0") return env === "1";
  return device === "cpu";
}

export function defaultBackend(): Backend {
  return getBackend(defaultDevice);
}
