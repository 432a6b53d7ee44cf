// Finds and loads aha's native modules (aha_cpu.node, aha_cuda.node).
// Is: the search order, the same for both modules (AHA_CPU_ADDON / AHA_CUDA_ADDON name a file instead):
//   1. native/build/Release/<name>.node — built here from source (a checkout's `npm install`, or step 3 below);
//      tuned for this machine's CPU (-march=native), so it wins over a prebuilt one;
//   2. prebuilds/<platform>-<arch>/<name>[.<level>].node — shipped in the npm package (prebuildify's folder layout;
//      made by `node scripts/build.mjs prebuilds` at pack time). On x64 the CPU module comes in x86-64 micro-
//      architecture levels (v4: AVX-512, v3: AVX2 + FMA, baseline) and the best one this CPU runs is taken;
//   3. for the CPU module only: a build from source into native/build (cmake-js, as a checkout's `npm install` does),
//      saying so on stderr, where no prebuilt module matches this platform. It needs cmake and a C++17 compiler.
// Is not: node-gyp-build (which assumes one module per package, and knows no CPU levels) or a downloader.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { packageRoot } from "../package.ts";

export type AddonName = "aha_cpu" | "aha_cuda";

/** x86-64 micro-architecture levels with a prebuilt CPU module, best first, and the /proc/cpuinfo flags each needs. */
export const X64_LEVELS: { level: string; flags: string[] }[] = [
  { level: "x86-64-v4", flags: ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma"] },
  { level: "x86-64-v3", flags: ["avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"] },
  { level: "x86-64", flags: [] },
];

/** The folder of this platform's prebuilt modules. */
export function prebuildDir(): string {
  return join(packageRoot(), "prebuilds", `${process.platform}-${process.arch}`);
}

/** File names a prebuilt module may have here, best first: one per CPU level on x64 Linux, else one. */
export function prebuildNames(name: AddonName): string[] {
  if (name === "aha_cpu" && process.platform === "linux" && process.arch === "x64") {
    const flags = cpuFlags();
    return X64_LEVELS.filter((l) => l.flags.every((f) => flags.has(f))).map((l) => `${name}.${l.level}.node`);
  }
  return [`${name}.node`];
}

function cpuFlags(): Set<string> {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8").split("\n").find((l) => l.startsWith("flags"));
    return new Set(line ? line.slice(line.indexOf(":") + 1).trim().split(/\s+/) : []);
  } catch {
    return new Set();
  }
}

/** The module file the search order picks, or null when there is none (nothing is built here). */
export function findAddon(name: AddonName): string | null {
  // AHA_CPU_ADDON: another build of the CPU module (e.g. a prebuilt level, to compare); a relative path is taken
  // from the working directory. (AHA_CUDA_ADDON is read by engine/cuda.ts.)
  if (name === "aha_cpu" && process.env.AHA_CPU_ADDON) return resolve(process.env.AHA_CPU_ADDON);
  const built = join(packageRoot(), "native", "build", "Release", `${name}.node`);
  if (existsSync(built)) return built;
  for (const f of prebuildNames(name)) if (existsSync(join(prebuildDir(), f))) return join(prebuildDir(), f);
  return null;
}

/** require() a native module by path. */
export function requireAddon<T>(path: string): T {
  return createRequire(import.meta.url)(path) as T;
}

/**
 * Build the native modules from source into native/build (cmake-js, the same command as a checkout's install; no CUDA
 * emulator), with its output on stderr. Throws with what to install when it fails.
 */
export function buildFromSource(why: string): void {
  const root = packageRoot();
  const req = createRequire(join(root, "package.json"));
  let cmakeJs: string;
  try {
    cmakeJs = join(req.resolve("cmake-js/package.json"), "..", "bin", "cmake-js");
  } catch {
    throw new Error(`aha: ${why}, and cmake-js (needed to build it from source) is not installed`);
  }
  const cmd = `${process.execPath} ${cmakeJs} build --directory ${join(root, "native")} --out ${join(root, "native", "build")}`;
  process.stderr.write(`aha: ${why}; building it from source once (cmake-js; needs cmake and a C++17 compiler)…\n`);
  const r = spawnSync(process.execPath, [cmakeJs, "build", "--directory", join(root, "native"), "--out", join(root, "native", "build")], {
    cwd: root, stdio: ["ignore", process.stderr, process.stderr], env: { ...process.env, AHA_NO_CUDA_EMU: "1" },
  });
  if (r.status !== 0)
    throw new Error(`aha: ${why}, and building it from source failed (${r.error?.message ?? `exit ${r.status}`}). ` +
      `Install cmake and a C++17 compiler (g++ or clang++), then run: ${cmd}`);
}

/** Why no CPU module was found, for messages: what this package's prebuilds folder holds. */
export function noPrebuildReason(name: AddonName): string {
  const dir = prebuildDir();
  const have = existsSync(join(packageRoot(), "prebuilds")) ? readdirSync(join(packageRoot(), "prebuilds")).join(", ") || "nothing" : "no prebuilds folder";
  return `no prebuilt ${name}.node for ${process.platform}-${process.arch}${existsSync(dir) ? " and this CPU" : ""} (this package has: ${have})`;
}
