// Devices the suite can run on here: always "cpu", plus "cuda" when aha_cuda.node loads and finds a GPU.
// Test files loop over availableDevices() (or skip with `cudaSkip`) so the same checks run on every backend.
import { cudaAvailable, cudaInfo } from "../src/engine/cuda.ts";
import type { Device } from "../src/engine/backend.ts";

export function availableDevices(): Device[] {
  return cudaAvailable() ? ["cpu", "cuda"] : ["cpu"];
}

/** node:test `skip` option: false where CUDA runs, else the reason. */
export function cudaSkip(): false | string {
  return cudaAvailable() ? false : `no CUDA: ${cudaInfo().error}`;
}

/** Make `d` the device new tensors (and models loaded next) live on; CUDA GEMMs in exact f32 for parity tests. */
export async function useDevice(d: Device): Promise<void> {
  const { setDefaultDevice } = await import("../src/engine/index.ts");
  if (d === "cuda") {
    const { cudaBackend } = await import("../src/engine/cuda.ts");
    cudaBackend().setGemmMode("exact");
  }
  setDefaultDevice(d);
}
