// The memory table: a GRPO step's peak device memory for real model shapes, QLoRA (4-bit base) beside the same config
// with a 16-bit base and beside the seeds' figure. A step is the rollout (prefill and decode of every completion
// through the KV cache, in the groups the generation memory budget allows) and one optimiser step over its
// completions (micro-batches of fused log-probs, GRPO loss and backward through checkpointed layers, then AdamW).
// On the CUDA emulator without arithmetic (AHA_EMU_NO_COMPUTE=1) the allocator, the kernels' scratch and the copies
// are CUDA's own code at full size and only the arithmetic is skipped, so the allocated peak is the one a GPU's
// allocator would report; the weights are allocated from config.json alone (CausalLM.load shapeOnly). On a GPU the
// same script measures the real peaks (bench/gpu-run.sh `memory`).
//   AHA_EMU_NO_COMPUTE=1 AHA_EMU_MEMORY_GIB=192 AHA_CUDA_ADDON=native/build/Release/aha_cuda_emu.node \
//     node --import tsx bench/memory-table.ts [--rows qwen1.5b,llama8b,llama8b-20k] [--json out.json]
//   --smoke: a tiny shape and short sequences (test/memory-plan.test.ts runs it); its figures mean nothing.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { CausalLM } from "../src/models/model.ts";
import { backward, memoryByCategory, resetMemoryPeaks, scope, setDefaultDevice, type MemoryCategory } from "../src/engine/index.ts";
import { cudaBackend, cudaEmulated, cudaInfo } from "../src/engine/cuda.ts";
import { AdamW } from "../src/grpo/optim.ts";
import { batchLoss } from "../src/grpo/loss.ts";
import { generate } from "../src/generate/generate.ts";
import { MODEL_SHAPES } from "./model-shapes.ts";

const arg = (name: string, def: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : def; };
const GiB = 1024 ** 3;

/** One row: a model shape and a GRPO step's sizes, with the seeds' figure and our goal (GB as the seeds write them). */
export interface Row {
  key: string;
  label: string;
  shape: keyof typeof MODEL_SHAPES;
  prompts: number;
  generations: number;
  P: number;
  T: number;
  micro: number;
  checkpointing: true | "offload";
  /** KV-cache bytes generation may hold at once (generation_memory_budget) */
  genBudget: number;
  seedGB: number;
  goalGiB: number;
}
export const ROWS: Row[] = [
  { key: "qwen1.5b", label: "Qwen2.5-1.5B shape, LoRA r=16, 8 × 8 completions of 128 + 256", shape: "qwen2.5-1.5b", prompts: 8, generations: 8, P: 128, T: 256,
    micro: 8, checkpointing: true, genBudget: 2 ** 30, seedGB: 5, goalGiB: 4 },
  { key: "llama8b", label: "Llama-3.1-8B shape, LoRA r=16, 8 × 8 of 256 + 768", shape: "llama-3.1-8b", prompts: 8, generations: 8, P: 256, T: 768, micro: 8,
    checkpointing: "offload", genBudget: 2 ** 30, seedGB: 15, goalGiB: 12 },
  { key: "llama8b-20k", label: "Llama-3.1-8B shape, LoRA r=16, 1 prompt × 8 at 20K context (2,048 + 18,432)", shape: "llama-3.1-8b", prompts: 1, generations: 8,
    P: 2048, T: 18432, micro: 1, checkpointing: "offload", genBudget: 6 * GiB, seedGB: 54.3, goalGiB: 24 },
];
const SMOKE_ROW: Row = { key: "smoke", label: "tiny shape (smoke run)", shape: "tiny", prompts: 2, generations: 2, P: 8, T: 8, micro: 2, checkpointing: "offload",
  genBudget: 2 ** 20, seedGB: 0, goalGiB: 0 };

interface Measured { peak: number; peakReserved: number; phase: "rollout" | "train"; byCategory: Record<MemoryCategory, number> }

/** Peak device memory of one GRPO step of `row`, with a 4-bit or 16-bit base. */
export function measure(row: Row, fourBit: boolean, dir: string): { rollout: Measured; train: Measured; weights: number } {
  const be = cudaBackend();
  const model = CausalLM.load(dir, { shapeOnly: true, quantization: fourBit ? { type: "nf4", doubleQuant: true, computeDtype: "bf16" } : null });
  let s = 1;
  model.addAdapter({ r: 16, lora_alpha: 32, target_modules: "all-linear" }, () => ((s = (s * 16807) % 2147483647) / 2147483647));
  model.gradientCheckpointing = row.checkpointing;
  const opt = new AdamW(model.parameters(), { lr: 1e-5 });
  opt.update(0); // (AdamW's moments exist from the first step on: count them in both phases)
  opt.zeroGrad();
  be.synchronize();
  const weights = be.memory().allocated;
  const V = model.config.vocabSize, N = row.prompts * row.generations;
  const phase = (name: Measured["phase"], fn: () => void): Measured => {
    be.synchronize();
    be.resetPeak();
    resetMemoryPeaks("cuda");
    fn();
    be.synchronize();
    const m = be.memory(), cats = memoryByCategory("cuda");
    return { peak: m.peak, peakReserved: m.peakReserved, phase: name, byCategory: Object.fromEntries(Object.entries(cats).map(([k, v]) => [k, v.peak])) as Record<MemoryCategory, number> };
  };
  // the rollout: the caches are allocated for P + T tokens at once, so a few decode steps reach the peak
  const prompts = Array.from({ length: row.prompts }, (_, p) => Array.from({ length: row.P }, (_, i) => (p * 131 + i * 7) % (V - 1) + 1));
  const steps = new Map<number, number>();
  const rollout = phase("rollout", () => {
    generate(model, prompts, { n: row.generations, maxTokens: row.T, temperature: 1, seed: 1, memoryBudget: row.genBudget, logprobs: false,
      onToken: (c) => { const k = (steps.get(c) ?? 0) + 1; steps.set(c, k); return k >= 3; } });
  });
  be.emptyCache();
  const train = phase("train", () => {
    for (let b0 = 0; b0 < N; b0 += row.micro) {
      const B = Math.min(row.micro, N - b0);
      scope(() => {
        const batch = { promptIds: Int32Array.from({ length: B * row.P }, (_, i) => (i * 13) % V), completionIds: Int32Array.from({ length: B * row.T }, (_, i) => (i * 7) % V),
          completionMask: new Float32Array(B * row.T).fill(1), B, P: row.P, T: row.T };
        const { loss } = batchLoss(model, batch, null, null, new Float32Array(B).fill(1), { lossType: "dapo", epsilon: 0.2, epsilonHigh: 0.28, beta: 0, temperature: 1,
          maxCompletionLength: row.T, numItemsInBatch: N * row.T });
        backward(loss);
      });
    }
    opt.update(1e-5);
    opt.zeroGrad();
  });
  opt.dispose();
  model.adapter?.dispose();
  for (const t of model.allWeights()) t.dispose();
  for (const l of model.layers) for (const t of l.packs) t.dispose();
  be.emptyCache();
  return { rollout, train, weights };
}

