// Batched generation over token ids with a KV cache, on the same model object the trainer updates (LoRA applied
// on the fly; `useAdapter: false` samples the base model). Each prompt is prefilled once; its cache rows are then
// fanned out to its n completions. Finished sequences are dropped from the batch (cache compaction) so they stop
// costing compute. Prompts are processed in chunks sized from a KV-cache memory budget.
// Deterministic for a given seed: every completion draws from its own stream, seeded by (seed, prompt, index).
// Sampling runs on the logits' device (sampleTokens: B ids and log-probs come back, not [B, V] logits), a repetition
// penalty included (each row's distinct prompt and completion tokens go to the device with the step's uniforms).
// When one prompt's n completions need more KV cache than the budget (long contexts), they run in groups that fit.
// With graphs (and no repetition penalty) the decode steps draw their tokens themselves and feed them to the next
// step on the device, so a step is enqueued before the previous one's tokens are read (decodeSampled).
import { noGrad, scope, fromHost, embedding, sampleTokens, graphsByDefault, type Tensor } from "../engine/index.ts";
import { KVCache } from "../models/kvcache.ts";
import type { CausalLM } from "../models/model.ts";
import { mixSeed, Xoshiro } from "../engine/rng.ts";
import { checkSampling, type Draw, type SamplingParams } from "./sampler.ts";
import { DecodeStep } from "./decode-step.ts";

export interface GenerateOptions extends SamplingParams {
  /** completions per prompt (default 1) */
  n?: number;
  /** new tokens per completion (default 64) */
  maxTokens?: number;
  /** token ids that end a completion (included in its ids; finish reason "stop") */
  stopTokenIds?: number[];
  /** called after each decode step with (completion index, new token); return true to stop that completion
   *  (the text layer uses this for stop strings) */
  onToken?: (completion: number, token: number) => boolean | void;
  seed?: number;
  /** bytes of KV cache to allow at once (default 1 GiB); decides how many prompts run together */
  memoryBudget?: number;
  /** sample from the model with its adapter (default true) or the base model */
  useAdapter?: boolean;
  /** include the per-token log-probs (default true) */
  logprobs?: boolean;
  /**
   * Decode through a DecodeStep: fixed shapes, captured once as a graph and replayed (CUDA graphs; recorded kernel
   * calls on the CPU), drawing its tokens on the device and enqueued one step ahead (without a repetition penalty).
   * Finished sequences then stay in the batch until at most half of it is live, when the cache is compacted and the
   * step captured again. Same completions either way. Default: graphsByDefault (on for the CPU).
   */
  graphs?: boolean;
}

export interface Completion {
  /** index of its prompt */
  prompt: number;
  /** 0 … n-1 within its prompt */
  index: number;
  tokenIds: number[];
  finishReason: "stop" | "length";
  /** log-prob of each sampled token under the distribution it was sampled from */
  logprobs: number[];
}

/** Generate n completions for each token-id prompt. Output order: prompt-major, then completion index. */
export function generate(model: CausalLM, prompts: number[][], opts: GenerateOptions = {}): Completion[] {
  checkSampling(opts);
  const run = () => generateAll(model, prompts, opts);
  return opts.useAdapter === false ? model.withoutAdapter(run) : run();
}

function generateAll(model: CausalLM, prompts: number[][], opts: GenerateOptions): Completion[] {
  const n = opts.n ?? 1, maxTokens = opts.maxTokens ?? 64;
  const out: Completion[] = [];
  if (prompts.length === 0) return out;
  for (const [i, p] of prompts.entries()) if (p.length === 0) throw new Error(`generate: prompt ${i} is empty`);
  const budget = opts.memoryBudget ?? 2 ** 30;
  const maxP = Math.max(...prompts.map((p) => p.length));
  const perSeq = KVCache.bytes(model.config, 1, maxP + maxTokens, model.kvDtype());
  const promptsPerChunk = Math.max(1, Math.floor(budget / (perSeq * n)));
  if (perSeq * n > budget && n > 1) {
    // one prompt's group does not fit the budget (long contexts): its completions in groups that do, the prompt
    // prefilled again for each group; every completion draws from its own stream as before
    const per = Math.max(1, Math.floor(budget / perSeq));
    for (let p = 0; p < prompts.length; p++)
      for (let i = 0; i < n; i += per) out.push(...generateChunk(model, [prompts[p]], p, n, maxTokens, opts, i, Math.min(per, n - i)));
    return out;
  }
  for (let c = 0; c < prompts.length; c += promptsPerChunk) {
    const chunk = prompts.slice(c, c + promptsPerChunk);
    out.push(...generateChunk(model, chunk, c, n, maxTokens, opts));
  }
  return out;
}

