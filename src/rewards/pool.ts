// User reward functions off the main thread: a pool of worker threads (piscina) sized to the cores. A call that runs
// past reward_timeout_ms is aborted and its worker terminated — which cuts a synchronous infinite loop — and replaced;
// the reward_errors policy then decides what follows. A batch is split between the workers at prompt-group
// boundaries, so a CPU-heavy reward uses every core.
// Is: placement (which rewards move: files named "./file.ts#export", and functions that use nothing from around them)
// and the wrapped functions that send calls to the pool. Built-ins stay inline (they are fast and trusted); so do
// functions that close over local state, which cannot move to another thread — the documented exception, with a
// note at start: their promises still time out, but a synchronous loop in them cannot be cut.
// Is not: a sandbox for model-written code (that is a sandbox reward's job), nor a memory cap.
// piscina and the source parser (movable.ts) are loaded only when a user reward needs them.
import { availableParallelism } from "node:os";
import type { Piscina } from "piscina";
import { isBuiltinReward } from "./registry.ts";
import { RewardTimeout } from "./errors.ts";
import { ownModule } from "../package.ts";
import { TIMES_ITSELF, type NamedReward, type RewardArgs, type RewardCallContext, type RewardFunc } from "./types.ts";

/** What a worker loads: an export of a module file, or the code of a self-contained function. */
export type WorkerRef = { module: string; export: string } | { code: string };

export interface WorkerTask {
  ref: WorkerRef;
  args: RewardArgs;
  /** [1] shared: Date.now() when the worker called the function (0 before); the deadline counts from there */
  started: Float64Array;
}

// a plain-JavaScript entry that loads worker.ts through tsx's tsImport (see worker-entry.mjs; the build copies it into
// dist/, where the CommonJS bundle finds it too); the process's own flags (--import tsx, --test, …) are not repeated
// in the workers
const workerFile = ownModule("rewards/worker-entry.mjs", import.meta.url).href;

/** A lazily started pool of `threads` reward workers. */
export class RewardPool {
  private piscina: Promise<Piscina> | null = null;

  constructor(readonly threads: number) {}

  /** Start the threads now (they take ~0.5 s each to load), so that they are ready by the first reward call. */
  start(): Promise<Piscina> {
    return (this.piscina ??= import("piscina").then(({ Piscina }) =>
      new Piscina({ filename: workerFile, minThreads: this.threads, maxThreads: this.threads, execArgv: [], idleTimeout: 60_000 })));
  }

  /**
   * Run one call in a worker, cut at `timeoutMs` after the function was called there (the worker is terminated, which
   * stops even a synchronous loop, and replaced): the call rejects with RewardTimeout. Waiting for a free worker and
   * loading the function's module in it do not count, up to 10 × timeoutMs (then the call fails too: never a hang).
   */
  async run(ref: WorkerRef, args: RewardArgs, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
    const started = new Float64Array(new SharedArrayBuffer(8));
    const abort = new AbortController();
    const stop = () => abort.abort();
    signal?.addEventListener("abort", stop);
    let timer: NodeJS.Timeout | undefined;
    const queued = Date.now();
    const deadline = new Promise<never>((_, reject) => {
      const check = () => {
        const now = Date.now(), left = started[0] ? started[0] + timeoutMs - now : timeoutMs;
        const waitedOut = !started[0] && now - queued >= 10 * timeoutMs;
        if ((started[0] && left <= 0) || waitedOut) {
          reject(waitedOut ? new RewardTimeout(timeoutMs, `did not start within ${10 * timeoutMs} ms (no free reward worker, or its module did not load)`) : new RewardTimeout(timeoutMs));
          abort.abort();
        } else timer = setTimeout(check, started[0] ? left : 20);
      };
      timer = setTimeout(check, timeoutMs);
    });
    try {
      const pool = await this.start();
      return await Promise.race([pool.run({ ref, args, started } satisfies WorkerTask, { signal: abort.signal }), deadline]);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", stop);
    }
  }

  /** Stop the workers (a later call starts them again). */
  async close(): Promise<void> {
    const p = this.piscina;
    this.piscina = null;
    await (await p)?.destroy();
  }
}

/** Slices [from, to) of every per-completion column. */
function sliceArgs(args: RewardArgs, n: number, from: number, to: number): RewardArgs {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) out[k] = Array.isArray(v) && v.length === n ? v.slice(from, to) : v;
  return out as RewardArgs;
}

/** Run `ref` on the batch in the pool, split into up to `threads` chunks of whole groups; results concatenated. */
async function runSplit(pool: RewardPool, ref: WorkerRef, args: RewardArgs, groupSize: number, ctx: RewardCallContext): Promise<unknown> {
  const n = args.completions.length;
  const groups = n % groupSize === 0 ? n / groupSize : 1;
  const chunks = Math.min(pool.threads, groups);
  if (chunks <= 1) return pool.run(ref, args, ctx.timeoutMs, ctx.signal);
  const bounds = Array.from({ length: chunks + 1 }, (_, c) => Math.round((c * groups) / chunks) * groupSize);
  const parts = await Promise.all(bounds.slice(0, -1).map((from, c) => pool.run(ref, sliceArgs(args, n, from, bounds[c + 1]), ctx.timeoutMs, ctx.signal)));
  // a chunk that returned something other than a list is the whole call's answer (the caller reports it)
  const odd = parts.find((p) => !Array.isArray(p));
  return odd !== undefined ? odd : (parts as unknown[][]).flat();
}

export interface PlacedRewards {
  /** the rewards, those that run in workers wrapped to send their calls to the pool */
  rewards: NamedReward[];
  /** the pool (null when nothing runs in it) */
  pool: RewardPool | null;
  /** one line per reward that stays on the main thread though it is a user's (why, and what it means) */
  notes: string[];
}

export interface PlaceOptions {
  /** worker threads (default: the cores); 0 runs every reward inline on the main thread */
  workers?: number;
  /** completions per prompt: a batch is split only between groups */
  groupSize?: number;
}

/** Decide where each reward runs, and wrap those that move. */
export async function placeRewards(rewards: NamedReward[], o: PlaceOptions = {}): Promise<PlacedRewards> {
  const workers = o.workers ?? availableParallelism();
  const notes: string[] = [];
  if (workers === 0) return { rewards, pool: null, notes };
  const pool = new RewardPool(workers);
  let used = false;
  const { movableSource } = rewards.some((r) => !isBuiltinReward(r) && !r.file) ? await import("./movable.ts") : { movableSource: null };
  const placed = rewards.map((r): NamedReward => {
    if (isBuiltinReward(r)) return r;
    let ref: WorkerRef;
    if (r.file) ref = { module: r.file.path, export: r.file.export };
    else {
      const m = movableSource!(r.fn);
      if ("reason" in m) {
        notes.push(`reward "${r.name}" runs on the main thread, not in a worker: ${m.reason}. Its promises time out after reward_timeout_ms, ` +
          `but a synchronous loop in it cannot be cut; to run it in a worker, make it self-contained or export it from a file named as ./file.ts#${r.name}`);
        return r;
      }
      ref = { code: m.code };
    }
    used = true;
    const fn: RewardFunc = (args, ctx) => runSplit(pool, ref, args, o.groupSize ?? 1, ctx ?? { signal: new AbortController().signal, timeoutMs: 60_000 }) as ReturnType<RewardFunc>;
    return { ...r, fn: Object.assign(fn, { [TIMES_ITSELF]: true }) };
  });
  return { rewards: placed, pool: used ? pool : null, notes };
}