function main(): void {
  const info = cudaInfo();
  if (!info.ok) { console.error(`no CUDA: ${info.error}`); process.exit(1); }
  const emulated = cudaEmulated();
  if (emulated && process.env.AHA_EMU_NO_COMPUTE !== "1") console.error("(the emulator with arithmetic: set AHA_EMU_NO_COMPUTE=1 for full-size shapes)");
  setDefaultDevice("cuda");
  const smoke = process.argv.includes("--smoke");
  const keys = arg("rows", ROWS.map((r) => r.key).join(",")).split(",");
  const rows = smoke ? [SMOKE_ROW] : ROWS.filter((r) => keys.includes(r.key));
  console.log(`device: ${info.name}${emulated ? (process.env.AHA_EMU_NO_COMPUTE === "1" ? ", without arithmetic" : "") : ""}`);
  const results: Record<string, unknown>[] = [];
  for (const row of rows) {
    const dir = join(tmpdir(), `aha-memtable-${row.shape}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "config.json"), JSON.stringify(MODEL_SHAPES[row.shape]));
    const out: Record<string, unknown> = { row: row.key, label: row.label, seed_gb: row.seedGB, goal_gib: row.goalGiB };
    for (const fourBit of [true, false]) {
      const t0 = performance.now();
      const m = measure(row, fourBit, dir);
      const peak = Math.max(m.rollout.peak, m.train.peak), reserved = Math.max(m.rollout.peakReserved, m.train.peakReserved);
      const key = fourBit ? "qlora" : "bf16";
      out[key] = { peak_gib: +(peak / GiB).toFixed(2), peak_reserved_gib: +(reserved / GiB).toFixed(2), weights_gib: +(m.weights / GiB).toFixed(2),
        rollout_gib: +(m.rollout.peak / GiB).toFixed(2), train_gib: +(m.train.peak / GiB).toFixed(2),
        train_by_category_gib: Object.fromEntries(Object.entries(m.train.byCategory).map(([k, v]) => [k, +(v / GiB).toFixed(2)])),
        rollout_by_category_gib: Object.fromEntries(Object.entries(m.rollout.byCategory).map(([k, v]) => [k, +(v / GiB).toFixed(2)])) };
      console.log(`${row.label}, ${fourBit ? "4-bit (QLoRA)" : "16-bit base"}: peak ${(peak / GiB).toFixed(2)} GiB (rollout ${(m.rollout.peak / GiB).toFixed(2)}, ` +
        `train step ${(m.train.peak / GiB).toFixed(2)}; reserved ${(reserved / GiB).toFixed(2)}), weights + LoRA + AdamW ${(m.weights / GiB).toFixed(2)} GiB ` +
        `[${((performance.now() - t0) / 1000).toFixed(0)} s]`);
    }
    if (row.checkpointing === "offload" && !smoke) { // what offloading saves: the same 4-bit step with plain checkpointing
      const m = measure({ ...row, checkpointing: true }, true, dir);
      out.qlora_plain_checkpointing = { peak_gib: +(Math.max(m.rollout.peak, m.train.peak) / GiB).toFixed(2), train_gib: +(m.train.peak / GiB).toFixed(2) };
      console.log(`${row.label}, 4-bit with plain checkpointing (no offload): train step ${(m.train.peak / GiB).toFixed(2)} GiB`);
    }
    results.push(out);
    const q = out.qlora as { peak_gib: number }, b = out.bf16 as { peak_gib: number };
    if (!smoke) console.log(`  → QLoRA ${q.peak_gib} GiB vs 16-bit ${b.peak_gib} GiB vs the seeds' ${row.seedGB} GB; goal ≤ ${row.goalGiB} GiB: ${q.peak_gib <= row.goalGiB ? "met" : "NOT met"}`);
  }
  console.log("MEMORY_TABLE " + JSON.stringify(results));
  const json = arg("json", "");
  if (json) writeFileSync(json, JSON.stringify(results, null, 2) + "\n");
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop()!)) main();
