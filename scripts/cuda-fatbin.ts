// Lists what a built CUDA module (native/build/Release/aha_cuda.node) carries for each GPU architecture: the machine
// code (ELF cubins, per sm_XX) and the PTX of each of its fat binaries (one per .cu file), with their sizes. The test
// suite (test/gpu-arch.test.ts) checks with it that the module holds code for every architecture it is built for;
// bench/fat-build.sh reports the sizes.
// Why by hand: cuobjdump (which lists the same) is not part of every CUDA toolkit install (not of this one), and the
// container format is small: a 16-byte header (magic 0xBA55ED50, version, header size, payload size) and entries of
// { kind (1 PTX, 2 ELF) u16, u16, header size u32, payload size u64, ..., architecture u32 at byte 28 }.
// Not a disassembler: it reads the headers only (a compressed payload is counted at its stored size).
//   node --import tsx scripts/cuda-fatbin.ts native/build/Release/aha_cuda.node
import { readFileSync } from "node:fs";

export interface FatEntry { kind: "elf" | "ptx"; arch: number; bytes: number }
/** one fat binary (a .cu file's device code) */
export interface FatBinary { offset: number; entries: FatEntry[] }

const MAGIC = 0xba55ed50;

/** Every fat binary in the file, with its entries; throws naming the file where a header is inconsistent. */
export function fatBinaries(path: string): FatBinary[] {
  const b = readFileSync(path), out: FatBinary[] = [];
  for (let i = 0; i + 16 <= b.length; i += 8) {
    if (b.readUInt32LE(i) !== MAGIC) continue;
    const headerSize = b.readUInt16LE(i + 6), size = Number(b.readBigUInt64LE(i + 8)), end = i + headerSize + size;
    if (end > b.length) throw new Error(`${path}: fat binary at ${i} runs past the end of the file`);
    const entries: FatEntry[] = [];
    for (let p = i + headerSize; p < end;) {
      const kind = b.readUInt16LE(p), eh = b.readUInt32LE(p + 4), bytes = Number(b.readBigUInt64LE(p + 8)), arch = b.readUInt32LE(p + 28);
      if (kind !== 1 && kind !== 2) throw new Error(`${path}: fat binary at ${i}: entry at ${p} of unknown kind ${kind}`);
      entries.push({ kind: kind === 1 ? "ptx" : "elf", arch, bytes });
      p += eh + bytes;
    }
    out.push({ offset: i, entries });
    i = Math.ceil(end / 8) * 8 - 8;  // (the next container starts after this one, 8-byte aligned)
  }
  return out;
}

/** The architectures with machine code (elf) and with PTX in every fat binary of the file, and bytes by architecture. */
export function fatSummary(path: string): { elf: number[]; ptx: number[]; bytes: Map<string, number>; binaries: number } {
  const bins = fatBinaries(path);
  const every = (kind: "elf" | "ptx") => {
    const sets = bins.map((f) => new Set(f.entries.filter((e) => e.kind === kind).map((e) => e.arch)));
    return sets.length ? [...sets[0]].filter((a) => sets.every((s) => s.has(a))).sort((x, y) => x - y) : [];
  };
  const bytes = new Map<string, number>();
  for (const f of bins) for (const e of f.entries) bytes.set(`${e.kind} sm_${e.arch}`, (bytes.get(`${e.kind} sm_${e.arch}`) ?? 0) + e.bytes);
  return { elf: every("elf"), ptx: every("ptx"), bytes, binaries: bins.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = process.argv[2] ?? "native/build/Release/aha_cuda.node";
  const s = fatSummary(path);
  console.log(`${path}: ${s.binaries} fat binaries; machine code for ${s.elf.map((a) => `sm_${a}`).join(", ")}; PTX for ${s.ptx.map((a) => `compute_${a}`).join(", ")}`);
  for (const [k, v] of s.bytes) console.log(`  ${k.padEnd(12)} ${(v / 2 ** 20).toFixed(2)} MiB`);
}
