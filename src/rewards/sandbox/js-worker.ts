// Sandbox worker for JavaScript: QuickJS compiled to WebAssembly (quickjs-emscripten), the module loaded once per
// worker, a fresh runtime and context for every program (nothing survives from one program to the next).
// Is: the code, then each test as its own script in the same context, with pending promise jobs run after each; an
// `assert` (plus assert.equal / deepEqual / strictEqual / ok / throws) defined inside the VM; QuickJS's own memory
// limit, stack limit and deadline (its interrupt handler), over a WebAssembly memory whose maximum is the cap.
// Is not: Node. The VM's one host function is console.log (and .info/.warn/.error/.debug), which only counts the
// length of what it is given (output past MAX_OUTPUT is an error); no require, process, timers, files or network.
import { parentPort, workerData } from "node:worker_threads";
import { newQuickJSWASMModuleFromVariant, newVariant, shouldInterruptAfterDeadline, type QuickJSContext, type QuickJSHandle, type QuickJSSyncVariant, type QuickJSWASMModule } from "quickjs-emscripten-core";
import RELEASE_SYNC from "@jitl/quickjs-wasmfile-release-sync";
import { capWasmMemory, lockdown } from "./lockdown.ts";
import { MAX_OUTPUT, shorten, type Job, type JobResult, type WorkerMessage, type WorkerSetup } from "./protocol.ts";

const setup = workerData as WorkerSetup;
const port = parentPort!;
const post = (m: WorkerMessage) => port.postMessage(m);

/** Stack of one program, in bytes (QuickJS checks it; without it deep recursion overflows the host's stack). */
const STACK_BYTES = 512 * 1024;

/** Defined inside the VM before each program: the assertions tests use. */
const PRELUDE = `
globalThis.assert = (function () {
  function fail(msg, dflt) { throw new Error(msg === undefined ? dflt : String(msg)); }
  function show(v) { try { return JSON.stringify(v); } catch (e) { return String(v); } }
  function deep(a, b) {
    if (Object.is(a, b)) return true;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
    if (Array.isArray(a) !== Array.isArray(b) || Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deep(a[k], b[k]));
  }
  const assert = function assert(cond, msg) { if (!cond) fail(msg, "assertion failed"); };
  assert.ok = assert;
  assert.equal = (a, b, msg) => { if (a != b) fail(msg, show(a) + " == " + show(b)); };
  assert.strictEqual = (a, b, msg) => { if (!Object.is(a, b)) fail(msg, show(a) + " === " + show(b)); };
  assert.notStrictEqual = (a, b, msg) => { if (Object.is(a, b)) fail(msg, show(a) + " !== " + show(b)); };
  assert.deepEqual = assert.deepStrictEqual = (a, b, msg) => { if (!deep(a, b)) fail(msg, show(a) + " deep-equals " + show(b)); };
  assert.throws = (fn, msg) => { try { fn(); } catch (e) { return; } fail(msg, "expected an exception"); };
  return Object.freeze(assert);
})();
`;

class Damaged extends Error {}

/** "Name: message" of a thrown value (the handle is disposed). */
function errorText(ctx: QuickJSContext, handle: QuickJSHandle): string {
  const err = ctx.dump(handle);
  handle.dispose();
  return typeof err === "object" && err !== null && "message" in err ? `${err.name ?? "Error"}: ${err.message}` : String(err);
}

