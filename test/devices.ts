// Devices the suite can run on here: always "cpu", plus "cuda" when aha_cuda.node loads and finds a GPU.
// Test files loop over availableDevices() (or skip with `cudaSkip`) so the same checks run on every backend.
// AHA_TEST_DEVICES=cuda keeps only the GPU's runs (bench/gpu-run.sh: the CPU's are CI's, and device time is short).
import { cudaAvailable, cudaInfo } from "../src/engine/cuda.ts";
import type { Device } from "../src/engine/backend.ts";

export function availableDevices(): Device[] {
  const all: Device[] = cudaAvailable() ? ["cpu", "cuda"] : ["cpu"];
  const only = process.env.AHA_TEST_DEVICES?.split(",").map((d) => d.trim());
  return only ? all.filter((d) => only.includes(d)) : all;
}

/** node:test `skip` option: false where CUDA runs, else the reason. */
export function cudaSkip(): false | string {
  return cudaAvailable() ? false : `no CUDA: ${cudaInfo().error}`;
}

/** Make `d` the device new tensors (and models loaded next) live on; its GEMMs in exact f32 for parity tests (both
 * backends default to the bf16 mode: bf16 activations by bf16 weights). */
export async function useDevice(d: Device): Promise<void> {
  const { setDefaultDevice, getBackend } = await import("../src/engine/index.ts");
  if (d === "cuda") {
    const { cudaBackend } = await import("../src/engine/cuda.ts");
    cudaBackend().setGemmMode("exact");
  } else (getBackend("cpu") as unknown as { setGemmMode(m: "exact"): void }).setGemmMode("exact");
  setDefaultDevice(d);
}
