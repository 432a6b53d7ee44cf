// CPU forward and generation throughput on a random-weight small llama (bench/random-model.ts "small-llama",
// ~28M parameters): prefill tokens/s; 8 prompts × 8 completions × 128 new tokens through generate(), beside the
// forward-only bound measured in the same run (a batch-64 decode step with the cache as full as the run's middle).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SHAPES, writeRandomModel } from "./random-model.ts";
import { CausalLM } from "../src/models/model.ts";
import { KVCache } from "../src/models/kvcache.ts";
import { generate } from "../src/generate/generate.ts";
import { noGrad, scope } from "../src/engine/index.ts";

export function benchGenerate(): void {
  const dir = mkdtempSync(join(tmpdir(), "aha-bench-"));
  try {
    const shape = SHAPES["small-llama"];
    writeRandomModel(dir, shape);
    const model = CausalLM.load(dir);
    const params = model.allWeights().reduce((a, t) => a + t.numel, 0);
    console.log(`model: small-llama, ${(params / 1e6).toFixed(1)}M parameters, f32`);
    const P = 64, prompts = 8, n = 8, newTokens = 128;
    const ids = Int32Array.from({ length: prompts * P }, (_, i) => (i * 7919) % shape.vocab_size);
    // prefill throughput
    let t0 = performance.now();
    noGrad(() => scope(() => model.forward(ids, prompts, P).f32()));
    const prefill = (prompts * P) / ((performance.now() - t0) / 1000);
    console.log(`forward (prefill) ${prompts}×${P} tokens: ${prefill.toFixed(0)} tokens/s`);
    // forward-only bound: B = 64 single-token steps over a cache filled to P + newTokens/2
    const B = prompts * n;
    const cache = new KVCache(model.config, B, P + newTokens + 4);
    cache.length = P + newTokens / 2;
    cache.mask.fill(1);
    const step = Int32Array.from({ length: B }, (_, i) => i + 3);
    noGrad(() => scope(() => model.logits(model.forward(step, B, 1, { cache })).f32()));
    const reps = 8;
    t0 = performance.now();
    for (let r = 0; r < reps; r++) {
      cache.length = P + newTokens / 2;
      noGrad(() => scope(() => model.logits(model.forward(step, B, 1, { cache })).f32()));
    }
    const bound = (B * reps) / ((performance.now() - t0) / 1000);
    cache.dispose();
    // real generation (no stop tokens: every completion runs the full 128 tokens)
    const promptList = Array.from({ length: prompts }, (_, b) => Array.from(ids.subarray(b * P, (b + 1) * P)));
    t0 = performance.now();
    const out = generate(model, promptList, { n, maxTokens: newTokens, temperature: 1, seed: 1, graphs: false });
    const secs = (performance.now() - t0) / 1000;
    const toks = out.reduce((a, c) => a + c.tokenIds.length, 0);
    const rate = toks / secs;
    console.log(`generate ${prompts} prompts × ${n} completions × ${newTokens} tokens: ${toks} tokens in ${secs.toFixed(2)} s = ${rate.toFixed(0)} tokens/s`);
    console.log(`forward-only decode bound (batch ${B}, logits incl.): ${bound.toFixed(0)} tokens/s; generate reaches ${((rate / bound) * 100).toFixed(0)}% of it`);
    // the same through captured decode steps (on the CPU: recorded kernel calls, replayed without the JavaScript)
    t0 = performance.now();
    const outG = generate(model, promptList, { n, maxTokens: newTokens, temperature: 1, seed: 1, graphs: true });
    const secsG = (performance.now() - t0) / 1000;
    const same = outG.every((c, i) => c.tokenIds.join() === out[i].tokenIds.join());
    console.log(`generate with graphs: ${secsG.toFixed(2)} s = ${(toks / secsG).toFixed(0)} tokens/s (${(secs / secsG).toFixed(2)}× the above; completions ${same ? "identical" : "DIFFER"})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) benchGenerate();
