// The CUDA backend: buffers are device addresses (JS numbers) owned by the caching allocator in native/cuda, and
// `k` is the native module itself, whose kernel exports take the CPU addon's arguments in the same order.
// Registered only when aha_cuda.node loads and init() finds a device and cuBLAS; there is no fallback to the CPU:
// an op the module lacks is an error naming it. Reads synchronise the stream (readAsync waits only for the work
// enqueued before it); writes are enqueued on it.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { findAddon, requireAddon } from "./addon.ts";
import { registerBackend, type Backend, type Buf, type Kernels, type MemoryReport, type OffloadCopies } from "./backend.ts";
import { byteSize, DTYPE_BYTES, hostArray, type DType, type HostArray } from "./dtype.ts";

/** What init() of the native module says about the device. */
export interface CudaInfo {
  ok: boolean;
  error?: string;
  name?: string;
  totalMemory?: number;
  /** major · 10 + minor (75 for a T4, 90 for an H100) */
  computeCapability?: number;
  sms?: number;
  /** bytes of shared memory a block may have (tile sizes follow it) */
  smemPerBlock?: number;
  /** bf16 tensor cores (sm_80+); false on Turing, whose 16-bit mode is f16 */
  bf16?: boolean;
  /** one line: the device and what the backend chose for it (printed once when the backend registers) */
  summary?: string;
}

/** Memory report of the CUDA backend: the Backend fields plus what the allocator holds from the driver. */
export interface CudaMemoryReport extends MemoryReport {
  /** bytes held from cudaMalloc (live blocks and the cache) */
  reserved: number;
  peakReserved: number;
}

interface CudaAddon extends Kernels {
  init(): CudaInfo;
  alloc(bytes: number, zero?: boolean): number;
  free(ptr: number): void;
  write(ptr: number, data: HostArray): void;
  read(ptr: number, out: HostArray): void;
  read_async(ptr: number, bytes: number): number;
  read_wait(id: number, out: HostArray): void;
  synchronize(): void;
  memory(): CudaMemoryReport;
  reset_peak(): void;
  empty_cache(): void;
  set_gemm_mode(mode: number): void;
  set_gemm_tuning(on: boolean): void;
  set_skinny_gemm(on: boolean): void;
  set_pdl(on: boolean): void;
  set_decode_group(on: boolean): void;
  gemm_stats(): { tuned: number; changed: number; skinny: number };
  set_attention_kernel(which: number): void;
  attention_plan(D: number, backward: boolean, smemPerBlock?: number): "wmma" | "mma" | "f32";
  profile(): Record<string, [number, number, number, number]>;
  profile_gemm_shapes(): Record<string, [number, number, number, number]>;
  set_profile(on: boolean): void;
  graph_begin(): void;
  graph_end(): number;
  graph_abort(): void;
  graph_launch(id: number): void;
  graph_destroy(id: number): void;
  offload_to_host(ptr: number, bytes: number): number;
  offload_wait(id: number): void;
  offload_to_device(id: number, ptr: number): void;
  offload_release(id: number): void;
}

/** GEMM operand precision for 16-bit weights: "bf16" (tensor cores, activations rounded; default), "exact" (f32). */
export type GemmMode = "bf16" | "exact" | "tf32";
const GEMM_MODES: Record<GemmMode, number> = { bf16: 0, exact: 1, tf32: 2 };

let addon: CudaAddon | null = null;
let info: CudaInfo | null = null;

function addonPath(): string | null {
  // AHA_CUDA_ADDON: another build of the module (a relative path is taken from the working directory), e.g. the
  // emulator's, native/build/Release/aha_cuda_emu.node (npm run test:cuda-emu)
  return process.env.AHA_CUDA_ADDON ? resolve(process.env.AHA_CUDA_ADDON) : findAddon("aha_cuda");
}

/** Load the module and ask it for a device (once). Never throws: the reason is in `error`. */
export function cudaInfo(): CudaInfo {
  if (info) return info;
  const path = addonPath();
  if (!path || !existsSync(path))
    return (info = { ok: false, error: `CUDA backend not built (${path ?? "no aha_cuda.node built or prebuilt"}; needs nvcc at install or pack time)` });
  try {
    addon = requireAddon<CudaAddon>(path);
    info = addon.init();
  } catch (e) {
    info = { ok: false, error: `cannot load ${path}: ${(e as Error).message}` };
  }
  return info;
}

