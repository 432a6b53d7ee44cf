#!/usr/bin/env node
// Builds what the package runs, in a checkout: `node scripts/build.mjs [--if-stale] TARGET…`
//   dist       src/ → dist/: tsc (tsconfig.build.json: ESM JavaScript, .d.ts, source maps), then dist/cjs/index.cjs,
//              one CommonJS file bundled from the same sources by esbuild (dependencies stay external), for require();
//              src/'s plain .mjs modules (worker entries) are copied as they are.
//              Built in a temporary folder and renamed over dist/.
//   native     native/ → native/build/Release/*.node (cmake-js; incremental): the CPU module tuned for this CPU, the
//              CUDA module where nvcc is, the CUDA emulator.
//   prebuilds  prebuilds/<platform>-<arch>/: the modules the npm package ships (prebuildify's folder layout), built
//              apart from native/build so they run on any CPU of this architecture: on x64 one CPU module per
//              micro-architecture level (aha_cpu.x86-64-v4.node: AVX-512, …-v3: AVX2 + FMA, …x86-64: baseline; the
//              loader takes the best the CPU runs), elsewhere one (aha_cpu.node); and aha_cuda.node where nvcc is
//              (its host code is built without -march=native, see native/CMakeLists.txt). AHA_PREBUILD_LEVELS=a,b
//              builds only those levels (the suite's package test builds the one this CPU runs).
// --if-stale skips a target whose stamp is newer than every file it is built from (what `prepare` runs, so that
// `npm install` and the first `npx aha` in a checkout rebuild nothing that is up to date).
// Is not: a compiler of users' code, or run in an installed package (the package ships dist/ and prebuilds/).
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));
const args = process.argv.slice(2);
const ifStale = args.includes("--if-stale");
const targets = args.filter((a) => !a.startsWith("--"));
const X64_LEVELS = ["x86-64-v4", "x86-64-v3", "x86-64"];

