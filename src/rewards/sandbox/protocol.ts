// The messages between a sandbox pool (main thread) and its workers, and the outcome of one program.
// Is: types and the limits both sides share. Is not: the pool (pool.ts) or an interpreter (python-worker.ts,
// js-worker.ts).

export type SandboxLanguage = "python" | "javascript";

/** passed: the code ran and every test passed; failed: the code ran, some test failed; timeout: the wall-clock limit
 * cut it; error: the code itself did not run (syntax error, exception, memory cap, output past MAX_OUTPUT, no code, crashed
 * interpreter). */
export type SandboxOutcome = "passed" | "failed" | "timeout" | "error";

/** What the pool hands a worker when it starts (workerData). */
export interface WorkerSetup {
  language: SandboxLanguage;
  /** Cap of the interpreter's WebAssembly memory, in MiB. */
  memoryMb: number;
  /** Int32 flag the pool sets to 2 at the deadline (Pyodide's interrupt buffer: raises KeyboardInterrupt). */
  interrupt: SharedArrayBuffer;
}

export interface Job {
  id: number;
  /** The program, then each test run after it in the same namespace. */
  code: string;
  tests: string[];
  timeoutMs: number;
}

export interface JobResult {
  id: number;
  outcome: SandboxOutcome;
  /** Tests that passed, of `total`. */
  passed: number;
  total: number;
  /** First error or failed test, shortened (MAX_MESSAGE). */
  message?: string;
  /** Wall-clock time of the program with its tests, in ms (set by the pool). */
  ms?: number;
  /** true when the interpreter may be damaged (memory cap, stack overflow, fatal error): the pool replaces the worker. */
  recycle?: boolean;
}

export type WorkerMessage = { type: "ready" } | { type: "result"; result: JobResult } | { type: "failed"; message: string };

/** Longest message kept from an error. */
export const MAX_MESSAGE = 400;
/** Output a program may print (then discarded: only the tests count); more is an error, as in contest judges. */
export const MAX_OUTPUT = 1 << 20;

/** Start…end of a long message. */
export function shorten(s: string, max = MAX_MESSAGE): string {
  return s.length <= max ? s : `${s.slice(0, max / 2)} … ${s.slice(-max / 2)}`;
}
