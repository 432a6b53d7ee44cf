// The CPU module builds for arm64: every source of native/cpu (the addon, the drivers and the per-instruction-set
// kernels: NEON, and the scalar set with Advanced SIMD switched off, as native/CMakeLists.txt compiles it there) is
// cross-compiled with Debian's g++-aarch64-linux-gnu and linked into one shared module; the NEON and scalar objects
// must hold real kernels, not the stubs the x86 sets compile to there. A Mac or Graviton user builds from these sources; no arm64 machine runs in CI, so this is the
// check that they still compile. .ci/run installs the cross compiler; without it (a developer's machine) the test is
// skipped and says so.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import pLimit from "p-limit";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CPU = join(ROOT, "native", "cpu");
const CXX = "aarch64-linux-gnu-g++";
const have = spawnSync(CXX, ["--version"]).status === 0;

test("the CPU module cross-compiles and links for arm64 (NEON and the scalar fallback)", { skip: have ? false : `${CXX} not installed (.ci/run installs it)` }, async () => {
  const require = createRequire(import.meta.url);
  const includes = [dirname(require.resolve("node-api-headers/package.json")) + "/include", dirname(require.resolve("node-addon-api/package.json"))];
  const sources = [
    ...readdirSync(CPU).filter((f) => f.endsWith(".cpp")).map((f) => join(CPU, f)),
    ...readdirSync(join(CPU, "isa")).filter((f) => f.endsWith(".cpp")).map((f) => join(CPU, "isa", f)),
  ];
  const out = mkdtempSync(join(tmpdir(), "aha-arm64-"));
  try {
    const compile = async (src: string): Promise<string> => {
      const obj = join(out, src.slice(CPU.length + 1).replace(/\//g, "_") + ".o");
      const flags = src.endsWith("isa_base.cpp") ? ["-march=armv8-a+nosimd"] : [];
      await promisify(execFile)(CXX, ["-std=c++17", "-O3", "-fPIC", "-DNAPI_VERSION=8", "-DNODE_ADDON_API_DISABLE_DEPRECATED", "-DNAPI_DISABLE_CPP_EXCEPTIONS",
        "-fno-math-errno", "-fno-trapping-math", ...flags, ...includes.map((i) => `-I${i}`), "-c", src, "-o", obj])
        .catch((e: { stderr?: string }) => assert.fail(`${src} does not compile for arm64:\n${e.stderr}`));
      return obj;
    };
    const limit = pLimit(availableParallelism()); // (as many compilers at once as there are cores)
    const objects = await Promise.all(sources.map((src) => limit(() => compile(src))));
    const lib = join(out, "aha_cpu.node");
    execFileSync(CXX, ["-shared", "-o", lib, ...objects, "-lpthread"]);
    // both arm64 kernel sets hold real kernels there (the x86 files compile to stubs that return null)
    for (const name of ["isa_neon", "isa_base"]) {
      const symbols = execFileSync("aarch64-linux-gnu-nm", ["-C", "--defined-only", join(out, `isa_${name}.cpp.o`)], { encoding: "utf8" });
      assert.match(symbols, /gemv\(/, `${name}: no matrix-vector kernel in the arm64 build`);
    }
    assert.match(execFileSync("aarch64-linux-gnu-readelf", ["-h", lib], { encoding: "utf8" }), /Machine:\s+AArch64/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