/** True when the CUDA backend is the emulator (native/cuda-emu: CUDA's code on the CPU, for tests without a GPU). */
export function cudaEmulated(): boolean {
  return !!cudaInfo().name?.includes("emulator");
}

export function cudaAvailable(): boolean {
  return cudaInfo().ok;
}

class CudaBackend implements Backend {
  readonly device = "cuda" as const;
  readonly k: Kernels;
  constructor(private readonly m: CudaAddon) {
    this.k = m;
    const mode = process.env.AHA_CUDA_GEMM as GemmMode | undefined;
    if (mode) this.setGemmMode(mode);
  }
  alloc(dtype: DType, numel: number, zero = true): Buf {
    return this.m.alloc(byteSize(dtype, numel), zero);
  }
  free(buf: Buf, _dtype: DType, _numel: number): void {
    this.m.free(buf as number);
  }
  view(buf: Buf, dtype: DType, offset: number, _numel: number): Buf {
    return (buf as number) + offset * DTYPE_BYTES[dtype];
  }
  write(buf: Buf, data: HostArray): void {
    this.m.write(buf as number, data);
  }
  read(buf: Buf, dtype: DType, numel: number): HostArray {
    const out = hostArray(dtype, numel);
    this.m.read(buf as number, out);
    return out;
  }
  readAsync(buf: Buf, dtype: DType, numel: number): () => HostArray {
    const id = this.m.read_async(buf as number, byteSize(dtype, numel));
    return () => {
      const out = hostArray(dtype, numel);
      this.m.read_wait(id, out);
      return out;
    };
  }
  /** offloaded checkpointing: pinned host memory, a copy stream of its own (native/cuda/offload.cu) */
  readonly offload: OffloadCopies = {
    toHost: (buf, numel) => this.m.offload_to_host(buf as number, numel * 4),
    wait: (id) => this.m.offload_wait(id),
    toDevice: (id, buf) => this.m.offload_to_device(id, buf as number),
    release: (id) => this.m.offload_release(id),
  };
  supports(op: string, dtype: DType): boolean {
    return op in this.m && (dtype !== "i32" || op === "embedding_forward");
  }
  synchronize(): void {
    this.m.synchronize();
  }
  memory(): CudaMemoryReport {
    return this.m.memory();
  }
  resetPeak(): void {
    this.m.reset_peak();
  }
  /** Give cached, unused blocks back to the driver. */
  emptyCache(): void {
    this.m.empty_cache();
  }
  /**
   * GPU milliseconds, calls, FLOPs and least bytes moved per op since the last call (with AHA_CUDA_PROFILE=1 or
   * setProfiling(true); else empty). FLOPs and bytes come from each op's cost model (0 where it has none).
   */
  profile(): Record<string, [number, number, number, number]> {
    return this.m.profile();
  }
  /**
   * The profiled GEMMs by shape since the last call (label "[batch ×] M×N×K, A dtype, B dtype…", C = op(A) op(B)):
   * GPU milliseconds, calls, FLOPs and the bytes each must move at least (operands once, C written, read too with β).
   */
  profileGemmShapes(): { shape: string; ms: number; calls: number; flops: number; bytes: number }[] {
    return Object.entries(this.m.profile_gemm_shapes()).map(([shape, [ms, calls, flops, bytes]]) => ({ shape, ms, calls, flops, bytes }));
  }
  /** Time every op from now on (an event pair each, not inside graph captures), or stop. */
  setProfiling(on: boolean): void {
    this.m.set_profile(on);
  }
  captureGraph<T>(fn: () => T, discard?: (result: T) => void): { graph: number; result: T } {
    this.m.graph_begin();
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.m.graph_abort();
      throw e;
    }
    try {
      return { graph: this.m.graph_end(), result };
    } catch (e) {
      discard?.(result); // the capture was refused at its end (an illegal call inside it): its outputs are not kept
      throw e;
    }
  }
  launchGraph(graph: number): void {
    this.m.graph_launch(graph);
  }
  destroyGraph(graph: number): void {
    this.m.graph_destroy(graph);
  }
  /**
   * Time the heuristic's algorithms for each GEMM shape first met from now on, outside graph captures, and keep the
   * fastest (AHA_GEMM_TUNE=1 at start-up does the same); drops the cached plans. Off by default: the choice follows
   * timings, so two processes may pick differently and round differently.
   */
  setGemmTuning(on: boolean): void {
    this.m.set_gemm_tuning(on);
  }
  /**
   * GEMMs of up to 64 rows by bf16 weights (decode steps) on aha's own tensor-core kernel with K split over the GPU
   * (native/cuda/skinny_gemm.cu) instead of cuBLASLt, in the bf16 GEMM mode (AHA_SKINNY_GEMM=1 does the same). Off
   * by default until a GPU run shows it faster.
   */
  setSkinnyGemm(on: boolean): void {
    this.m.set_skinny_gemm(on);
  }
  /**
   * Launch the decode path's own kernels (norms, attention, GLU, skinny GEMMs, sampling) with programmatic dependent
   * launch on sm_90+, so each may be scheduled while the one before it finishes (AHA_PDL=1 does the same). Off by
   * default until a GPU run shows it faster.
   */
  setPdl(on: boolean): void {
    this.m.set_pdl(on);
  }
  /**
   * Decode steps' attention with one block per (kv head, sequence) for the group's query heads together, so the
   * group's cached keys and values are read once rather than once per query head (AHA_DECODE_GROUP=1 does the same).
   * Off by default until a GPU run shows it faster.
   */
  setDecodeGroup(on: boolean): void {
    this.m.set_decode_group(on);
  }
  /** GEMM plans timed so far (tuning), how many took another algorithm than the heuristic's first, and the GEMMs run by the skinny kernel. */
  gemmStats(): { tuned: number; changed: number; skinny: number } {
    return this.m.gemm_stats();
  }
  setGemmMode(mode: GemmMode): void {
    if (!(mode in GEMM_MODES)) throw new Error(`AHA_CUDA_GEMM / setGemmMode: '${mode}' is not one of ${Object.keys(GEMM_MODES).join(", ")}`);
    this.m.set_gemm_mode(GEMM_MODES[mode]);
    this.gemmMode = mode;
  }
  private gemmMode: GemmMode = "bf16";
  /**
   * The tensor-core attention kernels, forward and backward (16-bit models, head dims 64/96/128): "wmma" (default)
   * or "mma" (mma.sync fragments in registers, FlashAttention-2's layout; AHA_ATTENTION=mma), until a GPU run says
   * which is faster.
   */
  setAttentionKernel(which: "wmma" | "mma"): void {
    this.m.set_attention_kernel(which === "mma" ? 1 : 0);
  }
  /**
   * Which tensor-core attention kernels a head dim's forward or backward runs in the 16-bit modes on this device:
   * the chosen pair ("wmma" by default) where its tiles fit the shared memory a block may have (smemPerBlock: this
   * device's, or another's to see its choice), else the other pair, else "f32" (native/cuda/attention_tc.cu).
   */
  attentionPlan(D: number, backward: boolean, smemPerBlock?: number): "wmma" | "mma" | "f32" {
    return this.m.attention_plan(D, backward, smemPerBlock);
  }
  /** bf16 weights are kept as f16 where the GPU has no bf16 tensor cores (Turing) */
  weightDtype(stored: DType): DType {
    return stored === "bf16" && info?.bf16 === false ? "f16" : stored;
  }
  /** in the default mode a GEMM of f32 activations by 16-bit weights runs on the weights' type (native/cuda/gemm.cu) */
  gemmActivationDtype(weight: DType): DType {
    return this.gemmMode === "bf16" && (weight === "bf16" || weight === "f16") ? weight : "f32";
  }
}

let backend: CudaBackend | null = null;

/** Register the CUDA backend if a device is usable; returns whether it is (see cudaInfo().error for why not). */
export function registerCudaBackend(): boolean {
  if (backend) return true;
  if (!cudaInfo().ok) return false;
  backend = new CudaBackend(addon!);
  registerBackend(backend);
  // what the backend chose for this GPU, once per process (AHA_QUIET=1: not at all)
  if (info?.summary && process.env.AHA_QUIET !== "1") process.stderr.write(`aha cuda: ${info.summary}\n`);
  return true;
}

/** The registered CUDA backend (throws with the reason when there is none). */
export function cudaBackend(): CudaBackend {
  if (!registerCudaBackend()) throw new Error(`aha: CUDA backend unavailable: ${cudaInfo().error}`);
  return backend!;
}
