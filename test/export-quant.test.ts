// Quantisers: byte-exact against ggml's own (golden bytes from libggml-base, see test/data/export-quant/README.md),
// dequantised round-trip error within each format's bound, and the K-quant mix choices.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as L from "../src/export/quant-legacy.ts";
import * as K from "../src/export/quant-k.ts";
import { chooseGgmlType } from "../src/export/quant-mix.ts";
import { GGML, GGML_BLOCK } from "../src/export/gguf-types.ts";

const DATA = join(import.meta.dirname, "data", "export-quant");
const buf = readFileSync(join(DATA, "input.f32"));
const input = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));

const Q = {
  q8_0: [L.quantizeQ8_0, L.dequantizeQ8_0, 32],
  q4_0: [L.quantizeQ4_0, L.dequantizeQ4_0, 32],
  q5_0: [L.quantizeQ5_0, L.dequantizeQ5_0, 32],
  q5_1: [L.quantizeQ5_1, L.dequantizeQ5_1, 32],
  q4_k: [K.quantizeQ4_K, K.dequantizeQ4_K, 256],
  q5_k: [K.quantizeQ5_K, K.dequantizeQ5_K, 256],
  q6_k: [K.quantizeQ6_K, K.dequantizeQ6_K, 256],
} as const;

for (const [name, [quant]] of Object.entries(Q)) {
  test(`${name}: bytes equal ggml_quantize_chunk's`, () => {
    const want = readFileSync(join(DATA, `${name}.bin`));
    const got = quant(input);
    assert.equal(got.length, want.length);
    let diff = 0;
    for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) diff++;
    assert.equal(diff, 0, `${diff} bytes differ`);
  });
}

// Per-block bound on |x - dequant(quant(x))|, as a multiple of the block's value range / (levels - 1).
// Symmetric formats (q8_0, q4_0, q5_0, q6_k) span [-amax, amax]; their clamp at the top level costs up to one step.
// The scale is stored as fp16, so every bound also carries amax·2⁻¹⁰ (range·2⁻¹⁰) for its rounding and, for blocks
// so small that the fp16 scale underflows (the golden input has one), up to 2⁻¹⁷ absolute.
const BOUND: Record<string, (amax: number, range: number) => number> = {
  q8_0: (a) => (a / 127) * 0.5 + a * 2 ** -10 + Math.min(a, 2 ** -17),
  q4_0: (a) => a / 8 + a * 2 ** -10 + Math.min(a, 2 ** -17),
  q5_0: (a) => a / 16 + a * 2 ** -10 + Math.min(a, 2 ** -17),
  q5_1: (_a, r) => (r / 31) * 0.5 + r * 2 ** -10 + Math.min(r, 2 ** -17),
  q4_k: (_a, r) => r / 15 + r * 2 ** -10 + Math.min(r, 2 ** -17),
  q5_k: (_a, r) => r / 31 + r * 2 ** -10 + Math.min(r, 2 ** -17),
  q6_k: (a) => a / 32 + a * 2 ** -10 + Math.min(a, 2 ** -17),
};

test("round-trip error per block is within each format's bound (Gaussian and edge-case blocks)", () => {
  let s = 7;
  const rnd = () => { s = (s * 1103515245 + 12345) >>> 0; return s / 2 ** 32; };
  const gauss = new Float32Array(256 * 16).map(() => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd()));
  for (const x of [gauss, input]) {
    for (const [name, [quant, dequant, bs]] of Object.entries(Q)) {
      const y = dequant(quant(x), x.length);
      let worst = 0;
      for (let b = 0; b < x.length / bs; b++) {
        let amax = 0, mn = Infinity, mx = -Infinity, err = 0;
        for (let i = b * bs; i < (b + 1) * bs; i++) {
          amax = Math.max(amax, Math.abs(x[i])); mn = Math.min(mn, x[i]); mx = Math.max(mx, x[i]);
          err = Math.max(err, Math.abs(x[i] - y[i]));
        }
        const bound = BOUND[name](amax, Math.max(mx, 0) - Math.min(mn, 0));
        worst = Math.max(worst, err / bound);
        assert.ok(err <= bound, `${name} block ${b}: max error ${err} > bound ${bound}`);
      }
    }
  }
});

test("K-quant mix: llama-quantize's choices and shape fallbacks", () => {
  const ctx = { nLayer: 16, tiedOutput: false };
  const t = (type: any, name: string, ne: number[], c = ctx) => GGML_BLOCK[chooseGgmlType(type, name, ne, c)].name;
  assert.equal(t("q4_k_m", "blk.0.attn_q.weight", [4096, 4096]), "Q4_K");
  assert.equal(t("q4_k_m", "blk.0.attn_v.weight", [4096, 1024]), "Q6_K"); // use_more_bits(0, 16)
  assert.equal(t("q4_k_m", "blk.2.attn_v.weight", [4096, 1024]), "Q4_K");
  assert.equal(t("q4_k_m", "blk.4.ffn_down.weight", [14336, 4096]), "Q6_K"); // (4 - 2) % 3 == 2
  assert.equal(t("q4_k_m", "blk.5.ffn_down.weight", [14336, 4096]), "Q4_K");
  assert.equal(t("q5_k_m", "blk.5.ffn_up.weight", [4096, 14336]), "Q5_K");
  assert.equal(t("q4_k_m", "blk.1.attn_qkv.weight", [3072, 9216]), "Q6_K");
  assert.equal(t("q4_k_m", "output.weight", [4096, 128256]), "Q6_K");
  assert.equal(t("q4_k_m", "token_embd.weight", [4096, 128256]), "Q4_K");
  assert.equal(t("q4_k_m", "token_embd.weight", [896, 151936], { nLayer: 24, tiedOutput: true }), "Q8_0");
  assert.equal(t("q4_k_m", "blk.3.attn_q.weight", [896, 896], { nLayer: 24, tiedOutput: true }), "Q5_0");
  assert.equal(t("q5_k_m", "blk.3.attn_q.weight", [896, 896], { nLayer: 24, tiedOutput: true }), "Q5_1");
  assert.equal(t("q4_k_m", "blk.3.ffn_down.weight", [176, 64]), "F16"); // 176 % 32 != 0
  assert.equal(t("q8_0", "output.weight", [4096, 128256]), "Q8_0");
  assert.equal(t("q4_0", "output.weight", [4096, 128256]), "Q6_K");
  assert.equal(t("q4_k_m", "blk.0.attn_norm.weight", [4096]), "F32");
  assert.equal(t("f16", "blk.0.attn_q.bias", [4096]), "F32");
  assert.equal(t("bf16", "blk.0.attn_q.weight", [4096, 4096]), "BF16");
  assert.equal(chooseGgmlType("f32", "rope_freqs.weight", [64], ctx), GGML.F32);
});
