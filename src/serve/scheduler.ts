// Continuous batching over the batched KV-cache engine: requests (token ids in, token ids out) join a running batch
// between decode steps and leave it when they finish, so concurrent requests share every decode step.
// Is: a FIFO of requests, one batch per adapter (the engine applies one LoRA adapter to a whole forward, so requests
// for different adapters step in different batches, one after the other), and per step: admit what fits under
// maxBatch (prefill the newcomers together, draw their first tokens, move them and the live rows into one new cache:
// cache-rows.ts), one DecodeStep over the batch (captured once per cache layout and replayed), draws per row, and
// compaction once three quarters of the rows are done. Each completion draws from its own stream seeded by
// (seed, 0, index) exactly as generate() seeds completion `index` of a single prompt, and samples with the same
// kernel, so a request gives the tokens generate() gives for it alone.
// Is not: text (the HTTP and chat layers decode tokens and check stop strings through onToken), paged attention,
// chunked prefill or preemption. Simplifies: a request waits until all its n completions fit in the batch.
import { fromHost, embedding, noGrad, scope, sampleTokens, graphsByDefault, type Tensor } from "../engine/index.ts";
import { KVCache } from "../models/kvcache.ts";
import type { CausalLM } from "../models/model.ts";
import type { LoraAdapter } from "../models/lora.ts";
import { mixSeed, Xoshiro } from "../engine/rng.ts";
import type { SamplingParams } from "../generate/sampler.ts";
import { DecodeStep } from "../generate/decode-step.ts";
import { assembleCache, firstReal, placeRows, spanOf, type RowSource } from "./cache-rows.ts";

export type FinishReason = "stop" | "length" | "cancelled";

export interface TokenEvent {
  token: number;
  /** log-softmax of the model's logits at the token (before temperature and filters), when asked for */
  logprob: number | null;
  /** the most likely tokens and their log-probs, when asked for */
  top: { token: number; logprob: number }[] | null;
}

export interface SequenceRequest {
  /** prompt token ids (non-empty) */
  promptIds: number[];
  /** completions of this prompt (default 1) */
  n?: number;
  /** new tokens per completion */
  maxTokens: number;
  sampling?: SamplingParams;
  /** default: a random seed */
  seed?: number;
  /** ids that end a completion (kept in its ids, finish "stop") */
  stopTokenIds?: number[];
  /** undefined: no log-probs; 0: the sampled token's; k > 0: also the k most likely tokens' */
  topLogprobs?: number;
  /** adapter name (Scheduler's adapters) or null/undefined for the base model */
  adapter?: string | null;
  /** every token of completion i as it is drawn; return true to end that completion (finish "stop") */
  onToken?: (i: number, ev: TokenEvent) => boolean | void;
}

export interface SequenceResult {
  tokenIds: number[];
  finishReason: FinishReason;
}

export interface Submitted {
  /** resolves when every completion has finished (or was cancelled); rejects if the engine failed */
  done: Promise<SequenceResult[]>;
  /** end every completion at the next step (finish "cancelled") */
  cancel(): void;
}

export interface SchedulerOptions {
  /** named LoRA adapters (loaded onto the model's device) */
  adapters?: Map<string, LoraAdapter>;
  /** completions decoded together at most, over all adapters (default 32) */
  maxBatch?: number;
  /** replay captured decode steps (default graphsByDefault for the model's device) */
  graphs?: boolean;
}

/** positions a cache grows by beyond what its rows hold (fewer re-layouts, a little more attention width) */
const GROW = 256;

interface Request {
  req: SequenceRequest;
  seqs: Seq[];
  open: number;
  cancelled: boolean;
  resolve: (r: SequenceResult[]) => void;
  reject: (e: Error) => void;
}

interface Seq {
  owner: Request;
  index: number;
  rng: Xoshiro;
  tokens: number[];
  /** the prompt's and completion's tokens, for a repetition penalty */
  seen: Set<number>;
  finish: FinishReason | null;
  /** its row of the batch's cache */
  row: number;
}

