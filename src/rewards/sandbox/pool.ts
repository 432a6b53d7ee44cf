// A pool of sandbox workers for one language and memory cap: worker threads sized to the cores, each loading its
// interpreter once and running one program at a time; a wall-clock limit per program (the interpreter is interrupted
// at the deadline; a worker that does not answer GRACE_MS later is terminated and replaced); a memory cap per worker
// (its WebAssembly memory, plus resourceLimits on its JavaScript heap; a worker that runs out is replaced).
// Is: scheduling, deadlines and replacement. Is not: the interpreters (python-worker.ts, js-worker.ts) or the rewards
// (builtins/code-tests.ts). Separate from the pool of user reward functions on purpose: these workers run
// model-written code, each in a locked-down realm (lockdown.ts) with an empty environment.
// Idle workers are unref'd, so a pool never keeps the process alive; closeSandboxes() ends them all.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { ownModule } from "../../package.ts";
import { shorten, type Job, type JobResult, type SandboxLanguage, type WorkerMessage, type WorkerSetup } from "./protocol.ts";

/** Time a worker gets past the deadline to answer after its interrupt before it is terminated. */
export const GRACE_MS = 1000;

export interface SandboxPoolOptions {
  language: SandboxLanguage;
  /** Memory cap of each worker's interpreter, in MiB. Default 256. */
  memoryMb?: number;
  /** Workers (default: the machine's cores). */
  size?: number;
  /** Replace a worker after this many programs (Python's reset is not a snapshot restore). Default 1000 for Python, 0 (never) for JavaScript. */
  recycleAfter?: number;
}

/** A worker's entry: the .ts in src/ when running from source (a checkout), else the built .js in dist/. */
const entry = (name: string): URL => ownModule(`rewards/sandbox/${name}.ts`, import.meta.url);

const ENTRIES: Record<SandboxLanguage, URL> = { python: entry("python-worker"), javascript: entry("js-worker") };

/** Start a worker on a .ts entry (through tsx's loader) or a compiled .js one. */
function spawn(entry: URL, options: ConstructorParameters<typeof Worker>[1]): Worker {
  if (!entry.pathname.endsWith(".ts")) return new Worker(entry, options);
  const tsx = import.meta.resolve("tsx/esm/api");
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { ...options, eval: true });
}

interface Pending {
  job: Job;
  /** When it went to a worker (performance.now()). */
  started?: number;
  resolve: (r: JobResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  interrupt: Int32Array;
  ready: boolean;
  current: Pending | null;
  timers: NodeJS.Timeout[];
  programs: number;
}

export class SandboxPool {
  readonly language: SandboxLanguage;
  readonly memoryMb: number;
  readonly size: number;
  private readonly recycleAfter: number;
  private readonly slots = new Set<Slot>();
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;
  /** Set when a worker could not load its interpreter: every run fails with it. */
  private broken: Error | null = null;
  /** Workers started and replaced, for tests and benches. */
  readonly stats = { started: 0, replaced: 0 };

  constructor(opts: SandboxPoolOptions) {
    this.language = opts.language;
    this.memoryMb = opts.memoryMb ?? 256;
    if (!(this.memoryMb >= 32)) throw new Error(`sandbox: memory_mb must be at least 32 (got ${opts.memoryMb})`);
    this.size = Math.max(1, opts.size ?? availableParallelism());
    this.recycleAfter = opts.recycleAfter ?? (this.language === "python" ? 1000 : 0);
  }

  /** Start every worker now, so interpreters load while other work goes on (the first run() does it otherwise). */
  prestart(): this {
    this.fill();
    this.refs();
    return this;
  }

