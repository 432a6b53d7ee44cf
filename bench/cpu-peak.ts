// Estimated single-precision peak of this CPU: cores × clock × FMA lanes × 2 FLOPs × 2 FMA ports, from
// /proc/cpuinfo (AVX-512: 16 lanes, AVX2: 8). An estimate for context, not a measurement.
import { readFileSync } from "node:fs";
import { cpus } from "node:os";

export function cpuPeak(): { gflops: number; how: string } {
  let flags = "", mhz = cpus()[0]?.speed ?? 0;
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    flags = /^flags\s*:(.*)$/m.exec(info)?.[1] ?? "";
    mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(info)?.[1] ?? mhz);
  } catch { /* not Linux */ }
  const lanes = / avx512f/.test(flags) ? 16 : / avx2/.test(flags) ? 8 : 4;
  const n = cpus().length;
  const gflops = (n * mhz * 1e6 * lanes * 2 * 2) / 1e9;
  return { gflops, how: `${n} cores × ${(mhz / 1000).toFixed(2)} GHz × ${lanes} f32 lanes × 2 (FMA) × 2 ports` };
}
