// The npm package as a new user gets it. `npm pack` (its prepack prebuilds the CPU module for this CPU's level only,
// AHA_PREBUILD_LEVELS, to keep the suite short; `npm pack` alone builds every level), then a fresh project made by
// `npm init -y` ("type": "commonjs"), with a PATH of links to node, npm, npx and sh only (no cmake, no C/C++
// compiler, no nvcc), installs the tarball offline and:
//   - `node app.mjs` (import) and `node app.cjs` (require) each train 2 GRPO steps on a fixture model with a
//     `./rewards.ts#brevity` reward that sits in this CommonJS project;
//   - `npx tsc --noEmit` passes under `tsc --init`'s settings on app.ts (import = require) and app.mts (import);
//   - `npx aha --version` and `npx aha train --help` work, and nothing is compiled (no native/build appears);
//   - `aha generate` gives the checkout's tokens, `aha serve` answers with them, and `aha dashboard` shows the run
//     app.mjs wrote (uPlot inlined from the package's dependency);
//   - back in the checkout, `prepare` (which npm runs when the first `npx aha` there links the package) is a no-op;
//   - the module matrix (test/module-matrix.ts) loads in a plain node process (no tsx hooks of the suite's), and
//     code_tests starts its sandbox workers (separate entry files) from both builds;
//   - with the prebuilt modules taken away, loading says it builds from source and fails naming what to install.
// Offline: npm 11 resolves a new dependency with full packuments, which the cache of a lockfile install (CI's
// `npm install`) does not hold, so the project's package-lock.json is seeded with this repository's locked production
// packages (and typescript): `npm install --offline` then takes every tarball from the npm cache.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { prebuildNames } from "../src/engine/addon.ts";
import { loadTokenizer } from "../src/tokenize/index.ts";
import { fixtureModels } from "./fixtures.ts";
import { writeModuleMatrix } from "./module-matrix.ts";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const tmp = mkdtempSync(join(tmpdir(), "aha-package-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const tools = join(tmp, "tools"), app = join(tmp, "app");
const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;
const model = fixtureModels()[0];
let tarball = "", installLog = "";

function sh(cmd: string, args: string[], opts: SpawnSyncOptions & { ok?: boolean } = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd: app, env: { ...process.env, PATH: tools, NODE_OPTIONS: "" }, ...opts });
  if (opts.ok !== false) assert.equal(r.status, 0, `${cmd} ${args.join(" ")}: ${r.error?.message ?? ""}\n${r.stdout}\n${r.stderr}`);
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** app/package-lock.json: the repository lock's production packages and `extra` (dev ones), with their tarballs' integrity. */
function seedLock(extra: string[]) {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8"));
  const pj = JSON.parse(readFileSync(join(app, "package.json"), "utf8"));
  const packages: Record<string, unknown> = { "": { name: pj.name, version: pj.version, devDependencies: pj.devDependencies } };
  for (const [k, v] of Object.entries(lock.packages as Record<string, { dev?: boolean; devOptional?: boolean }>)) {
    if (!k.startsWith("node_modules/") || ((v.dev || v.devOptional) && !extra.includes(k))) continue;
    const { dev: _d, devOptional: _o, ...entry } = v;
    packages[k] = entry;
  }
  writeFileSync(join(app, "package-lock.json"), JSON.stringify({ name: pj.name, version: pj.version, lockfileVersion: 3, requires: true, packages }, null, 2));
}

before(() => {
  // the prebuild for this CPU's level (x64 Linux), the tarball
  const level = /^aha_cpu\.(.+)\.node$/.exec(prebuildNames("aha_cpu")[0] ?? "")?.[1];
  const pack = spawnSync("npm", ["pack", "--json", "--pack-destination", tmp], {
    cwd: ROOT, encoding: "utf8", env: { ...process.env, ...(level ? { AHA_PREBUILD_LEVELS: level } : {}) },
  });
  assert.equal(pack.status, 0, pack.stderr);
  tarball = join(tmp, JSON.parse(pack.stdout)[0].filename);
  // a PATH with node, npm, npx and sh only
  mkdirSync(tools);
  for (const t of ["node", "npm", "npx", "sh"]) {
    const where = spawnSync("sh", ["-c", `command -v ${t}`], { encoding: "utf8" }).stdout.trim();
    symlinkSync(realpathSync(t === "node" ? process.execPath : where), join(tools, t));
  }
  mkdirSync(app);
  sh("npm", ["init", "-y"]);
  sh("npm", ["pkg", "set", `devDependencies.typescript=${JSON.parse(readFileSync(join(ROOT, "node_modules", "typescript", "package.json"), "utf8")).version}`]);
  seedLock(["node_modules/typescript"]);
  installLog = sh("npm", ["install", "--offline", "--no-audit", "--no-fund", tarball]).stderr;
  writeFileSync(join(app, "rewards.ts"), "export const brevity = ({ completions }: { completions: string[] }): number[] => completions.map((c) => -c.length);\n");
});

test("the tarball is lean and carries the built package and a prebuilt CPU module", () => {
  const files = spawnSync("tar", ["tzf", tarball], { encoding: "utf8" }).stdout.split("\n").map((f) => f.replace(/^package\//, ""));
  for (const f of ["bin/aha.js", "dist/index.js", "dist/index.d.ts", "dist/index.js.map", "dist/cjs/index.cjs", "dist/cjs/index.d.cts",
    "dist/rewards/worker-entry.mjs", "dist/rewards/sandbox/js-worker.js", "dist/dashboard/worker.js", "assets/tiny-arith/config.json", "native/CMakeLists.txt"])
    assert.ok(files.includes(f), `${f} missing`);
  assert.ok(files.some((f) => /^prebuilds\/[^/]+\/aha_cpu(\.[^/]+)?\.node$/.test(f)), "no prebuilt CPU module");
  for (const f of files) assert.doesNotMatch(f, /^(test|datasets|bench|native\/build|native\/cuda-emu|scripts)\/|\.build-stamp$/, `${f} should not be packed`);
});

test("after the pack, `prepare` (what npm runs when the first `npx aha` in a checkout links it) rebuilds nothing", () => {
  const stamps = ["dist/.build-stamp", "native/build/.build-stamp"].map((f) => join(ROOT, f));
  const before = stamps.map((f) => statSync(f).mtimeMs);
  const r = spawnSync("npm", ["run", "prepare"], { cwd: ROOT, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr + r.stdout, /aha: build/);
  assert.deepEqual(stamps.map((f) => statSync(f).mtimeMs), before);
});

test("install: no compiler on the PATH, offline, and no install script of aha's runs", () => {
  for (const t of ["cmake", "cc", "c++", "gcc", "g++", "clang", "clang++", "nvcc", "make", "ninja"])
    assert.notEqual(sh("sh", ["-c", `command -v ${t}`], { ok: false }).status, 0, `${t} is on the hidden PATH`);
  assert.equal(JSON.parse(readFileSync(join(app, "package.json"), "utf8")).type, "commonjs");
  // npm 11 lists `prepare` for any package from a file or git source, though it never runs it for a tarball (the
  // tarball has no scripts/build.mjs to run); aha has no install, preinstall or postinstall script
  assert.doesNotMatch(installLog, /aha@[^\n]*(preinstall|install|postinstall):/);
  assert.ok(existsSync(join(app, "node_modules", "aha", "dist", "index.js")));
  assert.ok(!existsSync(join(app, "node_modules", "aha", "native", "build")));
});

const appCode = (load: string) => `${load}
const main = async () => {
  const t = await GRPOTrainer.create({ model: ${JSON.stringify(model)}, maxSteps: 2, numGenerations: 4, perDeviceTrainBatchSize: 8,
    maxCompletionLength: 8, learningRate: 1e-2, outputDir: process.argv[2], rewardFuncs: ["./rewards.ts#brevity"] },
    { rows: ["Say hi", "Count to three", "Name a colour", "Spell cat"].map((prompt) => ({ prompt })), quiet: true });
  const m = await t.train();
  console.log(JSON.stringify(m.map((s) => ({ reward: s["rewards/brevity/mean"], grad: s.grad_norm }))));
};
main().catch((e) => { console.error(e); process.exit(1); });
`;

for (const [file, load] of [["app.mjs", `import { GRPOTrainer } from "aha";`], ["app.cjs", `const { GRPOTrainer } = require("aha");`]]) {
  test(`node ${file} trains 2 GRPO steps with ./rewards.ts#brevity in this CommonJS project`, () => {
    writeFileSync(join(app, file), appCode(load));
    const out = join(app, "runs", file);
    const r = sh("node", [file, out]);
    const steps = JSON.parse(r.stdout.trim().split("\n").pop()!) as { reward: number; grad: number }[];
    assert.equal(steps.length, 2);
    for (const s of steps) assert.ok(Number.isFinite(s.reward) && s.reward < 0, `the reward ran: ${JSON.stringify(s)}`);
    assert.ok(steps.some((s) => s.grad > 0), "gradients flowed");
    assert.equal(readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").length, 2);
    assert.ok(existsSync(join(out, "final", "adapter_model.safetensors")));
    assert.ok(!existsSync(join(app, "node_modules", "aha", "native", "build")), "nothing was compiled");
  });
}

test("npx tsc --noEmit passes under tsc --init's settings: app.ts (require) and app.mts (import)", () => {
  const dir = join(app, "ts");
  mkdirSync(dir);
  sh("npx", ["tsc", "--init"], { cwd: dir });
  writeFileSync(join(dir, "app.ts"), `// CommonJS (the project's type): under verbatimModuleSyntax the import is \`import … = require(…)\`
import aha = require("aha");
const config: aha.GRPOConfigInput = { model: "./model", maxSteps: 2, numGenerations: 2, rewardFuncs: ["./rewards.ts#brevity"] };
const brevity: aha.NamedReward = { name: "brevity", fn: ({ completions }) => completions.map((c) => -c.length) };
async function main(): Promise<number> {
  const trainer = await aha.GRPOTrainer.create(config, { rewardFuncs: [brevity, aha.rewards.gsm8k.correctness] });
  return (await trainer.train()).length;
}
main().then((n) => console.log(n), (e: unknown) => console.error(e));
`);
  writeFileSync(join(dir, "app.mts"), `import { GRPOTrainer, rewards, type GRPOConfigInput, type NamedReward } from "aha";
const config: GRPOConfigInput = { model: "./model", maxSteps: 2, numGenerations: 2 };
const brevity: NamedReward = { name: "brevity", fn: ({ completions }) => completions.map((c) => -c.length) };
const trainer = await GRPOTrainer.create(config, { rewardFuncs: [brevity, rewards.gsm8k.correctness] });
export const steps: number = (await trainer.train()).length;
`);
  sh("npx", ["tsc", "--noEmit"], { cwd: dir });
  // and the types are real: a misspelt option is an error
  writeFileSync(join(dir, "bad.mts"), `import type { GRPOConfigInput } from "aha";\nexport const c: GRPOConfigInput = { modle: "x" };\n`);
  const r = sh("npx", ["tsc", "--noEmit"], { cwd: dir, ok: false });
  assert.notEqual(r.status, 0);
  assert.match(r.stdout, /bad\.mts.*'modle' does not exist in type/);
  rmSync(join(dir, "bad.mts"));
});

test("npx aha --version and npx aha train --help", () => {
  assert.equal(sh("npx", ["aha", "--version"]).stdout.trim(), version);
  const help = sh("npx", ["aha", "train", "--help"]);
  assert.match(help.stdout, /Usage: aha train \[options\] \[config\]/);
  assert.equal(help.stderr, "");
});

test("the module matrix loads in a plain node process, through the installed package", () => {
  const cases = writeModuleMatrix(join(tmp, "matrix")); // outside the app, whose package.json would be the "none" folder's
  writeFileSync(join(app, "matrix.cjs"), `const { rewards } = require("aha");
const cases = ${JSON.stringify(cases)};
(async () => {
  const out = [];
  for (const c of cases) out.push((await (await rewards.resolveReward(c.spec)).fn({ prompts: ["p"], completions: ["c"], completionIds: [[1]] }))[0]);
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
`);
  const got = JSON.parse(sh("node", ["matrix.cjs"]).stdout) as number[];
  assert.deepEqual(got, cases.map((c) => c.want));
});

test("code_tests runs its sandbox workers from the installed package, by import and by require", () => {
  // the workers are separate entry files (dist/rewards/sandbox/*.js): found from dist/ and from the CommonJS bundle
  const body = `const r = await rewards.resolveReward({ type: "code_tests", language: "javascript", tests_column: "tests" });
  const add = (op) => "\\u0060\\u0060\\u0060js\\nfunction add(a, b) { return a " + op + " b; }\\n\\u0060\\u0060\\u0060";
  const got = await r.fn({ prompts: ["p", "p"], completions: [add("+"), add("-")], completionIds: [[1], [2]], tests: ["assert.equal(add(1, 2), 3)", "assert.equal(add(1, 2), 3)"] });
  await rewards.closeSandboxes();
  console.log(JSON.stringify(got));`;
  writeFileSync(join(app, "sandbox.mjs"), `import { rewards } from "aha";
${body}
`);
  writeFileSync(join(app, "sandbox.cjs"), `const { rewards } = require("aha");
(async () => {
${body}
})().catch((e) => { console.error(e); process.exit(1); });
`);
  for (const f of ["sandbox.mjs", "sandbox.cjs"]) assert.deepEqual(JSON.parse(sh("node", [f]).stdout.trim().split("\n").pop()!), [1, 0], f);
});

/** Start a long-running `aha` command of the installed package; resolves with the URL its first stdout line names. */
async function startAha(args: string[]): Promise<{ url: string; child: ChildProcess; err: () => string }> {
  const child = spawn(join(tools, "node"), [join(app, "node_modules", ".bin", "aha"), ...args], { cwd: app, env: { ...process.env, PATH: tools, NODE_OPTIONS: "" }, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => { err += d; });
  const url = await new Promise<string>((ok, fail) => {
    let out = "";
    child.stdout!.on("data", (d) => { out += d; const m = /(http:\/\/\S+)/.exec(out); if (m) ok(m[1]); });
    child.on("exit", (c) => fail(new Error(`aha ${args[0]} exited ${c}: ${err}`)));
  });
  return { url, child, err: () => err };
}

test("aha generate, serve and dashboard run from the installed package (the same tokens as the checkout's)", async () => {
  const args = ["generate", "--model", model, "--prompt-ids", "1,2,3", "--max-tokens", "6", "--temperature", "0", "--json"];
  const installed = JSON.parse(sh("npx", ["aha", ...args]).stdout.trim()) as { token_ids: number[] };
  const checkout = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "src", "cli", "main.ts"), ...args], { cwd: ROOT, encoding: "utf8" });
  assert.equal(checkout.status, 0, checkout.stderr);
  assert.deepEqual(installed, JSON.parse(checkout.stdout.trim()), "the built package and the sources generate alike");
  assert.ok(installed.token_ids.length > 0);

  const srv = await startAha(["serve", "--model", model, "--port", "0", "--quiet"]);
  try {
    const r = await fetch(`${srv.url}/completions`, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: basename(model), prompt: [1, 2, 3], max_tokens: 6, temperature: 0 }) });
    assert.equal(r.status, 200, srv.err());
    const text = loadTokenizer(model).decode(installed.token_ids, { skipSpecialTokens: true });
    assert.equal(((await r.json()) as { choices: { text: string }[] }).choices[0].text, text, "the server samples what aha generate does");
  } finally {
    srv.child.kill("SIGTERM");
  }

  // the run folder app.mjs wrote, in the dashboard: its page carries uPlot (from the package's dependency) inlined
  const dash = await startAha(["dashboard", join(app, "runs", "app.mjs"), "--port", "0"]);
  try {
    const page = await (await fetch(dash.url)).text();
    assert.match(page, /uPlot/);
    assert.match(page, /Newest completions/);
    const run = (await (await fetch(`${dash.url}api/run/0`)).json()) as { rows: unknown[]; config: unknown };
    assert.equal(run.rows.length, 2, "both steps of app.mjs's run");
    assert.ok(run.config, "run_config.json read");
  } finally {
    dash.child.kill("SIGTERM");
  }
});

test("with no prebuilt module for this machine, aha says it builds from source and names what is missing", () => {
  const pre = join(app, "node_modules", "aha", "prebuilds");
  renameSync(pre, `${pre}.off`);
  try {
    const r = sh("node", ["app.cjs", join(app, "runs", "nobuild")], { ok: false });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /no prebuilt aha_cpu\.node for [\w-]+ \(this package has: no prebuilds folder\); building it from source once \(cmake-js; needs cmake and a C\+\+17 compiler\)/);
    assert.match(r.stderr, /building it from source failed .*Install cmake and a C\+\+17 compiler/);
  } finally {
    renameSync(`${pre}.off`, pre);
  }
});
