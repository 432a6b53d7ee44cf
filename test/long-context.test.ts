// Long context with no [T × T] or [T × vocab] buffer: one sequence of T tokens goes through prefill and KV-cache
// decode (generate) and a GRPO training step (fused chunked log-probs, checkpointed layers, flash-style attention),
// and the backend's largest single allocation (CUDA: the kernels' scratch included) stays far below a [T, T] or a
// [T, V] f32 buffer, on every device. The model is a small random one with a vocabulary wider than its layers, so
// that a [T, V] buffer would stand out; the CUDA log-prob kernels take 16 rows of logits at a time here
// (AHA_LM_CHUNK_ROWS; by default a chunk is at most 512 MiB: the 20K-token rows of bench/memory-table.ts at full size).
process.env.AHA_LM_CHUNK_ROWS = "16";
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { availableDevices, useDevice } from "./devices.ts";
import { writeRandomModel } from "../bench/random-model.ts";
import { CausalLM } from "../src/models/model.ts";
import { backward, getBackend, scope } from "../src/engine/index.ts";
import { generate } from "../src/generate/generate.ts";
import { batchLoss } from "../src/grpo/loss.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-long-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const dir = join(tmp, "model");
writeRandomModel(dir, { model_type: "llama", hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 1, num_key_value_heads: 1,
  intermediate_size: 32, vocab_size: 4096, tie_word_embeddings: false }, 11);

for (const device of availableDevices()) {
  // (the emulator runs attention's threads as fibers: a shorter, still telling, sequence there, offloaded only)
  const T = device === "cpu" ? 2048 : 512;
  for (const offload of device === "cpu" ? [false, true] : [true]) test(`${device}: one ${T}-token sequence through prefill, decode and a train step${offload ? " (offloaded checkpointing)" : ""} allocates nothing [T, T] or [T, V]`, async () => {
    await useDevice(device);
    const be = getBackend(device);
    const model = CausalLM.load(dir, { quantization: { type: "nf4", doubleQuant: true, computeDtype: "bf16" } });
    let s = 3;
    model.addAdapter({ r: 4, lora_alpha: 8, target_modules: "all-linear" }, () => ((s = (s * 16807) % 2147483647) / 2147483647));
    model.gradientCheckpointing = offload ? "offload" : true;
    const V = model.config.vocabSize, decode = 8;
    const tt = T * T * 4, tv = T * V * 4;
    const largest = (what: string, fn: () => void) => {
      be.synchronize();
      be.resetPeak();
      fn();
      be.synchronize();
      const l = be.memory().largest!;
      assert.ok(l > 0 && l < tt / 2 && l < tv / 4, `${what}: largest allocation ${l} bytes ([T, T] f32: ${tt}, [T, V] f32: ${tv})`);
    };
    const prompt = Array.from({ length: T - decode }, (_, i) => (i * 13 + 1) % V);
    largest("prefill and decode", () => {
      const [c] = generate(model, [prompt], { maxTokens: decode, temperature: 1, seed: 1, memoryBudget: 2 ** 30 });
      assert.equal(c.tokenIds.length, decode);
    });
    const P = T / 2, C = T - P;
    largest("train step", () => scope(() => {
      const batch = { promptIds: Int32Array.from(prompt.slice(0, P)), completionIds: Int32Array.from({ length: C }, (_, i) => (i * 7) % V),
        completionMask: new Float32Array(C).fill(1), B: 1, P, T: C };
      const { loss } = batchLoss(model, batch, null, null, Float32Array.of(1), { lossType: "grpo", epsilon: 0.2, epsilonHigh: 0.2, beta: 0, temperature: 1, maxCompletionLength: C });
      backward(loss);
    }));
    assert.ok(model.parameters().some((p) => p.grad!.f32().some((v) => v !== 0)));
  });
}
