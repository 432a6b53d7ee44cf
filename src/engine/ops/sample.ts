// Token sampling on the logits' device: one token and its log-prob per row of logits [B, V], reading back 2B
// numbers instead of B·V (kernel sample_rows, native/cpu/sample.cpp and native/cuda/sample.cu). Not differentiable.
// A repetition penalty takes each row's distinct seen tokens (kernel repetition_penalty, on a copy of the logits).
// Filters as src/generate/sampler.ts (penalty → temperature → top-k → top-p → min-p, Hugging Face's order), applied as one
// threshold on the probabilities; it differs from the JS sampler only on exact ties at a threshold (all kept here)
// and by rounding the probabilities to f32.
import { Tensor, empty, fromHost } from "../tensor.ts";
import { assertF32 } from "./util.ts";

export interface SampleParams {
  /** 0 = greedy (argmax, lowest index on ties; log-prob under softmax of the raw logits). Default 1. */
  temperature?: number;
  /** keep the k most likely tokens; 0 or ≥ V = off */
  topK?: number;
  /** keep the smallest most-likely set with mass ≥ topP; 1 = off */
  topP?: number;
  /** drop tokens with probability < minP · the top probability; 0 = off */
  minP?: number;
  /** Hugging Face's repetition penalty on the tokens of `seen` (1 = off) */
  repetitionPenalty?: number;
}

export interface SampledTokens {
  /** [B] drawn token ids */
  tokens: Int32Array;
  /** [B] log-prob of each token under the filtered distribution it was drawn from */
  logprobs: Float32Array;
}

/**
 * Draw one token per row of logits [B, V] (f32), row b with uniform uniforms[b] ∈ [0, 1) (inverse CDF in index order).
 * seen[b]: row b's distinct tokens for the repetition penalty (needed when p.repetitionPenalty is not 1).
 */
export function sampleTokens(logits: Tensor, uniforms: Float32Array, p: SampleParams = {}, seen?: ArrayLike<number>[]): SampledTokens {
  assertF32("sampleTokens", logits);
  const V = logits.shape[logits.shape.length - 1], B = logits.numel / V;
  if (uniforms.length !== B) throw new Error(`sampleTokens: ${uniforms.length} uniforms for ${B} rows of [${logits.shape}]`);
  if (B === 0) return { tokens: new Int32Array(0), logprobs: new Float32Array(0) };
  const be = logits.backend;
  const penalty = p.repetitionPenalty ?? 1;
  if (penalty !== 1 && seen?.length !== B) throw new Error(`sampleTokens: a repetition penalty needs the seen tokens of all ${B} rows`);
  const u = fromHost(uniforms, [B], "f32", be), tok = empty([B], "i32", be), lp = empty([B], "f32", be);
  let z: Tensor | null = null;
  try {
    if (penalty !== 1) {
      // a copy of the logits with the penalty applied; each row's tokens, -1-padded to the longest row
      const L = Math.max(1, ...seen!.map((r) => r.length)), ids = new Int32Array(B * L).fill(-1);
      seen!.forEach((r, b) => ids.set(Array.from(r), b * L));
      z = empty([B, V], "f32", be);
      be.k.copy2d(z.buf, logits.buf, 1, B * V, 0, 0, false);
      const idsT = fromHost(ids, [B, L], "i32", be);
      be.k.repetition_penalty(z.buf, idsT.buf, B, V, L, penalty);
      idsT.dispose();
    }
    be.k.sample_rows(tok.buf, lp.buf, (z ?? logits).buf, u.buf, B, V, p.temperature ?? 1, topKOf(p, V), p.topP ?? 1, p.minP ?? 0);
    return { tokens: tok.data() as Int32Array, logprobs: lp.f32() };
  } finally {
    u.dispose(); tok.dispose(); lp.dispose(); z?.dispose();
  }
}

const topKOf = (p: SampleParams, V: number) => (p.topK !== undefined && p.topK > 0 && p.topK < V ? Math.floor(p.topK) : 0);

/**
 * sampleTokens without the read-back, for captured steps: row b of logits [B, V] drawn with uniforms[b] into
 * tokens[b] (i32) and logprobs[b] (f32), all on the logits' device. No repetition penalty (it needs each row's seen
 * tokens from the host).
 */
export function sampleTokensInto(logits: Tensor, uniforms: Tensor, tokens: Tensor, logprobs: Tensor, p: SampleParams = {}): void {
  assertF32("sampleTokensInto", logits);
  const V = logits.shape[logits.shape.length - 1], B = logits.numel / V;
  for (const [name, t, dt] of [["uniforms", uniforms, "f32"], ["tokens", tokens, "i32"], ["logprobs", logprobs, "f32"]] as const)
    if (t.numel !== B || t.dtype !== dt) throw new Error(`sampleTokensInto: ${name} must be [${B}] ${dt}, got [${t.shape}] ${t.dtype}`);
  if ((p.repetitionPenalty ?? 1) !== 1) throw new Error("sampleTokensInto: no repetition penalty on the device (use sampleTokens)");
  logits.backend.k.sample_rows(tokens.buf, logprobs.buf, logits.buf, uniforms.buf, B, V, p.temperature ?? 1, topKOf(p, V), p.topP ?? 1, p.minP ?? 0);
}
