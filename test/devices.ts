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