export class Scheduler {
  readonly maxBatch: number;
  private readonly queue: Request[] = [];
  private readonly batches = new Map<string, Batch>();
  private readonly adapters: Map<string, LoraAdapter>;
  private readonly graphs: boolean;
  private wake: (() => void) | null = null;
  private closed = false;
  private readonly loopDone: Promise<void>;
  /**
   * Since start (tests, benches): decode steps, tokens drawn, requests that joined a batch already decoding, completions
   * that took free rows of a running cache, and new cache layouts.
   */
  stats = { steps: 0, tokens: 0, joinedRunning: 0, placedInFreeRows: 0, layouts: 0 };

  constructor(readonly model: CausalLM, o: SchedulerOptions = {}) {
    this.adapters = o.adapters ?? new Map();
    this.maxBatch = o.maxBatch ?? 32;
    this.graphs = o.graphs ?? graphsByDefault(model.embed.device);
    this.loopDone = this.loop();
  }

  /** Queue a request; it joins the batch at the next step where its n completions fit. */
  submit(req: SequenceRequest): Submitted {
    const n = req.n ?? 1;
    if (this.closed) throw new Error("the scheduler is closed");
    if (req.promptIds.length === 0) throw new Error("the prompt is empty");
    if (n < 1 || n > this.maxBatch) throw new Error(`n = ${n} completions do not fit a batch of ${this.maxBatch} (--max-batch)`);
    if (req.adapter && !this.adapters.has(req.adapter)) throw new Error(`no adapter named '${req.adapter}'`);
    if (req.seed === undefined) req = { ...req, seed: Math.floor(Math.random() * 2 ** 32) };
    let r!: Request;
    const done = new Promise<SequenceResult[]>((resolve, reject) => { r = { req, seqs: [], open: n, cancelled: false, resolve, reject }; });
    this.queue.push(r);
    this.wake?.();
    return {
      done,
      cancel: () => {
        r.cancelled = true;
        const q = this.queue.indexOf(r);
        if (q >= 0) { this.queue.splice(q, 1); cancelWaiting(r); }
        this.wake?.();
      },
    };
  }

  /** the adapters' names, as requests name them */
  get adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  /** Completions decoding now, and requests waiting to join. */
  get load(): { running: number; waiting: number } {
    let running = 0;
    for (const b of this.batches.values()) running += b.liveCount;
    return { running, waiting: this.queue.length };
  }

