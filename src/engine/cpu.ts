// The CPU backend: buffers are typed arrays in the JS heap, kernels run in the native addon (native/cpu).
// Graphs work as on CUDA, by recording: while capturing, kernel calls are recorded (with their buffers) instead of
// run, and a launch replays them. Host transfers and kernels that return a value to the host are refused while
// capturing, as CUDA refuses them, so code that captures steps (generate/decode-step.ts) is checked here too.
import { cpuAddon, type CpuAddon } from "./native.ts";
import { registerBackend, type Backend, type Buf, type Kernels, type MemoryReport, type OffloadCopies } from "./backend.ts";
import { byteSize, hostArray, type DType, type HostArray } from "./dtype.ts";

/** Kernels whose result comes back to the host (a device sync on CUDA): not capturable. */
const RETURNS_TO_HOST = new Set(["sum_squares", "grpo_loss", "num_threads"]);
type Call = [(...args: unknown[]) => unknown, unknown[]];
const fill0 = (a: unknown) => (a as HostArray).fill(0);
// AHA_POISON=1 (the test suite): buffers allocated without zeroing hold all-ones bytes (NaN in f32/bf16, -1 in i32),
// as CUDA's recycled blocks hold stale values, so a kernel that reads an output it was meant to write first shows
const POISON = process.env.AHA_POISON === "1";
const poison = (a: unknown) => { const h = a as HostArray; new Uint8Array(h.buffer, h.byteOffset, h.byteLength).fill(0xff); };

class CpuBackend implements Backend {
  readonly device = "cpu" as const;
  private readonly addon: CpuAddon = cpuAddon();
  k: Kernels = this.addon;
  private capture: Call[] | null = null;
  /** while capturing: buffers the capture allocated and freed, by dtype and size */
  private captureFree: Map<string, HostArray[]> | null = null;
  private captured = new WeakSet<HostArray>();
  private readonly graphs = new Map<number, Call[]>();
  private nextGraph = 1;
  private allocated = 0;
  private peak = 0;
  private buffers = 0;
  private largest = 0;

  alloc(dtype: DType, numel: number, zero = true): Buf {
    // while capturing, a buffer the capture itself allocated and freed is handed out again, as CUDA's allocator does:
    // the replay runs the calls in the same order, and the graph holds about what one eager run needs at its peak
    const key = `${dtype}:${numel}`;
    const a = this.captureFree?.get(key)?.pop() ?? hostArray(dtype, numel);
    if (this.capture) {
      this.captured.add(a);
      if (zero) this.capture.push([fill0, [a]]); // as on CUDA, where the zero-fill is a node of the graph
      else if (POISON) this.capture.push([poison, [a]]);
    } else if (!zero && POISON) poison(a);
    this.allocated += byteSize(dtype, numel);
    this.buffers++;
    if (this.allocated > this.peak) this.peak = this.allocated;
    if (byteSize(dtype, numel) > this.largest) this.largest = byteSize(dtype, numel);
    return a;
  }
  free(buf: Buf, dtype: DType, numel: number): void {
    this.allocated -= byteSize(dtype, numel);
    this.buffers--;
    if (this.captureFree && this.captured.has(buf as HostArray)) {
      const key = `${dtype}:${numel}`;
      const list = this.captureFree.get(key);
      if (list) list.push(buf as HostArray);
      else this.captureFree.set(key, [buf as HostArray]);
    }
  }
  view(buf: Buf, _dtype: DType, offset: number, numel: number): Buf {
    return (buf as HostArray).subarray(offset, offset + numel);
  }
  write(buf: Buf, data: HostArray): void {
    if (this.capture) throw new Error("aha cpu: an upload while capturing a graph (its inputs must be written before the launch)");
    (buf as HostArray).set(data as never);
  }
  read(buf: Buf, _dtype: DType, numel: number): HostArray {
    if (this.capture) throw new Error("aha cpu: a read while capturing a graph");
    return (buf as HostArray).slice(0, numel);
  }
  readAsync(buf: Buf, dtype: DType, numel: number): () => HostArray {
    const out = this.read(buf, dtype, numel); // kernels have run by now
    return () => out;
  }
  captureGraph<T>(fn: () => T): { graph: number; result: T } {
    if (this.capture) throw new Error("aha cpu: a graph is already being captured");
    const calls: Call[] = (this.capture = []);
    this.captureFree = new Map();
    this.captured = new WeakSet();
    const addon = this.addon as unknown as Record<string, (...args: unknown[]) => unknown>;
    this.k = new Proxy(addon, {
      get: (t, name: string) => {
        const f = t[name];
        if (typeof f !== "function") return f;
        return (...args: unknown[]) => {
          // grpo_loss with an output buffer (its 12th argument) keeps the value on the device
          if (RETURNS_TO_HOST.has(name) && !(name === "grpo_loss" && args[11])) throw new Error(`aha cpu: ${name} returns a value to the host: not capturable`);
          calls.push([f, args]);
        };
      },
    }) as unknown as Kernels;
    try {
      const result = fn();
      const graph = this.nextGraph++;
      this.graphs.set(graph, calls);
      return { graph, result };
    } finally {
      this.k = this.addon;
      this.capture = null;
      this.captureFree = null;
    }
  }
  launchGraph(graph: number): void {
    const calls = this.graphs.get(graph);
    if (!calls) throw new Error(`aha cpu: no graph ${graph}`);
    for (const [f, args] of calls) f.apply(this.addon, args);
  }
  destroyGraph(graph: number): void {
    this.graphs.delete(graph);
  }
  /** offloaded checkpointing: the "host" copy is another array (not counted as device memory), copied by copy2d through
   *  `k` so that a captured graph replays the copies; synchronous, so waiting has nothing to do */
  readonly offload: OffloadCopies = (() => {
    const copies = new Map<number, Float32Array>();
    let next = 0;
    return {
      toHost: (buf: Buf, numel: number) => {
        const host = new Float32Array(numel);
        this.k.copy2d(host, buf, 1, numel, 0, 0, false);
        copies.set(next, host);
        return next++;
      },
      wait: () => {},
      toDevice: (id: number, buf: Buf) => { const h = copies.get(id)!; this.k.copy2d(buf, h, 1, h.length, 0, 0, false); },
      release: (id: number) => { copies.delete(id); },
    };
  })();
  supports(_op: string, _dtype: DType): boolean {
    return true;
  }
  synchronize(): void {
    if (this.capture) throw new Error("aha cpu: synchronize while capturing a graph");
  }
  memory(): MemoryReport {
    return { allocated: this.allocated, peak: this.peak, buffers: this.buffers, largest: this.largest };
  }
  resetPeak(): void {
    this.peak = this.allocated;
    this.largest = 0;
  }
}

let registered = false;
export function registerCpuBackend(): void {
  if (registered) return;
  registerBackend(new CpuBackend());
  registered = true;
}
