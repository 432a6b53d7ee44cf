// The CUDA half of `npm test`: the CUDA test files on the CUDA emulator (native/cuda-emu), once per architecture the
// emulator's modules are compiled as, so CI runs each architecture's code paths without a GPU:
//   sm_90  aha_cuda_emu.node        Hopper: bf16 and f16 tensor cores, PDL, 227 KiB of shared memory a block
//   sm_80  aha_cuda_emu_sm80.node   Ampere (A100): no PDL, 163 KiB
//   sm_86  the sm_80 module on a device of compute capability 8.6 (AHA_EMU_CC=86): RTX 30/40 and L4's 99 KiB, where
//          attention's WMMA tiles give way to mma.sync
//   sm_75  aha_cuda_emu_sm75.node   Turing (T4): f16 only (bf16 weights kept as f16, mma.sync as m16n8k8), 64 KiB
// sm_90 runs every file. The emulator is slow (every file takes ~4.5 minutes on 2 cores), so the others run a sample:
// the files and tests whose code differs by architecture (SAMPLE), and one more file drawn from ROTATION by a seed:
// AHA_EMU_SEED, else one made from the commit (git HEAD), so a commit always draws the same and commits rotate
// through the pool; the seed is printed first. AHA_EMU_FULL=1 runs every file on every architecture (what a change
// to the kernels or a release should pass; bench/results/25-gpu-archs.md records the runs by architecture). AHA_EMU_ARCH=sm_75
// (a comma list) runs those architectures only.
//   node --import tsx scripts/test-cuda-emu.ts        (npm run test:cuda-emu)
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));
const release = join(root, "native", "build", "Release");

/** every file that runs on CUDA */
const ALL = ["cuda-ops", "models", "grpo-loss", "grpo-variants", "generate", "decode-step", "flat-params", "train-graph", "gemm-inputs", "kv-cache", "bf16-mode",
  "tensor-core-attention", "fused-layers", "gpu-arch", "quant4", "qlora", "offload", "long-context", "serve-scheduler"];
/** what differs by architecture: the 16-bit mode on the fixtures, the tensor-core kernels, the device's choices, the
 *  4-bit bases (their products in the device's 16-bit type) (files, and the tests of cuda-ops.test.ts matching ops) */
interface Sample { files: string[]; ops: string }
const SAMPLE: Sample = { files: ["bf16-mode", "tensor-core-attention", "gpu-arch", "quant4", "qlora"], ops: "tensor cores|gemm with|skinny|profile" };
/** the rest, light enough for one of them to join each sample (models, generate and the rest of cuda-ops: AHA_EMU_FULL) */
const ROTATION = ["decode-step", "fused-layers", "kv-cache", "gemm-inputs", "grpo-loss", "grpo-variants", "flat-params", "train-graph", "offload", "long-context"];

/** sample: what runs where not every file does (rotate: one file of ROTATION joins it) */
interface Arch { name: string; module: string; env?: Record<string, string>; full?: boolean; sample?: Sample; rotate?: boolean }
const ARCHS: Arch[] = [
  { name: "sm_90", module: "aha_cuda_emu.node", full: true },
  { name: "sm_80", module: "aha_cuda_emu_sm80.node", sample: SAMPLE, rotate: true },
  // (only attention's kernels differ from sm_80's here)
  { name: "sm_86", module: "aha_cuda_emu_sm80.node", env: { AHA_EMU_CC: "86" }, sample: { files: ["tensor-core-attention", "gpu-arch"], ops: "tensor cores" } },
  { name: "sm_75", module: "aha_cuda_emu_sm75.node", sample: SAMPLE, rotate: true },
];

function commitSeed(): number {
  const r = spawnSync("git", ["rev-parse", "HEAD"], { cwd: root, encoding: "utf8" });
  return r.status === 0 ? parseInt(r.stdout.trim().slice(0, 8), 16) : 0;
}
const seed = process.env.AHA_EMU_SEED ? Number(process.env.AHA_EMU_SEED) : commitSeed();
const full = process.env.AHA_EMU_FULL === "1";
/** a file of ROTATION for this architecture, from the seed */
function drawn(arch: string): string {
  const h = createHash("sha256").update(`${seed}:${arch}`).digest();
  return ROTATION[h.readUInt32LE(0) % ROTATION.length];
}

/** node --test over files (and a name pattern) with the emulator module of `arch`; returns whether it passed */
function run(arch: Arch, files: string[], pattern?: string): boolean {
  const args = ["--import", "tsx", "--test", "--test-concurrency=2", ...(pattern ? ["--test-name-pattern", pattern] : []), ...files.map((f) => `test/${f}.test.ts`)];
  console.log(`\n# CUDA emulator as ${arch.name}: ${files.join(", ")}${pattern ? ` (tests matching /${pattern}/)` : ""}`);
  const r = spawnSync(process.execPath, args, {
    cwd: root, stdio: "inherit",
    env: { ...process.env, AHA_POISON: "1", AHA_TEST_DEVICES: "cuda", AHA_QUIET: "1", AHA_CUDA_ADDON: join(release, arch.module), ...arch.env },
  });
  return r.status === 0;
}

console.log(`# CUDA emulator runs: ${full ? "every file on every architecture (AHA_EMU_FULL=1)" : `every file on sm_90, a sample elsewhere (seed ${seed}: AHA_EMU_SEED=${seed} repeats it)`}`);
const only = process.env.AHA_EMU_ARCH?.split(",").map((a) => a.trim());
let ok = true;
for (const arch of ARCHS.filter((a) => !only || only.includes(a.name))) {
  if (!existsSync(join(release, arch.module))) {
    // (native/CMakeLists.txt builds the emulator on x86-64 Linux only; AHA_EMU_ARCHS may leave an architecture out)
    console.log(`\n# CUDA emulator as ${arch.name}: ${arch.module} not built, skipped`);
    continue;
  }
  if (full || arch.full || !arch.sample) ok = run(arch, ALL) && ok;
  else {
    ok = run(arch, [...arch.sample.files, ...(arch.rotate ? [drawn(arch.name)] : [])]) && ok;
    ok = run(arch, ["cuda-ops"], arch.sample.ops) && ok;
  }
}
process.exit(ok ? 0 : 1);