interface Live {
  completion: Completion;
  rng: Xoshiro;
  /** the prompt and completion tokens so far, each once (the repetition penalty reads them) */
  seen: Set<number>;
  /** global completion number (prompt * n + index), for onToken */
  id: number;
  /** its row of the KV cache (decodeSampled) */
  row: number;
}

/** The completions first … first + count − 1 (of n per prompt) of prompts (prompt indices from offset). */
function generateChunk(model: CausalLM, prompts: number[][], offset: number, n: number, maxTokens: number, opts: GenerateOptions, first = 0, count = n): Completion[] {
  const P = Math.max(...prompts.map((p) => p.length));
  const Bp = prompts.length;
  const stop = new Set(opts.stopTokenIds ?? []);
  const wantLogprobs = opts.logprobs !== false;
  const params: SamplingParams = { ...opts, temperature: opts.temperature ?? 1 };

  // prefill each prompt once, left-padded to P
  const ids = new Int32Array(Bp * P), mask = new Int32Array(Bp * P);
  prompts.forEach((p, b) => {
    ids.set(p, b * P + (P - p.length));
    mask.fill(1, b * P + (P - p.length), (b + 1) * P);
  });
  let cache = new KVCache(model.config, Bp, P + maxTokens, model.kvDtype());
  let lastLogits = noGrad(() => scope(() => lastRowLogits(model, model.forward(ids, Bp, P, { attentionMask: mask, cache }), Bp, P))); // [Bp, V]

  // fan out: row b of the prompt batch → n completion rows
  const live: Live[] = [];
  const rows: number[] = [];
  const results: Completion[] = [];
  for (let b = 0; b < Bp; b++) {
    for (let i = first; i < first + count; i++) {
      const completion: Completion = { prompt: offset + b, index: i, tokenIds: [], finishReason: "length", logprobs: [] };
      results.push(completion);
      live.push({ completion, rng: new Xoshiro(mixSeed(opts.seed ?? 0, offset + b, i)), seen: new Set(prompts[b]), id: (offset + b) * n + i, row: live.length });
      rows.push(b);
    }
  }
  cache = cache.select(rows);
  const graphs = opts.graphs ?? graphsByDefault(model.embed.device);
  /** append a drawn token to s; false once s is finished (stop token, onToken, or maxTokens) */
  const accept = (s: Live, d: Draw): boolean => {
    s.completion.tokenIds.push(d.token);
    if (wantLogprobs) s.completion.logprobs.push(d.logprob);
    s.seen.add(d.token);
    let done = stop.has(d.token);
    if (opts.onToken && opts.onToken(s.id, d.token)) done = true;
    if (done) s.completion.finishReason = "stop";
    return !done && s.completion.tokenIds.length < maxTokens;
  };
  const penalty = params.repetitionPenalty !== undefined && params.repetitionPenalty !== 1;
  if (graphs && !penalty) {
    // the first token from the prefill's logits, the rest from steps that sample on the device
    const first = drawTokens(lastLogits, rows, live, params);
    lastLogits.dispose();
    const active = live.filter((s, r) => accept(s, first[r]));
    if (active.length > 0) decodeSampled(model, cache, active, maxTokens, params, accept);
    else cache.dispose();
    return results;
  }
  let logitRows = rows;
  let cacheRow = live.map((_, i) => i); // which cache row each live sequence occupies
  let decode = graphs ? new DecodeStep(model, cache, true) : null;
  let ownLogits = true; // false while lastLogits is the DecodeStep's output buffer

  let active = live;
  for (let step = 0; step < maxTokens && active.length > 0; step++) {
    const next: number[] = [];
    const stillActive: Live[] = [];
    const keep: number[] = [];
    const draws = drawTokens(lastLogits, logitRows, active, params);
    if (ownLogits) lastLogits.dispose();
    active.forEach((s, r) => {
      const d = draws[r];
      if (accept(s, d)) {
        stillActive.push(s);
        keep.push(r);
        next.push(d.token);
      }
    });
    if (stillActive.length === 0) { ownLogits = false; break; }
    const rowsLeft = keep.map((r) => cacheRow[r]);
    // compact the cache when sequences finished (with a DecodeStep only once half the batch is done: a new cache
    // means a new capture)
    if (keep.length !== active.length && (!decode || keep.length <= cache.batch / 2)) {
      decode?.dispose();
      cache = cache.select(rowsLeft);
      cacheRow = keep.map((_, i) => i);
      if (decode) decode = new DecodeStep(model, cache, true);
    } else cacheRow = rowsLeft;
    active = stillActive;
    if (decode) {
      const ids = new Int32Array(cache.batch); // rows of finished sequences take token 0; their logits are not read
      cacheRow.forEach((row, r) => { ids[row] = next[r]; });
      lastLogits = decode.run(ids);
      ownLogits = false;
    } else {
      const B = active.length, stepIds = Int32Array.from(next);
      lastLogits = noGrad(() => scope(() => lastRowLogits(model, model.forward(stepIds, B, 1, { cache }), B, 1)));
      ownLogits = true;
    }
    logitRows = cacheRow;
  }
  if (ownLogits) lastLogits.dispose();
  decode?.dispose();
  cache.dispose();
  return results;
}