  /** Run `code` then each test; never rejects for anything the program does (only when the interpreter cannot load). */
  run(code: string, tests: string[], timeoutMs: number): Promise<JobResult> {
    if (this.closed) return Promise.reject(new Error("sandbox pool is closed"));
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { id: this.nextId++, code, tests, timeoutMs }, resolve, reject });
      this.fill();
      this.dispatch();
    });
  }

  /** Terminate every worker; queued runs are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new Error("sandbox pool closed"));
    await Promise.all([...this.slots].map((s) => this.retire(s)));
  }

  private fill(): void {
    while (!this.closed && !this.broken && this.slots.size < this.size) this.start();
  }

  private start(): void {
    const interrupt = new SharedArrayBuffer(4);
    const setup: WorkerSetup = { language: this.language, memoryMb: this.memoryMb, interrupt };
    const worker = spawn(ENTRIES[this.language], {
      workerData: setup,
      env: {}, // no environment (API keys) even for a program that got out of its interpreter
      // stdout/stderr stay piped to the trainer's (own streams would keep the process alive): the lockdown silences the
      // worker's console and the interpreters' output goes to counting sinks, so nothing a program prints reaches it
      resourceLimits: { maxOldGenerationSizeMb: Math.max(128, this.memoryMb), maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
    });
    const slot: Slot = { worker, interrupt: new Int32Array(interrupt), ready: false, current: null, timers: [], programs: 0 };
    this.slots.add(slot);
    this.stats.started++;
    worker.on("message", (m: WorkerMessage) => this.onMessage(slot, m));
    worker.on("error", (e) => this.onExit(slot, `worker failed: ${e.message}`));
    worker.on("exit", (code) => this.onExit(slot, `worker exited (code ${code})`));
    this.refs();
  }

  private onMessage(slot: Slot, m: WorkerMessage): void {
    if (m.type === "ready") {
      slot.ready = true;
      this.dispatch();
    } else if (m.type === "failed") {
      this.broken = new Error(`sandbox (${this.language}) could not start its interpreter: ${m.message}`);
      for (const p of this.queue.splice(0)) p.reject(this.broken);
      void this.retire(slot);
    } else {
      const p = slot.current;
      if (!p || p.job.id !== m.result.id) return;
      this.finish(slot, m.result);
      if (m.result.recycle || (this.recycleAfter > 0 && slot.programs >= this.recycleAfter)) this.replace(slot);
      this.dispatch();
    }
  }

  /** A worker died (out of memory, crash) or was terminated: answer its program, start another. */
  private onExit(slot: Slot, why: string): void {
    if (!this.slots.has(slot)) return;
    const p = slot.current;
    if (p) {
      const oom = /ERR_WORKER_OUT_OF_MEMORY|out of memory/i.test(why);
      this.finish(slot, { id: p.job.id, outcome: "error", passed: 0, total: p.job.tests.length, message: shorten(oom ? `out of memory (memory_mb ${this.memoryMb})` : why) });
    } else if (!slot.ready && !this.closed && !this.broken) {
      this.broken = new Error(`sandbox (${this.language}) could not start its interpreter: ${why}`);
      for (const q of this.queue.splice(0)) q.reject(this.broken);
    }
    this.replace(slot);
    this.dispatch();
  }

  private finish(slot: Slot, r: JobResult): void {
    const p = slot.current!;
    slot.timers.forEach(clearTimeout);
    slot.timers = [];
    slot.current = null;
    slot.programs++;
    p.resolve({ ...r, ms: Math.round(performance.now() - p.started!) });
    this.refs();
  }

  private replace(slot: Slot): void {
    if (!this.slots.has(slot)) return;
    void this.retire(slot);
    this.stats.replaced++;
    this.fill();
  }

  private retire(slot: Slot): Promise<number> {
    this.slots.delete(slot);
    slot.timers.forEach(clearTimeout);
    slot.worker.removeAllListeners("message");
    slot.worker.removeAllListeners("exit");
    slot.worker.removeAllListeners("error");
    slot.worker.on("error", () => {});
    return slot.worker.terminate();
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) break;
      if (!slot.ready || slot.current) continue;
      const p = this.queue.shift()!;
      slot.current = p;
      p.started = performance.now();
      Atomics.store(slot.interrupt, 0, 0);
      const { timeoutMs } = p.job;
      slot.timers.push(setTimeout(() => Atomics.store(slot.interrupt, 0, 2), timeoutMs)); // Python: KeyboardInterrupt
      slot.timers.push(setTimeout(() => {
        // not answering after its interrupt: cut it
        this.finish(slot, { id: p.job.id, outcome: "timeout", passed: 0, total: p.job.tests.length, message: `timed out after ${timeoutMs} ms (worker terminated)` });
        this.replace(slot);
        this.dispatch();
      }, timeoutMs + GRACE_MS));
      slot.worker.postMessage(p.job);
    }
    this.refs();
  }

  /** Busy workers (or any, while programs wait) keep the process alive; idle ones do not. */
  private refs(): void {
    const waiting = this.queue.length > 0;
    for (const s of this.slots) (s.current || waiting ? s.worker.ref() : s.worker.unref());
  }
}

const shared = new Map<string, SandboxPool>();

/** The process-wide pool for a language and memory cap (made on first use). */
export function sandboxPool(language: SandboxLanguage, memoryMb = 256): SandboxPool {
  const key = `${language}:${memoryMb}`;
  let p = shared.get(key);
  if (!p) shared.set(key, (p = new SandboxPool({ language, memoryMb })));
  return p;
}

/** Terminate every shared sandbox worker (the trainer calls it when it ends; later runs start new pools). */
export async function closeSandboxes(): Promise<void> {
  const pools = [...shared.values()];
  shared.clear();
  await Promise.all(pools.map((p) => p.close()));
}