function run(cmd, argv, env = {}) {
  // stdout goes to stderr: `npm pack --json` prints its JSON on stdout after the lifecycle scripts
  const r = spawnSync(cmd, argv, { cwd: root, stdio: [0, 2, 2], env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${[cmd, ...argv].join(" ")} failed (${r.error?.message ?? `exit ${r.status}`})`);
}

/** newest modification time of the files under these paths (folders walked, native/build* skipped) */
function newest(paths) {
  let t = 0;
  const walk = (p) => {
    if (!existsSync(p)) return;
    const s = statSync(p);
    if (s.isDirectory()) {
      for (const n of readdirSync(p)) if (n !== "build" && n !== "build-prebuild") walk(join(p, n));
    } else t = Math.max(t, s.mtimeMs);
  };
  paths.forEach((p) => walk(join(root, p)));
  return t;
}

function fresh(stamp, inputs) {
  const s = join(root, stamp);
  return ifStale && existsSync(s) && statSync(s).mtimeMs >= newest(inputs);
}

const cmakeJs = (out, extra = [], env = {}) =>
  run(process.execPath, [join(dirname(require.resolve("cmake-js/package.json")), "bin", "cmake-js"), "build", "--directory", "native", "--out", out, ...extra], env);

const DIST_INPUTS = ["src", "tsconfig.json", "tsconfig.build.json", "package.json", "scripts/build.mjs"];

function buildDist() {
  if (fresh("dist/.build-stamp", DIST_INPUTS)) return;
  const tmp = join(root, `dist.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    run(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.build.json", "--outDir", tmp]);
    // plain-JavaScript modules of src/ (worker entries such as rewards/worker-entry.mjs), which tsc does not emit
    for (const rel of readdirSync(join(root, "src"), { recursive: true })) {
      if (rel.endsWith(".mjs")) copyFileSync(join(root, "src", rel), join(tmp, rel));
    }
    // the CommonJS entry: one bundle of src/ (import.meta.url is the bundle's own URL; src/package.ts finds the
    // package root from it), with its types the ESM build's
    require("esbuild").buildSync({
      entryPoints: [join(root, "src", "index.ts")], outfile: join(tmp, "cjs", "index.cjs"), bundle: true, format: "cjs",
      platform: "node", target: "node20", packages: "external", sourcemap: true, logLevel: "warning",
      // import.meta.resolve is only used on the paths taken from the TypeScript sources; defined so that it exists
      define: { "import.meta.url": "__aha_bundle_url", "import.meta.resolve": "__aha_bundle_resolve" },
      banner: { js: `const __aha_bundle_url = require("node:url").pathToFileURL(__filename).href;\n` +
        `const __aha_bundle_resolve = (s) => require("node:url").pathToFileURL(require.resolve(s)).href;` },
    });
    writeFileSync(join(tmp, "cjs", "index.d.cts"), `// The CommonJS entry has the same API as the ESM one.\nexport * from "../index.js";\n`);
    writeFileSync(join(tmp, ".build-stamp"), "");
    rmSync(join(root, "dist"), { recursive: true, force: true });
    renameSync(tmp, join(root, "dist"));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  console.error("aha: built dist/");
}

const NATIVE_INPUTS = ["native", "package.json"];

function buildNative() {
  if (fresh("native/build/.build-stamp", NATIVE_INPUTS)) return;
  console.error("aha: building the native modules (cmake-js, native/build)…");
  cmakeJs("native/build");
  writeFileSync(join(root, "native", "build", ".build-stamp"), "");
}

function hasNvcc() {
  if (process.env.AHA_NO_CUDA !== undefined) return false;
  if (process.env.CUDACXX && existsSync(process.env.CUDACXX)) return true;
  return spawnSync("sh", ["-c", "command -v nvcc"], { stdio: "ignore" }).status === 0;
}

function buildPrebuilds() {
  const plat = `${process.platform}-${process.arch}`;
  const stage = join(root, `prebuilds.tmp-${process.pid}`), tmp = join(stage, plat);
  const x64 = process.platform === "linux" && process.arch === "x64";
  const levels = x64 ? (process.env.AHA_PREBUILD_LEVELS?.split(",") ?? X64_LEVELS) : [""];
  for (const l of levels) if (x64 && !X64_LEVELS.includes(l)) throw new Error(`AHA_PREBUILD_LEVELS: unknown level "${l}" (known: ${X64_LEVELS.join(", ")})`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    for (const level of levels) {
      const dir = join("native", "build-prebuild", level || "generic");
      console.error(`aha: prebuilding the CPU module for ${plat}${level ? ` ${level}` : ""} (${dir})…`);
      cmakeJs(dir, [], { ...(level ? { AHA_MARCH: level } : { AHA_PORTABLE: "1" }), AHA_NO_CUDA: "1", AHA_NO_CUDA_EMU: "1" });
      copyFileSync(join(root, dir, "Release", "aha_cpu.node"), join(tmp, level ? `aha_cpu.${level}.node` : "aha_cpu.node"));
    }
    if (hasNvcc()) {
      buildNative();
      const cuda = join(root, "native", "build", "Release", "aha_cuda.node");
      if (!existsSync(cuda)) throw new Error(`nvcc is here but ${cuda} was not built`);
      copyFileSync(cuda, join(tmp, "aha_cuda.node"));
    } else console.error("aha: no nvcc here: the package will carry no CUDA module");
    rmSync(join(root, "prebuilds"), { recursive: true, force: true });
    renameSync(stage, join(root, "prebuilds"));
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  console.error(`aha: prebuilds/${plat}: ${readdirSync(join(root, "prebuilds", plat)).join(", ")}`);
}

const BUILD = { dist: buildDist, native: buildNative, prebuilds: buildPrebuilds };
if (targets.length === 0 || targets.some((t) => !BUILD[t])) {
  console.error(`usage: node scripts/build.mjs [--if-stale] ${Object.keys(BUILD).join("|")}…`);
  process.exit(2);
}
try {
  for (const t of targets) BUILD[t]();
} catch (e) {
  console.error(`aha: ${e.message}`);
  process.exit(1);
}