/**
 * Decode with steps that draw their tokens on the device (DecodeStep with sampling): each step's input ids are the
 * previous step's draws, already on the device, so step j + 1 is enqueued before step j's tokens are read back and
 * the GPU stays busy while the host takes them in. Every sequence of the batch takes its j-th token at step j. A
 * sequence that finishes at step j has already been given step j + 1: that token is dropped, and its uniform (the
 * next draw of its own stream, which it no longer needs) is spent. The completions are therefore the ones drawn one
 * step at a time. Finished sequences stay in the batch until at most half of it is live; then the steps in flight
 * are taken in, the cache is compacted and a new step captured. Takes ownership of cache.
 */
function decodeSampled(model: CausalLM, cache: KVCache, active: Live[], maxTokens: number, params: SamplingParams, accept: (s: Live, d: Draw) => boolean): void {
  type Pending = { wait: () => { tokens: Int32Array; logprobs: Float32Array }; byRow: (Live | null)[] };
  const pending: Pending[] = [];
  const finished = new Set<Live>();
  let step: DecodeStep | null = null;
  let hostIds: Int32Array | null = null; // the next launch's ids when they are not the previous draws (after a capture)
  let launched = active[0].completion.tokenIds.length; // token index of the next step (the same for every sequence)
  try {
    for (;;) {
      if (pending.length === 0) {
        if (active.length === 0 || launched >= maxTokens) break;
        if (!step || active.length <= cache.batch / 2) {
          if (active.length <= cache.batch / 2) { // compact the cache to the live rows
            cache = cache.select(active.map((s) => s.row)); // (disposes the old cache)
            active.forEach((s, r) => { s.row = r; });
          }
          step?.dispose();
          step = new DecodeStep(model, cache, true, params);
          hostIds = new Int32Array(cache.batch);
          for (const s of active) hostIds[s.row] = s.completion.tokenIds[s.completion.tokenIds.length - 1];
        }
      }
      if (active.length > cache.batch / 2 && launched < maxTokens && pending.length < 2) {
        // one uniform per live row, from its own stream; finished rows' draws are never read
        const u = new Float32Array(cache.batch).fill(0.5), byRow: (Live | null)[] = new Array(cache.batch).fill(null);
        for (const s of active) { u[s.row] = s.rng.next(); byRow[s.row] = s; }
        pending.push({ wait: step!.launch(u, hostIds ?? undefined), byRow });
        hostIds = null;
        launched++;
        if (pending.length < 2 && launched < maxTokens) continue; // enqueue the next step before reading this one
      }
      if (pending.length === 0) continue;
      const { wait, byRow } = pending.shift()!;
      const { tokens, logprobs } = wait();
      byRow.forEach((s, r) => {
        if (s && !finished.has(s) && !accept(s, { token: tokens[r], logprob: logprobs[r] })) finished.add(s);
      });
      active = active.filter((s) => !finished.has(s));
    }
  } finally {
    for (const p of pending) p.wait(); // steps still in flight when every sequence had finished
    (step as DecodeStep | null)?.dispose();
    cache.dispose();
  }
}

/** One draw per live sequence s (row logitRows[r] of logits [*, V]), its uniform from its own stream. */
export function drawTokens(logits: Tensor, logitRows: number[], active: Pick<Live, "rng" | "seen">[], params: SamplingParams): Draw[] {
  const u = active.map((s) => s.rng.next());
  const penalty = params.repetitionPenalty !== undefined && params.repetitionPenalty !== 1;
  // the kernel takes f32 uniforms; a draw that rounds up to 1 takes the last kept token, as sampleRow does
  const identity = logitRows.length === logits.shape[0] && logitRows.every((row, r) => row === r);
  const { tokens, logprobs } = noGrad(() => scope(() => {
    const rows = identity ? logits : embedding(fromHost(Int32Array.from(logitRows), [logitRows.length], "i32", logits.backend), logits);
    return sampleTokens(rows, Float32Array.from(u), params, penalty ? active.map((s) => [...s.seen]) : undefined);
  }));
  return Array.from(tokens, (token, r) => ({ token, logprob: logprobs[r] }));
}

/** Logits [B, V] of the last position of each row of hidden [B*T, C], left on the device. */
export function lastRowLogits(model: CausalLM, h: Tensor, B: number, T: number): Tensor {
  const rows = Int32Array.from({ length: B }, (_, b) => b * T + T - 1);
  const last = T === 1 ? h : embedding(fromHost(rows, [B], "i32"), h);
  return model.logits(last);
}
