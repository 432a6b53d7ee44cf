// Finite-value checks for weights and what is derived from them: a NaN or an infinity in a file is refused when it is
// read and never written, with the tensor's name.
// Is: plain loops over host arrays (float32, or the 16-bit words of bf16 / f16, whose exponent bits tell).
// Is not: a device-side check; training's guard reads a loss and a gradient norm, which are already on the host.

export type FloatKind = "f32" | "bf16" | "f16";

const EXP = { bf16: 0x7f80, f16: 0x7c00 } as const;
const MANT = { bf16: 0x7f, f16: 0x3ff } as const;

/** Index of the first NaN or ±Infinity in `data` (16-bit words read as `kind`), or -1. */
export function firstNonFinite(data: ArrayLike<number>, kind: FloatKind = "f32"): number {
  if (kind === "f32") {
    for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return i;
    return -1;
  }
  const e = EXP[kind];
  for (let i = 0; i < data.length; i++) if ((data[i] & e) === e) return i;
  return -1;
}

/** Throw `<what>: <value> at index i (n of N values are not finite); <doing>` unless every value is finite. */
export function assertFinite(what: string, data: ArrayLike<number>, doing: string, kind: FloatKind = "f32"): void {
  const i = firstNonFinite(data, kind);
  if (i < 0) return;
  const bad = (x: number) => (kind === "f32" ? !Number.isFinite(x) : (x & EXP[kind]) === EXP[kind]);
  let n = 0;
  for (let j = i; j < data.length; j++) if (bad(data[j])) n++;
  const w = data[i];
  const v = kind === "f32" ? w : w & MANT[kind] ? NaN : w & 0x8000 ? -Infinity : Infinity;
  throw new Error(`${what}: ${v} at index ${i} (${n} of ${data.length} values are not finite); ${doing}`);
}
