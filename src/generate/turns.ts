// Multi-turn batched generation over token ids: the engine under tool calls and environments. Each sequence samples
// a turn; when it emits a stop token, an (async) handler decides what follows: null ends the sequence, a list of ids
// (a tool result rendered by the chat template, up to the next generation prompt) is appended and the model goes on.
// Is: one KV cache for the whole batch. Appended ids are prefilled into the live cache in the same forward as the
// other sequences' decode tokens (each row feeds what it has: one sampled token, or the stop token and the appended
// ids; rows are left-padded to the longest feed with masked positions), so sequences at different turns share every
// forward, and the conversation is never encoded again. A sequence waiting on its handler feeds nothing (its slots of
// those forwards are masked holes) while the others keep stepping. The cache is repacked (holes squeezed out, finished
// rows dropped) when it would overflow, when half its rows have finished or half its slots are holes, and before any
// step of a sliding-window model (whose window counts slots). Positions count real tokens only, so holes change
// nothing: the sampled tokens are those of one sequence generated alone (test/agents.test.ts checks it against a
// one-at-a-time reference that runs full forwards without a cache). Every sequence draws from its own stream,
// seeded by (seed, prompt, index) as generate() does.
// Is not: text. Ids only (the agent layer, src/agents, decodes, parses and renders). Simplifies: eager forwards (no
// captured DecodeStep); the cache holds prompt + 2 × maxTokens slots per row so a repack always leaves room.
import { fromHost, noGrad, scope, type Tensor } from "../engine/index.ts";
import { KVCache } from "../models/kvcache.ts";
import type { CausalLM } from "../models/model.ts";
import { mixSeed, Xoshiro } from "../engine/rng.ts";
import { DTYPE_BYTES } from "../engine/dtype.ts";
import type { SamplingParams } from "./sampler.ts";
import { drawTokens, lastRowLogits } from "./generate.ts";

/** A turn that just ended: its sampled ids (the stop token included when it stopped) and why it ended. */
export interface TurnEnd {
  /** completion index (prompt-major: prompt * n + index) */
  seq: number;
  ids: number[];
  /** "stop": a stop token; "length": the token budget is spent (the handler's answer is then ignored) */
  finish: "stop" | "length";
  /** completion tokens the sequence may still take (sampled and appended); appended ids must be fewer */
  room: number;
}

/** What follows a turn: ids to append (then the model continues), or null to end the sequence. */
export type TurnHandler = (turn: TurnEnd) => number[] | null | Promise<number[] | null>;

export interface TurnsOptions extends SamplingParams {
  /** completions per prompt (default 1) */
  n?: number;
  /** completion tokens per sequence, sampled and appended together (default 64) */
  maxTokens?: number;
  /** token ids that end a turn */
  stopTokenIds: number[];
  seed?: number;
  /** bytes of KV cache to allow at once (default 1 GiB); decides how many prompts run together */
  memoryBudget?: number;
  onTurnEnd: TurnHandler;
  /** filled in as it runs: forwards (the prompts' prefill included) and cache repacks (for tests and benches) */
  stats?: { forwards: number; repacks: number };
}

export interface MultiTurnCompletion {
  prompt: number;
  index: number;
  /** every completion token: sampled, and appended by the handler */
  tokenIds: number[];
  /** 1 where the model sampled the token (these take loss), 0 where it was appended */
  own: number[];
  /** log-prob of each sampled token under the distribution it was drawn from (0 where appended) */
  logprobs: number[];
  /** turns the model took */
  turns: number;
  /** "length" when the budget ended it */
  finishReason: "stop" | "length";
}

/** Generate multi-turn completions (n per prompt), prompt-major like generate(). */
export async function generateTurns(model: CausalLM, prompts: number[][], opts: TurnsOptions): Promise<MultiTurnCompletion[]> {
  const n = opts.n ?? 1, maxTokens = opts.maxTokens ?? 64;
  for (const [i, p] of prompts.entries()) if (p.length === 0) throw new Error(`generateTurns: prompt ${i} is empty`);
  const out: MultiTurnCompletion[] = [];
  if (prompts.length === 0) return out;
  const maxP = Math.max(...prompts.map((p) => p.length));
  const perSeq = KVCache.bytes(model.config, 1, maxP + 2 * maxTokens, model.kvDtype());
  const chunk = Math.max(1, Math.floor((opts.memoryBudget ?? 2 ** 30) / (perSeq * n)));
  for (let c = 0; c < prompts.length; c += chunk) out.push(...(await runChunk(model, prompts.slice(c, c + chunk), c, n, maxTokens, opts)));
  return out;
}

