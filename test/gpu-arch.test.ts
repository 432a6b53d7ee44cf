// The CUDA backend by GPU architecture: the fat module's code for every architecture, the kernels each device's
// shared memory allows, bf16 checkpoints kept as f16 on Turing (range-checked), and the errors for a GPU older than
// Turing or a module without code for the GPU. The CUDA tests run on whichever device (or emulator module, compiled
// as sm_75, sm_80 or sm_90: scripts/test-cuda-emu.ts) AHA_CUDA_ADDON loads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fatSummary } from "../scripts/cuda-fatbin.ts";
import { bf16ToF16 } from "../src/models/weights.ts";
import { bf16ToF32, f16ToF32, f32ToBf16 } from "../src/models/safetensors.ts";
import { cudaBackend, cudaEmulated, cudaInfo } from "../src/engine/cuda.ts";
import { writeRandomModel } from "../bench/random-model.ts";
import { CausalLM } from "../src/models/model.ts";
import { cudaSkip, useDevice } from "./devices.ts";

const root = fileURLToPath(new URL("../", import.meta.url));

test("bf16 → f16: exact inside f16's range, an error naming the tensor beyond it, 0 below it (counted)", () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i), x = bf16ToF32(all);
  const inRange = all.filter((_, i) => Number.isFinite(x[i]) && Math.abs(x[i]) <= 65504);
  const { out, flushed } = bf16ToF16(inRange, "t");
  const back = f16ToF32(out), want = bf16ToF32(inRange);
  let inexact = 0, zeroed = 0;
  for (let i = 0; i < want.length; i++) {
    const a = Math.abs(want[i]);
    if (a >= 2 ** -14) assert.equal(back[i], want[i], `bf16 ${want[i]} is an f16 value`);  // normal f16: bf16's 8 bits fit its 11
    else if (back[i] !== want[i]) { inexact++; if (back[i] === 0 && want[i] !== 0) zeroed++; }
    else if (a > 0) assert.ok(back[i] === want[i]);
  }
  assert.equal(flushed, zeroed, "the values that became 0 are the ones counted");
  assert.ok(zeroed > 0 && inexact >= zeroed, "bf16's tiny values lose bits in f16's subnormals or become 0");
  // Inf and NaN stay what they are; bf16's largest below 65504 (65280) stays itself, its next (65536) is beyond
  const special = f32ToBf16(Float32Array.of(Infinity, -Infinity, NaN, 65280, -65280));
  const s = f16ToF32(bf16ToF16(special, "t").out);
  assert.deepEqual([...s.slice(0, 2)], [Infinity, -Infinity]);
  assert.ok(Number.isNaN(s[2]));
  assert.deepEqual([...s.slice(3)], [65280, -65280]);
  assert.throws(() => bf16ToF16(f32ToBf16(Float32Array.of(65504)), "t"), /1 value\(s\) beyond/, "65504 is 65536 in bf16");
  // beyond the range: an error with the count and the largest value, naming where
  const bad = f32ToBf16(Float32Array.of(1, 1e5, -3e6, 2));
  assert.throws(() => bf16ToF16(bad, "model.safetensors: tensor 'w'"), /model\.safetensors: tensor 'w': 2 value\(s\) beyond fp16's range \(largest \|x\| 2\.998e\+6/);  // (3e6 in bf16)
});

test("the CUDA module carries machine code for every architecture it is built for, and PTX for the newest", (t) => {
  const mod = join(root, "native", "build", "Release", "aha_cuda.node");
  if (!existsSync(mod)) return t.skip(`${mod} not built (no nvcc when npm install ran)`);
  // the default build's list (native/cuda/CMakeLists.txt), with sm_100 and sm_120 where this nvcc has them; or
  // AHA_CUDA_ARCH's numbers where the build was asked for fewer
  let want = [75, 80, 86, 89, 90];
  if (process.env.AHA_CUDA_ARCH) want = [...process.env.AHA_CUDA_ARCH.matchAll(/(\d+)/g)].map((m) => Number(m[1]));
  else {
    let list = "";
    for (const nvcc of ["nvcc", "/usr/local/cuda/bin/nvcc"]) {
      try { list = execFileSync(nvcc, ["--list-gpu-arch"], { encoding: "utf8" }); break; } catch { /* the next; none on a GPU machine that only runs the module */ }
    }
    for (const a of [100, 120]) if (list.includes(`compute_${a}`)) want.push(a);
  }
  const s = fatSummary(mod);
  t.diagnostic(`${s.binaries} fat binaries: machine code for ${s.elf.join(", ")}; PTX for ${s.ptx.join(", ")}`);
  assert.ok(s.binaries >= 9, "one fat binary per .cu file");
  for (const a of want) assert.ok(s.elf.includes(a), `every .cu file has sm_${a} machine code (has ${s.elf})`);
  const newest = Math.max(...s.elf);
  assert.ok(s.ptx.includes(newest), `PTX for the newest, compute_${newest}, which newer GPUs compile (has ${s.ptx})`);
});

