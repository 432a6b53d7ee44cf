// What the npm package's prebuilt CPU modules cost against a build tuned for this CPU (native/build, -march=native):
// GEMM throughput of each module this CPU can run, in one process, each beside the local build's figure of the same
// run. Needs prebuilds/ (`node scripts/build.mjs prebuilds`, or `npm pack`) and native/build.
// Run: node --import tsx bench/prebuilds.ts
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { f32ToBf16 } from "../src/models/safetensors.ts";
import { prebuildDir, prebuildNames, requireAddon } from "../src/engine/addon.ts";
import { packageRoot } from "../src/package.ts";
import type { CpuAddon } from "../src/engine/native.ts";
import { time } from "./gemm.ts";

const cases: [string, number, number, number, "f32" | "bf16"][] = [
  ["1024³ f32", 1024, 1024, 1024, "f32"],
  ["x[512,896]·W[4864,896]ᵀ bf16 weights", 512, 4864, 896, "bf16"],
];

function gflops(k: CpuAddon): number[] {
  return cases.map(([, M, N, K, dt]) => {
    const A = new Float32Array(M * K).map(() => Math.random() - 0.5);
    const Bf = new Float32Array(N * K).map(() => Math.random() - 0.5);
    const B = dt === "bf16" ? f32ToBf16(Bf) : Bf;
    const C = new Float32Array(M * N);
    return (2 * M * N * K) / time(() => k.gemm(C, A, B, dt === "bf16" ? 1 : 0, 1, M, N, K, false, true, K, K, N, 0, 0, 0, 1, 0)) / 1e9;
  });
}

const local = join(packageRoot(), "native", "build", "Release", "aha_cpu.node");
const runnable = new Set(prebuildNames("aha_cpu"));
const modules = [
  ...(existsSync(local) ? [["native/build (-march=native)", local]] : []),
  ...(existsSync(prebuildDir()) ? readdirSync(prebuildDir()).filter((f) => f.startsWith("aha_cpu") && runnable.has(f)).map((f) => [`prebuilt ${f}`, join(prebuildDir(), f)]) : []),
];
if (modules.length < 2) throw new Error("needs native/build and prebuilds/ (node scripts/build.mjs prebuilds)");
let base: number[] | null = null;
for (const [name, path] of modules) {
  const g = gflops(requireAddon<CpuAddon>(path));
  base ??= g;
  console.log(`${name}: ${cases.map(([c], i) => `${c} ${g[i].toFixed(1)} GFLOP/s (${(g[i] / base![i]).toFixed(2)}×)`).join(", ")}`);
}
