// CUDA's default GEMM mode, emulated on the CPU backend (its GEMMs in their exact mode): a GEMM of f32 activations by
// 16-bit weights rounds the activations to bf16 first, one of f32 by f32 that asks for speed (LoRA) runs in TF32; with `ask16` the backend also says so
// (gemmActivationDtype), so the model hands its GEMMs inputs already rounded (rmsNorm16, attention16, glu16).
// The fp16 mode of Turing GPUs (bf16 weights kept as f16, native/cuda's f16 tensor cores) is emulated with
// { to: "f16", tf32: false }: GEMM inputs rounded to f16 instead (by the GEMM itself: the CPU's 16-bit copies are
// bf16 only, so ask16 must be false), and no TF32 (Turing has none: cuBLAS computes such GEMMs in f32).
// Shared by test/gemm-inputs.test.ts and test/bf16-mode.test.ts.
import { defaultBackend, type Backend } from "../src/engine/index.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../src/models/safetensors.ts";

const roundBf16 = (a: Float32Array) => bf16ToF32(f32ToBf16(a));
const roundF16 = (a: Float32Array) => f16ToF32(f32ToF16(a));
/** to TF32 (10 mantissa bits), round to nearest even, as a copy */
function roundTf32(a: Float32Array): Float32Array {
  const out = a.slice(), u = new Uint32Array(out.buffer);
  for (let i = 0; i < u.length; i++) if ((u[i] & 0x7f800000) !== 0x7f800000) u[i] = ((u[i] + 0xfff + ((u[i] >>> 13) & 1)) & ~0x1fff) >>> 0;
  return out;
}

type CpuBe = Backend & { k: Record<string, (...a: unknown[]) => unknown>; getGemmMode(): "bf16" | "exact"; setGemmMode(m: "bf16" | "exact"): void };

/** Run fn with the CPU backend's GEMMs in `mode`, restoring the mode after. */
export function withCpuGemmMode<T>(mode: "bf16" | "exact", fn: () => T): T {
  const be = defaultBackend() as CpuBe;
  if (be.device !== "cpu") throw new Error("withCpuGemmMode: the CPU backend only");
  const before = be.getGemmMode();
  be.setGemmMode(mode);
  try {
    return fn();
  } finally {
    be.setGemmMode(before);
  }
}
/** Run fn with the CPU backend's GEMMs exact (its GEMM mode "exact"). */
export const exactCpu = <T>(fn: () => T): T => withCpuGemmMode("exact", fn);

type Emulation = { to?: "bf16" | "f16"; tf32?: boolean };
/** Run fn so on the CPU backend (its GEMMs exact, the wrapper rounding); returns its result and the conversions made
 *  (inside GEMMs and by convert). */
export function emulated<T>(ask16: boolean, fn: () => T, how: Emulation = {}): [T, { inGemm: number; convert: number }] {
  const be = defaultBackend() as CpuBe;
  if (be.device !== "cpu") throw new Error("emulated: the CPU backend only");
  if (how.to === "f16" && ask16) throw new Error("emulated: the CPU's 16-bit copies are bf16; emulate f16 with ask16 false");
  return exactCpu(() => emulatedExact(be, ask16, fn, how));
}

function emulatedExact<T>(be: CpuBe, ask16: boolean, fn: () => T, { to = "bf16", tf32 = true }: Emulation):
  [T, { inGemm: number; convert: number }] {
  const round16 = to === "f16" ? roundF16 : roundBf16;
  const k = be.k, n = { inGemm: 0, convert: 0 };
  be.k = new Proxy(k, {
    get: (t, name: string) => {
      if (name === "convert") return (...a: unknown[]) => { n.convert++; return t.convert(...a); };
      if (name !== "gemm") return t[name];
      return (...a: unknown[]) => {
        if (a[3] !== 0 && !a[19]) { n.inGemm++; a = [...a]; a[1] = round16(a[1] as Float32Array); }
        // f32 × f32 asking for speed (the LoRA GEMMs of a 16-bit model): TF32 tensor cores, both inputs rounded
        else if (a[3] === 0 && a[18] && !a[19] && tf32) { a = [...a]; a[1] = roundTf32(a[1] as Float32Array); a[2] = roundTf32(a[2] as Float32Array); }
        return t.gemm(...a);
      };
    },
  }) as typeof be.k;
  const own = Object.getOwnPropertyDescriptor(be, "gemmActivationDtype");
  if (ask16) be.gemmActivationDtype = (w) => (w === "f32" ? "f32" : w);
  try {
    return [fn(), n];
  } finally {
    be.k = k;
    if (own) Object.defineProperty(be, "gemmActivationDtype", own);
    else delete be.gemmActivationDtype;
  }
}
