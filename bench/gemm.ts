// CPU GEMM throughput: f32 1024³ and model-shaped products (Qwen2.5-0.5B MLP projection for 512 tokens, with f32
// and bf16 weights), beside the estimated peak of this machine.  Run: npm run bench -- gemm
import { cpuPeak } from "./cpu-peak.ts";
import { cpuAddon } from "../src/engine/native.ts";
import { f32ToBf16 } from "../src/models/safetensors.ts";

const k = cpuAddon();

export function time(fn: () => void, minMs = 1500): number {
  fn();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) { fn(); n++; }
  return (performance.now() - t0) / 1000 / n;
}

export function benchGemm(): void {
  const peak = cpuPeak();
  console.log(`estimated f32 peak: ${peak.gflops.toFixed(0)} GFLOP/s (${peak.how}); threads ${k.num_threads()}`);
  const cases: [string, number, number, number, "f32" | "bf16", boolean][] = [
    ["1024³ f32", 1024, 1024, 1024, "f32", false],
    ["x[512,896]·W[4864,896]ᵀ f32 (0.5B up_proj)", 512, 4864, 896, "f32", true],
    ["x[512,896]·W[4864,896]ᵀ bf16 weights", 512, 4864, 896, "bf16", true],
    ["x[64,896]·W[896,896]ᵀ f32 (decode-sized)", 64, 896, 896, "f32", true],
  ];
  for (const [name, M, N, K, dt, tB] of cases) {
    const A = new Float32Array(M * K).map(() => Math.random() - 0.5);
    const Bf = new Float32Array(N * K).map(() => Math.random() - 0.5);
    const B = dt === "bf16" ? f32ToBf16(Bf) : Bf;
    const C = new Float32Array(M * N);
    const s = time(() => k.gemm(C, A, B, dt === "bf16" ? 1 : 0, 1, M, N, K, false, tB, K, tB ? K : N, N, 0, 0, 0, 1, 0));
    const gf = (2 * M * N * K) / s / 1e9;
    console.log(`gemm ${name}: ${gf.toFixed(1)} GFLOP/s (${((gf / peak.gflops) * 100).toFixed(0)}% of estimated peak), ${(s * 1000).toFixed(2)} ms`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) benchGemm();