  /**
   * Mean-pooled, L2-normalised final hidden states (after the final norm) of each input, the model (or an adapter)
   * run without a cache. Runs between decode steps (it is synchronous).
   */
  embed(inputs: number[][], adapter: string | null = null): Float32Array[] {
    return this.withAdapter(adapter, () => inputs.map((ids) => noGrad(() => scope(() => {
      const T = ids.length, C = this.model.config.hidden;
      const h = this.model.forward(Int32Array.from(ids), 1, T).f32(); // [T, C]
      const out = new Float32Array(C);
      for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) out[c] += h[t * C + c];
      let norm = 0;
      for (let c = 0; c < C; c++) norm += out[c] * out[c];
      norm = Math.sqrt(norm) || 1;
      for (let c = 0; c < C; c++) out[c] /= norm;
      return out;
    }))));
  }

  /** Stop taking requests, cancel the running ones, and free the batches' caches. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const r of [...this.queue]) r.cancelled = true;
    for (const b of this.batches.values()) for (const s of b.live()) s.owner.cancelled = true;
    this.closed = true;
    this.wake?.();
    await this.loopDone;
  }

  /** Run fn with the model's adapter set to `name` (null: the base model), restoring it after. */
  withAdapter<T>(name: string | null, fn: () => T): T {
    const prev = this.model.adapter;
    this.model.adapter = name ? this.adapters.get(name)! : null;
    try {
      return fn();
    } finally {
      this.model.adapter = prev;
    }
  }

  private async loop(): Promise<void> {
    for (;;) {
      const running = this.load.running;
      if (this.closed && running === 0) break;
      if (this.queue.length === 0 && running === 0) {
        await new Promise<void>((r) => { this.wake = r; });
        this.wake = null;
        continue;
      }
      this.tick();
      await new Promise((r) => setImmediate(r)); // let I/O (new requests, disconnects) in between steps
    }
    for (const r of this.queue.splice(0)) cancelWaiting(r);
    for (const b of this.batches.values()) b.dispose();
    this.batches.clear();
  }

  /** One round: admit what fits, then one decode step of every batch with live rows. */
  private tick(): void {
    let live = this.load.running;
    const joining = new Map<string, Request[]>();
    while (this.queue.length > 0) {
      const r = this.queue[0], n = r.req.n ?? 1;
      if (this.closed || r.cancelled) { this.queue.shift(); cancelWaiting(r); continue; }
      if (live + n > this.maxBatch) break; // first come, first served: later requests wait behind it
      this.queue.shift();
      live += n;
      const key = r.req.adapter ?? "";
      joining.set(key, [...(joining.get(key) ?? []), r]);
    }
    for (const key of new Set([...joining.keys(), ...this.batches.keys()])) {
      let b = this.batches.get(key);
      if (!b) this.batches.set(key, (b = new Batch(this.model, this.graphs, this.maxBatch, this.stats)));
      const newcomers = joining.get(key) ?? [];
      try {
        this.withAdapter(key || null, () => {
          if (newcomers.length) {
            if (b!.liveCount > 0) this.stats.joinedRunning += newcomers.length;
            b!.join(newcomers);
          }
          b!.step();
        });
        this.stats.steps++;
        this.stats.tokens += b.drawn;
        b.drawn = 0;
      } catch (e) {
        // the engine failed: fail this batch's requests, keep serving the others
        const err = e instanceof Error ? e : new Error(String(e));
        for (const r of new Set([...b.live().map((s) => s.owner), ...newcomers])) { r.cancelled = true; r.reject(err); }
        b.dispose();
        this.batches.delete(key);
        continue;
      }
      if (b.liveCount === 0) { b.dispose(); this.batches.delete(key); }
    }
  }
}

/** Resolve a request that never joined a batch: every completion empty and cancelled. */
function cancelWaiting(r: Request): void {
  r.resolve(Array.from({ length: r.req.n ?? 1 }, () => ({ tokenIds: [], finishReason: "cancelled" as const })));
}

/**
 * The rows decoding together under one adapter: a KV cache, its captured step, and which completion holds each row.
 * A cache has a power of two of rows (at most maxBatch), so newcomers usually take free rows of the running cache
 * and its captured step (placeRows) instead of a new layout: a new one is made when no row is free, when a newcomer's
 * prompt is longer than the batch's length, when the cache is full, and to compact once three quarters of its rows are done.
 */
class Batch {
  private cache: KVCache | null = null;
  private decode: DecodeStep | null = null;
  private rows: (Seq | null)[] = [];
  /** tokens drawn since the scheduler last counted */
  drawn = 0;

  constructor(private readonly model: CausalLM, private readonly graphs: boolean, private readonly maxRows: number, private readonly stats: Scheduler["stats"]) {}

  get liveCount(): number {
    let n = 0;
    for (const s of this.rows) if (s && !s.finish) n++;
    return n;
  }

  live(): Seq[] {
    return this.rows.filter((s): s is Seq => !!s && !s.finish);
  }

