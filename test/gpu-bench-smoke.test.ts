// bench/gpu-grpo.ts runs only where a GPU is lent, a few minutes per session: a broken script would waste that call.
// Its --smoke mode runs the whole script on the CPU with a tiny model (the figures mean nothing); this checks that
// it gets to the end and reports every figure, and that the graphed runs agree with the eager ones.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

test("bench/gpu-grpo.ts --smoke runs to the end on the CPU and reports every figure", () => {
  const dir = mkdtempSync(join(tmpdir(), "aha-gpu-smoke-"));
  try {
    const script = fileURLToPath(new URL("../bench/gpu-grpo.ts", import.meta.url));
    const out = execFileSync(process.execPath, ["--import", "tsx", script, "--smoke", "--dir", join(dir, "model")], { encoding: "utf8", timeout: 120_000 });
    const line = out.split("\n").find((l) => l.startsWith("AHA "));
    assert.ok(line, `no AHA line in:\n${out}`);
    const aha = JSON.parse(line.slice(4)) as Record<string, number>;
    for (const k of ["grpo_step_estimate_s", "grpo_step_estimate_graph_s", "step_s", "step_graph_s", "peak_gib", "prefill_s", "decode_tok_s", "decode_graph_tok_s", "generate_tok_s", "generate_graph_tok_s"])
      assert.ok(Number.isFinite(aha[k]) && aha[k] > 0, `${k} = ${aha[k]}`);
    assert.ok(Number.isFinite(aha.loss), `loss = ${aha.loss}`); // (a GRPO loss may have either sign)
    assert.match(out, /completions identical to the run without/);
    assert.match(out, /micro-batches from a graph \(captured\)/, "the training micro-batches were captured");
    assert.match(out, /decode through DecodeStep \(captured\)/, "the decode steps were captured");
    assert.match(out, /\| train step \|/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
