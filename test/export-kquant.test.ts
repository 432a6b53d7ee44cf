// Real K-quant blocks through llama.cpp. The fixtures are 64 wide, so their K-quant exports fall back to
// Q5_0/Q5_1/Q8_0; this test builds a 256-wide llama-architecture model so Q4_K/Q5_K/Q6_K are actually written.
// Oracle: the same model's f32 GGUF (itself checked against transformers in export-gguf.test.ts) with every weight
// replaced by dequant(quant(W)) in TS. If llama.cpp decodes our blocks as we encode them, the two differ only by
// llama.cpp's Q8 activation quantisation (tolerance 0.2, measured ≤ 0.12 here); a layout error would be O(range).
// Also against the plain f32 GGUF (quantisation noise; measured q6_k 0.26, q5_k_m 0.53, q4_k_m 0.91, range ≈ 4).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gguf } from "@huggingface/gguf";
import { fixtureModels } from "./fixtures.ts";
import { llamaLogits, maxDiff } from "./export-llama.ts";
import { makeSynthModel } from "./export-synth.ts";
import { exportGguf, loadHfWeights, type WeightSet } from "../src/export/index.ts";
import { ggufTensorName } from "../src/export/gguf-arch.ts";
import { decodeGgml, encodeGgml } from "../src/export/quant-mix.ts";
import { GGML } from "../src/export/gguf-types.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-export-kq-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

test("Q4_K / Q5_K / Q6_K GGUFs decode in llama.cpp exactly as our dequantisers say", async () => {
  const tokFrom = fixtureModels().find((d) => d.endsWith("llama")) ?? fixtureModels()[0];
  const dir = join(tmp, "synth");
  makeSynthModel(dir, { hidden: 256, inter: 512, layers: 2, heads: 4, kvHeads: 2, vocab: 512 }, tokFrom);
  let s = 3;
  const rows = [0, 1, 2].map(() => Array.from({ length: 16 }, () => ((s = (s * 1103515245 + 12345) >>> 0) % 500) + 7));
  const f32Path = join(tmp, "f32.gguf");
  exportGguf(dir, loadHfWeights(dir), f32Path, { type: "f32" });
  const base = await llamaLogits(f32Path, rows, 512);
  const NOISE: Record<string, number> = { q6_k: 0.5, q5_k_m: 1.0, q4_k_m: 1.6 };
  for (const type of ["q6_k", "q5_k_m", "q4_k_m"] as const) {
    const qPath = join(tmp, `${type}.gguf`);
    const res = exportGguf(dir, loadHfWeights(dir), qPath, { type });
    const info = await gguf(qPath, { allowLocalFile: true });
    const kinds = new Set(info.tensorInfos.map((t) => Number(t.dtype)));
    assert.ok(kinds.has(GGML.Q6_K), `${type}: has Q6_K tensors`);
    if (type === "q5_k_m") assert.ok(kinds.has(GGML.Q5_K));
    if (type === "q4_k_m") assert.ok(kinds.has(GGML.Q4_K));
    // the oracle: f32 GGUF of dequant(quant(W)) with the same per-tensor types
    const w = loadHfWeights(dir);
    const typeOf = (hf: string) => (GGML as Record<string, number>)[res.types[ggufTensorName("llama", hf)!]] as any;
    const rt: WeightSet = { ...w, get: (n) => { const x = w.get(n); const t = typeOf(n); return decodeGgml(t, encodeGgml(t, x), x.length); } };
    const rtPath = join(tmp, `${type}-roundtrip-f32.gguf`);
    exportGguf(dir, rt, rtPath, { type: "f32" });
    const got = await llamaLogits(qPath, rows, 512);
    const d = maxDiff(got, await llamaLogits(rtPath, rows, 512));
    if (process.env.AHA_EXPORT_VERBOSE) console.log(type, "vs roundtrip", d.max, "vs f32", maxDiff(got, base).max);
    assert.ok(d.max <= 0.2, `${type}: llama.cpp vs TS dequantised weights: max |Δlogit| ${d.max}`);
    const n = maxDiff(got, base);
    assert.ok(n.max <= NOISE[type], `${type}: vs f32: max |Δlogit| ${n.max}`);
  }
});