test("cuda: the tensor-core attention kernels each device's shared memory allows (T4, A100, RTX 30/40 and L4, H100)", { skip: cudaSkip() }, () => {
  const be = cudaBackend(), KiB = 1024;
  const plans = (smem: number) => [64, 96, 128].map((D) => `${be.attentionPlan(D, false, smem)}/${be.attentionPlan(D, true, smem)}`).join(" ");
  be.setAttentionKernel("wmma");
  try {
    // forward/backward for head dims 64, 96, 128 (native/cuda/attention_tc.cu's table of tile sizes)
    assert.equal(plans(64 * KiB), "mma/mma mma/f32 mma/f32", "sm_75: 64 KiB a block");
    assert.equal(plans(99 * KiB), "wmma/wmma wmma/mma mma/mma", "sm_86/89: 99 KiB");
    assert.equal(plans(163 * KiB), "wmma/wmma wmma/wmma wmma/wmma", "sm_80: 163 KiB");
    assert.equal(plans(227 * KiB), "wmma/wmma wmma/wmma wmma/wmma", "sm_90: 227 KiB");
    assert.equal(be.attentionPlan(80, false), "f32", "head dims other than 64/96/128 stay f32");
    const info = cudaInfo();
    assert.equal(plans(info.smemPerBlock!), [64, 96, 128].map((D) => `${be.attentionPlan(D, false)}/${be.attentionPlan(D, true)}`).join(" "),
      "the device's plan is the one for its shared memory");
    assert.match(info.summary!, new RegExp(`sm_${info.computeCapability}.*${info.smemPerBlock! / KiB} KiB shared memory`), "the start-up line names what it read");
    be.setAttentionKernel("mma");
    assert.equal(plans(64 * KiB), "mma/mma mma/f32 mma/f32", "asking for mma.sync changes nothing where WMMA does not fit");
    assert.equal(plans(227 * KiB), "mma/mma mma/mma mma/mma");
  } finally {
    be.setAttentionKernel("wmma");
  }
});

// a child process loading the same CUDA module as this one (the emulator's, compiled as one architecture) on an
// emulated device of compute capability cc: what cudaInfo() says
function infoAs(cc: number): { ok: boolean; error?: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", "-e", 'import("./src/engine/cuda.ts").then((m) => console.log(JSON.stringify(m.cudaInfo())))'],
    { cwd: root, encoding: "utf8", env: { ...process.env, AHA_EMU_CC: String(cc) } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

test("cuda: a GPU older than Turing is refused with an error naming it, and so is a GPU the module has no code for", { skip: cudaSkip() || (!cudaEmulated() && "the emulator sets the device's compute capability") }, () => {
  const old = infoAs(61);
  assert.equal(old.ok, false);
  assert.match(old.error!, /as sm_61 \(compute capability 6\.1, sm_61\) is older than Turing \(sm_75\)/);
  const cc = cudaInfo().computeCapability!;
  if (cc > 75) {  // the sm_80 and sm_90 modules hold no code for a T4
    const t4 = infoAs(75);
    assert.equal(t4.ok, false);
    assert.match(t4.error!, /has no code for .*sm_75.*built for __CUDA_ARCH__ \d+/);
  }
});

test("cuda: on a GPU without bf16 a bf16 checkpoint loads as f16, and a weight beyond f16's range is an error naming it", { skip: cudaSkip() }, async (t) => {
  const be = cudaBackend();
  if (be.weightDtype("bf16") === "bf16") return t.skip("this device has bf16 tensor cores: bf16 weights stay bf16");
  const dir = mkdtempSync(join(tmpdir(), "aha-turing-"));
  try {
    const shape = { model_type: "qwen2", hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 96, vocab_size: 64,
      tie_word_embeddings: true } as const;
    writeRandomModel(dir, shape, 3, "BF16");
    await useDevice("cuda");
    const m = CausalLM.load(dir);
    assert.equal(m.embed.dtype, "f16");
    assert.ok([...m.layers[0].linears.values()].every((l) => l.W.dtype === "f16"), "every 16-bit weight is f16");
    assert.ok(m.weightsToF16.tensors >= 8, `${m.weightsToF16.tensors} tensors converted`);
    // the checkpoint's values (bf16's lie on f16's grid within its range, but for the tiniest)
    const { readSafetensors, writeSafetensors } = await import("../src/models/safetensors.ts");
    const st = readSafetensors(join(dir, "model.safetensors"));
    const want = st.float32("model.embed_tokens.weight"), got = f16ToF32(be.read(m.embed.buf, "f16", m.embed.numel) as Uint16Array);
    for (let i = 0; i < want.length; i++) if (Math.abs(want[i]) >= 2 ** -14) assert.equal(got[i], want[i], `embedding element ${i}`);
    // one weight of the checkpoint beyond 65504
    const tensors = Object.fromEntries([...st.tensors].map(([name, info]) => [name, { dtype: info.dtype, shape: info.shape, data: st.bytes(name) }]));
    const w = new Uint16Array(st.uint16("model.layers.0.mlp.down_proj.weight"));
    w[5] = f32ToBf16(Float32Array.of(1e5))[0];
    tensors["model.layers.0.mlp.down_proj.weight"].data = Buffer.from(w.buffer);
    writeSafetensors(join(dir, "model.safetensors"), tensors);
    assert.throws(() => CausalLM.load(dir), /model\.safetensors: tensor 'model\.layers\.0\.mlp\.down_proj\.weight': 1 value\(s\) beyond fp16's range/);
  } finally {
    await useDevice("cpu");
    rmSync(dir, { recursive: true, force: true });
  }
});