interface Seq {
  c: MultiTurnCompletion;
  id: number;
  rng: Xoshiro;
  seen: Set<number>;
  /** ids not yet in the cache: the last sampled token, or the stop token and the appended ids */
  feed: number[];
  state: "ready" | "waiting" | "done";
  /** its row of the cache (while not done) */
  row: number;
  /** where its current turn starts in c.tokenIds */
  turnStart: number;
}

async function runChunk(model: CausalLM, prompts: number[][], offset: number, n: number, maxTokens: number, opts: TurnsOptions): Promise<MultiTurnCompletion[]> {
  const P = Math.max(...prompts.map((p) => p.length)), Bp = prompts.length;
  const stop = new Set(opts.stopTokenIds);
  const params: SamplingParams = { ...opts, temperature: opts.temperature ?? 1 };
  const capacity = P + 2 * maxTokens;
  const window = Math.max(0, ...model.config.windowByLayer);
  const dense = window > 0 && window < capacity; // sliding windows count slots: keep the cache free of holes

  // prefill each prompt once (left-padded to P), then fan its cache row out to its n completions
  const ids = new Int32Array(Bp * P), mask = new Int32Array(Bp * P);
  prompts.forEach((p, b) => { ids.set(p, b * P + P - p.length); mask.fill(1, b * P + P - p.length, (b + 1) * P); });
  let cache = new KVCache(model.config, Bp, capacity, model.kvDtype());
  const first = noGrad(() => scope(() => lastRowLogits(model, model.forward(ids, Bp, P, { attentionMask: mask, cache }), Bp, P)));
  const seqs: Seq[] = [];
  for (let b = 0; b < Bp; b++)
    for (let i = 0; i < n; i++) {
      const c: MultiTurnCompletion = { prompt: offset + b, index: i, tokenIds: [], own: [], logprobs: [], turns: 0, finishReason: "stop" };
      seqs.push({ c, id: (offset + b) * n + i, rng: new Xoshiro(mixSeed(opts.seed ?? 0, offset + b, i)), seen: new Set(prompts[b]), feed: [], state: "ready", row: seqs.length, turnStart: 0 });
    }
  cache = cache.select(seqs.map((_, i) => Math.floor(i / n)));

  const waiting = new Set<Promise<void>>();
  let failure: unknown = null;
  const endTurn = (s: Seq, finish: "stop" | "length") => {
    s.c.turns++;
    const turn: TurnEnd = { seq: s.id, ids: s.c.tokenIds.slice(s.turnStart), finish, room: maxTokens - s.c.tokenIds.length };
    if (finish === "length") s.c.finishReason = "length";
    s.state = finish === "length" ? "done" : "waiting";
    const p = Promise.resolve()
      .then(() => opts.onTurnEnd(turn))
      .then((more) => {
        if (more === null || finish === "length") { s.state = "done"; return; }
        if (more.length >= turn.room) throw new Error(`generateTurns: the turn handler appended ${more.length} ids with room for ${turn.room - 1}`);
        for (const t of more) { s.c.tokenIds.push(t); s.c.own.push(0); s.c.logprobs.push(0); s.seen.add(t); }
        s.feed.push(...more);
        s.turnStart = s.c.tokenIds.length;
        s.state = "ready";
      })
      .catch((e) => { failure ??= e; s.state = "done"; })
      .finally(() => waiting.delete(p));
    waiting.add(p);
  };
  /** take a drawn token; ends the turn at a stop token or the budget */
  const accept = (s: Seq, token: number, logprob: number) => {
    s.c.tokenIds.push(token); s.c.own.push(1); s.c.logprobs.push(logprob); s.seen.add(token);
    s.feed = [token];
    if (stop.has(token)) endTurn(s, "stop");
    else if (s.c.tokenIds.length >= maxTokens) endTurn(s, "length");
  };
  const draw = (logits: Tensor, rows: number[], who: Seq[]) => drawTokens(logits, rows, who, params).forEach((d, r) => accept(who[r], d.token, d.logprob));

  try {
    if (opts.stats) opts.stats.forwards++;
    draw(first, seqs.map((s) => Math.floor((s.id - offset * n) / n)), seqs);
    first.dispose();
    for (;;) {
      if (waiting.size > 0) await new Promise((r) => setImmediate(r)); // let settled handlers put their rows back
      if (failure) break;
      let ready = seqs.filter((s) => s.state === "ready");
      if (ready.length === 0) {
        if (waiting.size === 0) break;
        await Promise.race(waiting);
        continue;
      }
      const T = Math.max(...ready.map((s) => s.feed.length));
      // (a sliding window counts slots, so there only rows with feeds of one length step together: no padding)
      if (dense) ready = ready.filter((s) => s.feed.length === T);
      const live = seqs.filter((s) => s.state !== "done");
      if (needsRepack(cache, live, T, dense)) {
        cache = repack(cache, live.map((s) => s.row));
        if (opts.stats) opts.stats.repacks++;
        live.forEach((s, r) => { s.row = r; });
        if (cache.length + T > cache.capacity) throw new Error(`generateTurns: ${cache.length} + ${T} positions do not fit a cache of ${cache.capacity}`);
      }
      // one forward: each ready row feeds its ids, right-aligned; other rows feed masked padding
      const B = cache.batch, S = cache.length + T;
      const step = new Int32Array(B * T), stepMask = new Int32Array(B * S);
      for (const s of ready) {
        const at = s.row * T + T - s.feed.length;
        step.set(s.feed, at);
        stepMask.fill(1, s.row * S + cache.length + T - s.feed.length, (s.row + 1) * S);
        s.feed = [];
      }
      const logits = noGrad(() => scope(() => lastRowLogits(model, model.forward(step, B, T, { attentionMask: stepMask, cache }), B, T)));
      if (opts.stats) opts.stats.forwards++;
      draw(logits, ready.map((s) => s.row), ready);
      logits.dispose();
    }
  } finally {
    await Promise.allSettled([...waiting]);
    cache.dispose();
  }
  if (failure) throw failure;
  return seqs.map((s) => s.c);
}