  /** Prefill the newcomers' prompts together, draw their first tokens, and give each one a row of the batch's cache. */
  join(reqs: Request[]): void {
    const prompts = reqs.map((r) => r.req.promptIds);
    const Bp = prompts.length, P = Math.max(...prompts.map((p) => p.length));
    const ids = new Int32Array(Bp * P), mask = new Int32Array(Bp * P);
    prompts.forEach((p, b) => {
      ids.set(p, b * P + (P - p.length));
      mask.fill(1, b * P + (P - p.length), (b + 1) * P);
    });
    const model = this.model;
    const prefill = new KVCache(model.config, Bp, P, model.kvDtype());
    try {
      const logits = noGrad(() => scope(() => {
        const h = model.forward(ids, Bp, P, { attentionMask: mask, cache: prefill }); // [Bp·P, C]
        return model.logits(embedding(fromHost(Int32Array.from({ length: Bp }, (_, b) => b * P + P - 1), [Bp], "i32"), h)); // [Bp, V]
      }));
      const seqs: Seq[] = [], logitRows: number[] = [];
      reqs.forEach((r, b) => {
        for (let i = 0; i < (r.req.n ?? 1); i++) {
          const s: Seq = { owner: r, index: i, rng: new Xoshiro(mixSeed(r.req.seed!, 0, i)), tokens: [], seen: new Set(r.req.promptIds), finish: null, row: -1 };
          r.seqs.push(s);
          seqs.push(s);
          logitRows.push(b);
        }
      });
      this.draw(logits, logitRows, seqs);
      logits.dispose();
      const joined = seqs.filter((s) => !s.finish).map((s) => ({ src: prefill, row: reqs.indexOf(s.owner), from: P - s.owner.req.promptIds.length, seq: s }));
      if (joined.length === 0) return;
      const cache = this.cache, free = this.rows.flatMap((s, r) => (!s || s.finish ? [r] : []));
      if (cache && free.length >= joined.length && joined.every((j) => spanOf(j) <= cache.length)) {
        const at = free.slice(0, joined.length);
        placeRows(cache, joined, at);
        this.stats.placedInFreeRows += joined.length;
        joined.forEach((j, i) => { j.seq.row = at[i]; this.rows[at[i]] = j.seq; });
      } else this.layout([...this.liveSources(), ...joined]);
    } finally {
      prefill.dispose();
    }
  }

  /** One decode step of every row (finished rows ride along until compaction), then one draw per live row. */
  step(): void {
    for (const s of this.live()) if (s.owner.cancelled) this.finish(s, "cancelled");
    let live = this.live();
    if (live.length === 0 || !this.cache) return;
    if (this.cache.length >= this.cache.capacity) this.layout(this.liveSources()); // grow
    const B = this.cache.batch, ids = new Int32Array(B); // rows of finished sequences take token 0; their logits are not read
    for (const s of live) ids[s.row] = s.tokens[s.tokens.length - 1];
    const logits = this.decode!.run(ids); // [B, V], the step's own buffer
    this.draw(logits, live.map((s) => s.row), live);
    live = this.live();
    if (live.length === 0) this.dispose();
    else if (live.length <= B / 4) this.layout(this.liveSources()); // compact (keeping some free rows for newcomers)
  }

  private liveSources(): (RowSource & { seq: Seq })[] {
    return this.cache ? this.live().map((s) => ({ src: this.cache!, row: s.row, from: firstReal(this.cache!, s.row), seq: s })) : [];
  }

  /** A new cache (and captured step) holding these rows first, in this order, then free rows up to a power of two. */
  private layout(sources: (RowSource & { seq: Seq })[]): void {
    const length = Math.max(...sources.map(spanOf));
    const remaining = Math.max(...sources.map((r) => r.seq.owner.req.maxTokens - r.seq.tokens.length));
    const batch = Math.max(sources.length, Math.min(this.maxRows, 2 ** Math.ceil(Math.log2(sources.length))));
    const cache = assembleCache(sources, batch, length + Math.max(1, Math.min(remaining, GROW)));
    this.stats.layouts++;
    this.decode?.dispose();
    this.cache?.dispose();
    this.cache = cache;
    this.rows = Array.from({ length: batch }, (_, i) => { const r = sources[i]; if (r) r.seq.row = i; return r?.seq ?? null; });
    this.decode = new DecodeStep(this.model, cache, this.graphs);
  }

