// Test helper: load a GGUF with node-llama-cpp (CPU prebuilt, never builds), evaluate token rows and return logits,
// compared against the fixtures' transformers logits. Not a test file itself.
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import { readSafetensors } from "../src/models/safetensors.ts";
import { join } from "node:path";

let llamaP: Promise<Llama> | undefined;
export const llamaLog: string[] = [];

export function llama(): Promise<Llama> {
  llamaP ??= getLlama({
    gpu: false, build: "never", logLevel: LlamaLogLevel.warn, progressLogs: false,
    logger: (level, msg) => { llamaLog.push(`[${level}] ${msg}`); },
  });
  return llamaP;
}

export interface RefRows {
  /** unpadded token rows */
  rows: number[][];
  /** reference logits per row: [T][V] */
  logits: Float32Array[][];
  vocab: number;
}

/** Rows of a reference file (input_ids where attention_mask is 1) and their logits. */
export function referenceRows(modelDir: string, file = "reference.safetensors", logitsFile?: string): RefRows {
  const ref = readSafetensors(join(modelDir, file));
  const ids = ref.int32("input_ids"), mask = ref.int32("attention_mask");
  const [B, T] = ref.info("input_ids").shape;
  const lf = logitsFile ? readSafetensors(join(modelDir, logitsFile)) : ref;
  const lg = lf.float32("logits");
  const V = lf.info("logits").shape[2];
  const rows: number[][] = [], logits: Float32Array[][] = [];
  for (let b = 0; b < B; b++) {
    const r: number[] = [], l: Float32Array[] = [];
    for (let t = 0; t < T; t++) {
      if (!mask[b * T + t]) continue;
      r.push(ids[b * T + t]);
      l.push(lg.subarray((b * T + t) * V, (b * T + t + 1) * V));
    }
    rows.push(r);
    logits.push(l);
  }
  return { rows, logits, vocab: V };
}

/** llama.cpp logits for each row (fresh sequence per row), F32 KV cache, no flash attention. */
export async function llamaLogits(modelPath: string, rows: number[][], vocab: number, lora?: string): Promise<Float32Array[][]> {
  const l = await llama();
  const before = llamaLog.length;
  let model;
  try {
    model = await l.loadModel({ modelPath });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${llamaLog.slice(before).join("\n")}`);
  }
  const maxT = Math.max(...rows.map((r) => r.length));
  try {
    const ctx = await model.createContext({
      contextSize: Math.max(256, maxT + 8), batchSize: Math.max(256, maxT + 8), sequences: 1, flashAttention: false, threads: 1,
      experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
      ...(lora ? { lora: { adapters: [{ filePath: lora, scale: 1 }] } } : {}),
    } as any);
    const out: Float32Array[][] = [];
    const seq = ctx.getSequence();
    try {
      for (const row of rows) {
        await seq.clearHistory();
        const res = await seq.controlledEvaluate(row.map((t) => [t, { generateNext: { logits: true } }] as any));
        out.push(res.map((r: any) => {
          const v = new Float32Array(vocab);
          for (const [tok, val] of r.next.logits as Map<number, number>) v[tok] = val;
          return v;
        }));
      }
    } finally {
      await ctx.dispose();
    }
    return out;
  } finally {
    await model.dispose();
  }
}

/** max |a - b| over all rows/positions, and the largest |reference logit| */
export function maxDiff(a: Float32Array[][], b: Float32Array[][]): { max: number; range: number } {
  let max = 0, range = 0;
  for (let r = 0; r < a.length; r++) for (let t = 0; t < a[r].length; t++) for (let v = 0; v < a[r][t].length; v++) {
    max = Math.max(max, Math.abs(a[r][t][v] - b[r][t][v]));
    range = Math.max(range, Math.abs(b[r][t][v]));
  }
  return { max, range };
}

/** positions where the reference top-2 margin exceeds `margin` and llama.cpp's argmax differs */
export function argmaxMismatches(got: Float32Array[][], ref: Float32Array[][], margin: number): { checked: number; wrong: number } {
  let checked = 0, wrong = 0;
  const top2 = (x: Float32Array) => {
    let i1 = 0, i2 = -1;
    for (let i = 1; i < x.length; i++) {
      if (x[i] > x[i1]) { i2 = i1; i1 = i; } else if (i2 < 0 || x[i] > x[i2]) i2 = i;
    }
    return [i1, x[i1] - x[i2]];
  };
  const am = (x: Float32Array) => top2(x)[0];
  for (let r = 0; r < ref.length; r++) for (let t = 0; t < ref[r].length; t++) {
    const [i, m] = top2(ref[r][t]);
    if (m < margin) continue;
    checked++;
    if (am(got[r][t]) !== i) wrong++;
  }
  return { checked, wrong };
}
