// The CPU backend: buffers are typed arrays in the JS heap, kernels run in the native addon (native/cpu).
import { cpuAddon } from "./native.ts";
import { registerBackend, type Backend, type Buf, type MemoryReport } from "./backend.ts";
import { DTYPE_BYTES, hostArray, type DType, type HostArray } from "./dtype.ts";

class CpuBackend implements Backend {
  readonly device = "cpu" as const;
  readonly k = cpuAddon();
  private allocated = 0;
  private peak = 0;
  private buffers = 0;

  alloc(dtype: DType, numel: number, _zero = true): Buf {
    const a = hostArray(dtype, numel);
    this.allocated += numel * DTYPE_BYTES[dtype];
    this.buffers++;
    if (this.allocated > this.peak) this.peak = this.allocated;
    return a;
  }
  free(_buf: Buf, dtype: DType, numel: number): void {
    this.allocated -= numel * DTYPE_BYTES[dtype];
    this.buffers--;
  }
  view(buf: Buf, _dtype: DType, offset: number, numel: number): Buf {
    return (buf as HostArray).subarray(offset, offset + numel);
  }
  write(buf: Buf, data: HostArray): void {
    (buf as HostArray).set(data as never);
  }
  read(buf: Buf, _dtype: DType, numel: number): HostArray {
    return (buf as HostArray).slice(0, numel);
  }
  supports(_op: string, _dtype: DType): boolean {
    return true;
  }
  synchronize(): void {}
  memory(): MemoryReport {
    return { allocated: this.allocated, peak: this.peak, buffers: this.buffers };
  }
  resetPeak(): void {
    this.peak = this.allocated;
  }
}

let registered = false;
export function registerCpuBackend(): void {
  if (registered) return;
  registerBackend(new CpuBackend());
  registered = true;
}