/** Repack before a step that adds T slots: on overflow, when half the rows are done, or half the slots are holes. */
function needsRepack(cache: KVCache, live: Seq[], T: number, dense: boolean): boolean {
  if (cache.length + T > cache.capacity || live.length <= cache.batch / 2) return true;
  let real = 0;
  for (const s of live) for (let p = 0; p < cache.length; p++) real += cache.mask[s.row * cache.capacity + p];
  const holes = live.length * cache.length - real;
  return dense ? holes > 0 && live.length > 0 && anyInnerHole(cache, live) : holes * 2 > live.length * cache.length;
}

/** True when some live row has a masked slot after its first real token (left padding is not a hole). */
function anyInnerHole(cache: KVCache, live: Seq[]): boolean {
  for (const s of live) {
    let seenReal = false;
    for (let p = 0; p < cache.length; p++) {
      const m = cache.mask[s.row * cache.capacity + p];
      if (m) seenReal = true;
      else if (seenReal) return true;
    }
  }
  return false;
}

/**
 * A new cache holding rows `keep` (in that order) with their masked slots squeezed out: each row's real positions,
 * in order, right-aligned to the longest (so rows are left-padded, as after a prompt prefill). Keys keep the rotary
 * positions they were written with, which count real tokens only, so attention over the repacked cache is unchanged.
 * Disposes the old cache.
 */
export function repack(cache: KVCache, keep: number[]): KVCache {
  const cap = cache.capacity;
  const real = keep.map((b) => {
    const r: number[] = [];
    for (let p = 0; p < cache.length; p++) if (cache.mask[b * cap + p]) r.push(p);
    return r;
  });
  const len = Math.max(0, ...real.map((r) => r.length));
  const out = new KVCache(cache.cfg, keep.length, cap, cache.dtype);
  out.length = len;
  const pairs: number[] = []; // (destination row, source row) of [B · capacity, Hkv · D]
  keep.forEach((b, i) => {
    const start = len - real[i].length;
    real[i].forEach((p, j) => { pairs.push(i * cap + start + j, b * cap + p); out.mask[i * cap + start + j] = 1; });
  });
  if (pairs.length > 0) {
    const be = cache.k[0].backend;
    const rows = fromHost(Int32Array.from(pairs), [pairs.length], "i32", be);
    for (let l = 0; l < cache.cfg.layers; l++)
      be.k.copy_rows(out.k[l].buf, cache.k[l].buf, rows.buf, pairs.length / 2, cache.cfg.kvHeads * cache.cfg.headDim, DTYPE_BYTES[cache.dtype], out.v[l].buf, cache.v[l].buf);
    rows.dispose();
  }
  cache.dispose();
  return out;
}
