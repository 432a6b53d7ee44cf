// bench/gpu-grpo.ts runs only where a GPU is lent, a few minutes per session: a broken script would waste that call.
// Its --smoke mode runs the whole script on the CPU with a tiny model (the figures mean nothing), --smoke-cuda on the
// CUDA backend (here the emulator); this checks that it gets to the end and reports every figure, and that the
// graphed runs agree with the eager ones. --memory-only is checked on the emulator without arithmetic.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../bench/gpu-grpo.ts", import.meta.url));
// the CUDA emulator (native/cuda-emu), where it is built: the script's CUDA path (profile, graphs, reserved memory)
const emu = fileURLToPath(new URL("../native/build/Release/aha_cuda_emu.node", import.meta.url));
const noEmu = existsSync(emu) ? false : `the CUDA emulator is not built (${emu})`;

for (const [where, flag, env] of [["the CPU", "--smoke", {}], ["the CUDA emulator", "--smoke-cuda", { AHA_CUDA_ADDON: emu }]] as const)
test(`bench/gpu-grpo.ts ${flag} runs to the end on ${where} and reports every figure`, { skip: flag === "--smoke" ? false : noEmu }, () => {
  const dir = mkdtempSync(join(tmpdir(), "aha-gpu-smoke-"));
  try {
    // (--peaks: the floors of an H100's data sheet, which the emulator has none of)
    const out = execFileSync(process.execPath, ["--import", "tsx", script, flag, "--dir", join(dir, "model"), ...(flag === "--smoke-cuda" ? ["--peaks", "H100"] : [])],
      { encoding: "utf8", timeout: 600_000, env: { ...process.env, ...env } });
    const line = out.split("\n").find((l) => l.startsWith("AHA "));
    assert.ok(line, `no AHA line in:\n${out}`);
    const aha = JSON.parse(line.slice(4)) as Record<string, number>;
    for (const k of ["grpo_step_estimate_s", "grpo_step_estimate_graph_s", "step_s", "step_graph_s", "step_partial_ckpt_s", "peak_partial_ckpt_gib", "peak_gib", "prefill_s", "decode_tok_s", "decode_graph_tok_s", "decode_graph_general_tok_s", "decode_graph_gemm_down_tok_s", "generate_tok_s", "generate_graph_tok_s"])
      assert.ok(Number.isFinite(aha[k]) && aha[k] > 0, `${k} = ${aha[k]}`);
    assert.ok(Number.isFinite(aha.loss), `loss = ${aha.loss}`); // (a GRPO loss may have either sign)
    assert.match(out, /completions identical to the run without/);
    assert.match(out, /rollout \(generate\(\) with graphs[^\n]*reaches [^\n]*% of the bound/, "the rollout figure beside the bound");
    assert.match(out, /micro-batches from a graph \(captured\)/, "the training micro-batches were captured");
    for (const block of ["fused", "fused, GEMM down-projections", "general"])
      assert.match(out, new RegExp(`decode through DecodeStep, ${block} \\(captured\\)`), `the decode steps were captured (${block})`);
    assert.match(out, /\| train step \|/);
    if (flag === "--smoke-cuda") {
      // (profiling switched on at run time for one more step, after the timed ones)
      assert.match(out, /GPU time by op, train step, profiled separately[^\n]*\n\s+\w/, "the train step's profile was printed");
      assert.match(out, /GPU time by op, train step, profiled separately[^]*?GEMMs by shape \(\d+ shapes[^\n]*floor: [\d.]+ ms[^\n]*\n\s+\d[^\n]*TFLOP\/s[^\n]*GB\/s[^\n]*× floor/,
        "the train step's GEMMs by shape, with their rates and floors");
      assert.match(out, /GPU time by op, train step, profiled separately[^\n]*floor of the ops with a cost model: [\d.]+ ms\n[^]*?\n\s+glu_forward [^\n]*ms floor/,
        "the ops' floors from their cost models");
      assert.match(out, /GEMM tuning: train step [\d.]+ s [^\n]*; [1-9]\d* shapes timed/, "the tuned variant ran, and timed some shapes");
      for (const v of ["tuned GEMMs", "kv-group attention", "skinny GEMM kernel", "skinny GEMM kernel \\+ PDL", "skinny GEMM kernel \\+ PDL \\+ kv-group attention"]) {
        assert.match(out, new RegExp(`decode through DecodeStep, fused, ${v} \\(captured\\)`), `${v}: the decode steps were captured`);
        assert.match(out, new RegExp(`\\n${v}: decode with graphs \\d+ tok/s`), `${v}: timed`);
      }
      assert.match(out, /skinny GEMM kernel: [1-9]\d* GEMM calls took it/, "the skinny kernel ran");
      // (the emulator runs PDL launches as ordinary ones: the same kernels, so the same completions)
      assert.match(out, /PDL: completions identical to the skinny kernel's without PDL/);
      assert.match(out, /GPU time by op, \d+ decode steps \(fused, eager\), profiled[^\n]*\n\s+\w/, "the decode steps' profile was printed");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bench/gpu-grpo.ts --memory-only on the emulator without arithmetic reports the allocator's peak", { skip: noEmu }, () => {
  const dir = mkdtempSync(join(tmpdir(), "aha-gpu-mem-"));
  try {
    const run = (ckpt: string) => {
      const out = execFileSync(process.execPath, ["--import", "tsx", script, "--smoke-cuda", "--memory-only", "--ckpt", ckpt, "--dir", join(dir, "model")],
        { encoding: "utf8", timeout: 120_000, env: { ...process.env, AHA_CUDA_ADDON: emu, AHA_EMU_NO_COMPUTE: "1" } });
      const line = out.split("\n").find((l) => l.startsWith("MEMORY "));
      assert.ok(line, `no MEMORY line in:\n${out}`);
      return JSON.parse(line.slice(7)) as Record<string, number>;
    };
    const on = run("1"), off = run("0");
    for (const m of [on, off]) assert.ok(m.peak_gib > 0 && m.peak_reserved_gib >= m.peak_gib, JSON.stringify(m));
    assert.ok(off.peak_gib > on.peak_gib, `without checkpointing the peak is higher (${off.peak_gib} vs ${on.peak_gib} GiB)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