async function main(): Promise<void> {
  const capBytes = setup.memoryMb * 1024 * 1024;
  capWasmMemory(capBytes);
  // QuickJS's memory is imported, so its maximum is enforced by the engine itself, whatever the program does.
  const wasmMemory = new WebAssembly.Memory({ initial: 256, maximum: Math.max(512, Math.floor((capBytes + (32 << 20)) / 65536)) });
  const QuickJS: QuickJSWASMModule = await newQuickJSWASMModuleFromVariant(newVariant(RELEASE_SYNC as unknown as QuickJSSyncVariant, { wasmMemory }));
  lockdown();

  /** Evaluate one script; the error's text, or null when it ran (pending jobs included). */
  const evaluate = (ctx: QuickJSContext, code: string, filename: string, deadline: number): string | null => {
    let r;
    try {
      r = ctx.evalCode(code, filename, { type: "global" });
    } catch (e) {
      throw new Damaged(e instanceof Error ? e.message : String(e));
    }
    if (r.error) return errorText(ctx, r.error);
    r.value.dispose();
    // promise jobs run to the end, or to the deadline (an endless chain of jobs is a timeout)
    for (;;) {
      const jobs = ctx.runtime.executePendingJobs();
      if (jobs.error) return errorText(ctx, jobs.error);
      // (an interrupted job chain may also end with no error and nothing pending: past the deadline is a timeout)
      if (Date.now() >= deadline) return "InternalError: interrupted";
      if (!ctx.runtime.hasPendingJob()) return null;
    }
  };

  const runJob = (job: Job): JobResult => {
    const total = job.tests.length;
    const deadline = Date.now() + job.timeoutMs;
    let printed = 0;
    const pastDeadline = shouldInterruptAfterDeadline(deadline);
    // output past the limit stops the program as the deadline does
    const rt = QuickJS.newRuntime({ memoryLimitBytes: capBytes, maxStackSizeBytes: STACK_BYTES, interruptHandler: (r) => printed > MAX_OUTPUT || pastDeadline(r) });
    const ctx = rt.newContext();
    const consoleObj = ctx.newObject();
    for (const m of ["log", "info", "warn", "error", "debug"]) {
      const f = ctx.newFunction(m, (...args) => {
        for (const a of args) {
          if (ctx.typeof(a) !== "string") printed += 16;
          else {
            const len = ctx.getProp(a, "length");
            printed += ctx.getNumber(len);
            len.dispose();
          }
        }
      });
      ctx.setProp(consoleObj, m, f);
      f.dispose();
    }
    ctx.setProp(ctx.global, "console", consoleObj);
    consoleObj.dispose();
    const timedOut = (msg: string | null) => msg !== null && /interrupted/.test(msg) && Date.now() >= deadline - 5;
    let res: JobResult;
    try {
      const setupErr = evaluate(ctx, PRELUDE, "prelude.js", deadline);
      if (setupErr) throw new Damaged(setupErr);
      const codeErr = evaluate(ctx, job.code, "solution.js", deadline);
      if (codeErr !== null) {
        res = timedOut(codeErr) ? { id: job.id, outcome: "timeout", passed: 0, total, message: `timed out after ${job.timeoutMs} ms` } : { id: job.id, outcome: "error", passed: 0, total, message: shorten(codeErr) };
      } else {
        let passed = 0;
        let message: string | undefined;
        let timeout = false;
        for (let t = 0; t < total && !timeout; t++) {
          const err = evaluate(ctx, job.tests[t]!, `test-${t}.js`, deadline);
          if (err === null) passed++;
          else if (timedOut(err)) timeout = true;
          else message ??= `test ${t}: ${shorten(err)}`;
        }
        res = timeout
          ? { id: job.id, outcome: "timeout", passed: 0, total, message: `timed out after ${job.timeoutMs} ms` }
          : { id: job.id, outcome: passed === total ? "passed" : "failed", passed, total, ...(message ? { message } : {}) };
      }
    } catch (e) {
      res = { id: job.id, outcome: "error", passed: 0, total, message: shorten(`interpreter failed: ${(e as Error).message}`), recycle: true };
    }
    if (printed > MAX_OUTPUT && !res.recycle) res = { id: job.id, outcome: "error", passed: 0, total, message: `output limit exceeded (${printed} characters > ${MAX_OUTPUT})` };
    try {
      ctx.dispose();
      rt.dispose();
    } catch {
      res.recycle = true; // a leaked object trips QuickJS's assertion: start a clean module
    }
    return res;
  };

  port.on("message", (job: Job) => post({ type: "result", result: runJob(job) }));
  post({ type: "ready" });
}

main().catch((e) => post({ type: "failed", message: e instanceof Error ? e.stack ?? e.message : String(e) }));