  /**
   * Draw the next token of each sequence seqs[r] from row logitRows[r] of logits [*, V], with its own uniform;
   * sequences with the same sampling parameters are drawn by one sampleTokens call.
   */
  private draw(logits: Tensor, logitRows: number[], seqs: Seq[]): void {
    const groups = new Map<string, number[]>();
    seqs.forEach((s, r) => {
      const key = JSON.stringify(s.owner.req.sampling ?? {});
      groups.set(key, [...(groups.get(key) ?? []), r]);
    });
    const host = seqs.some((s) => s.owner.req.topLogprobs !== undefined) ? logits.f32() : null;
    const V = logits.shape[logits.shape.length - 1];
    for (const members of groups.values()) {
      const params = { ...seqs[members[0]].owner.req.sampling };
      params.temperature ??= 1;
      const penalty = (params.repetitionPenalty ?? 1) !== 1;
      const u = Float32Array.from(members, (r) => seqs[r].rng.next());
      const rows = members.map((r) => logitRows[r]);
      const identity = rows.length === logits.shape[0] && rows.every((row, r) => row === r);
      const { tokens } = noGrad(() => scope(() => {
        const z = identity ? logits : embedding(fromHost(Int32Array.from(rows), [rows.length], "i32", logits.backend), logits);
        return sampleTokens(z, u, params, penalty ? members.map((r) => [...seqs[r].seen]) : undefined);
      }));
      members.forEach((r, j) => {
        const s = seqs[r], k = s.owner.req.topLogprobs;
        const ev: TokenEvent = { token: tokens[j], logprob: null, top: null };
        if (k !== undefined && host) Object.assign(ev, rowLogprobs(host.subarray(logitRows[r] * V, (logitRows[r] + 1) * V), tokens[j], k));
        this.accept(s, ev);
      });
    }
  }

  private accept(s: Seq, ev: TokenEvent): void {
    const req = s.owner.req;
    s.tokens.push(ev.token);
    s.seen.add(ev.token);
    this.drawn++;
    let stop = (req.stopTokenIds ?? []).includes(ev.token);
    if (req.onToken?.(s.index, ev)) stop = true;
    if (stop) this.finish(s, "stop");
    else if (s.tokens.length >= req.maxTokens) this.finish(s, "length");
  }

  private finish(s: Seq, reason: FinishReason): void {
    s.finish = reason;
    const r = s.owner;
    if (--r.open === 0) r.resolve(r.seqs.map((q) => ({ tokenIds: q.tokens, finishReason: q.finish! })));
  }

  dispose(): void {
    for (const s of this.live()) this.finish(s, "cancelled");
    this.decode?.dispose();
    this.cache?.dispose();
    this.decode = null;
    this.cache = null;
    this.rows = [];
  }
}

/** The log-softmax at `token` of one row of logits, and the k most likely tokens with theirs. */
export function rowLogprobs(z: Float32Array, token: number, k: number): { logprob: number; top: { token: number; logprob: number }[] } {
  let mx = -Infinity;
  for (const v of z) if (v > mx) mx = v;
  let s = 0;
  for (const v of z) s += Math.exp(v - mx);
  const lse = mx + Math.log(s);
  const top: { token: number; logprob: number }[] = [];
  if (k > 0) {
    // k largest by a bounded insertion (k ≤ 20)
    for (let i = 0; i < z.length; i++) {
      if (top.length === k && z[i] <= top[k - 1].logprob) continue;
      let j = top.length === k ? k - 1 : top.length;
      if (top.length < k) top.push({ token: i, logprob: z[i] });
      while (j > 0 && top[j - 1].logprob < z[i]) { top[j] = top[j - 1]; j--; }
      top[j] = { token: i, logprob: z[i] };
    }
    for (const t of top) t.logprob -= lse;
  }
  return { logprob: z[token] - lse, top };
}
