// Cards by the names users give them (`aha train --dry-run --gpu t4`), with the memory their CUDA driver reports
// (nvidia-smi's total, in MiB) and their compute capability. A small table, not a device query: it answers "will this
// fit on a T4" on a machine that has no T4. (Other fields, e.g. SM counts, can join as something needs them.)
export interface GpuSpec {
  /** the card's name */
  name: string;
  /** device memory as the driver reports it, bytes */
  memory: number;
  /** compute capability, e.g. 75 for sm_75 */
  cc: number;
}

const MiB = 2 ** 20;
export const GPUS: Record<string, GpuSpec> = {
  t4: { name: "NVIDIA T4 (16 GB)", memory: 15360 * MiB, cc: 75 },
  "a100-40": { name: "NVIDIA A100 40GB", memory: 40960 * MiB, cc: 80 },
  "a100-80": { name: "NVIDIA A100 80GB", memory: 81920 * MiB, cc: 80 },
  "4090": { name: "NVIDIA GeForce RTX 4090 (24 GB)", memory: 24564 * MiB, cc: 89 },
  "3090": { name: "NVIDIA GeForce RTX 3090 (24 GB)", memory: 24576 * MiB, cc: 86 },
  l4: { name: "NVIDIA L4 (24 GB)", memory: 23034 * MiB, cc: 89 },
  h100: { name: "NVIDIA H100 80GB HBM3", memory: 81559 * MiB, cc: 90 },
  h200: { name: "NVIDIA H200 (141 GB)", memory: 143771 * MiB, cc: 90 },
};

/** The card named `name` (case and a leading "rtx-"/"nvidia-" ignored), with an error listing the known names. */
export function gpuByName(name: string): GpuSpec {
  const key = name.toLowerCase().replace(/^(nvidia[- ]?)?(rtx[- ]?)?/, "");
  const g = GPUS[key];
  if (!g) throw new Error(`--gpu: unknown card '${name}' (known: ${Object.keys(GPUS).join(", ")})`);
  return g;
}

/** A memory size as users write it: "24", "24GiB", "24 GB", "15360MiB", "16g" (a bare number is GiB). Bytes. */
export function parseMemorySize(s: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?)(b?)\s*$/i.exec(s);
  if (!m) throw new Error(`'${s}' is not a memory size (e.g. 24GiB, 16GB, 15360MiB)`);
  const unit = m[2].toLowerCase() || "g";
  const base = m[3] || !m[4] ? 1024 : 1000; // "GB" is 10^9; "GiB", "G" and a bare number are 2^30
  return Math.round(Number(m[1]) * base ** " kmgt".indexOf(unit));
}
