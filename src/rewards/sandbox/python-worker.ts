// Sandbox worker for Python: CPython in WebAssembly (Pyodide), loaded once per worker from node_modules (no network),
// then one program after another, reset between them.
// Is: load → lock down (lockdown.ts) → for each job: the code in a fresh namespace, then each test in that namespace,
// each through its own runPython so the counting stays in JavaScript where the program cannot touch it. The deadline
// comes from the pool through Pyodide's interrupt buffer (KeyboardInterrupt inside the program).
// Is not: a full snapshot restore. Between programs the namespace is new and builtins, sys.modules, sys's hooks and
// the writable folders are put back; a program that may have damaged the interpreter (memory cap, C stack overflow,
// Pyodide's fatal error) gets the worker replaced, and the pool replaces every worker after RECYCLE_AFTER programs as well.
import { parentPort, workerData } from "node:worker_threads";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { loadPyodide, type PyodideAPI } from "pyodide";
import { capWasmMemory, lockdown } from "./lockdown.ts";
import { MAX_OUTPUT, shorten, type Job, type JobResult, type WorkerMessage, type WorkerSetup } from "./protocol.ts";

const setup = workerData as WorkerSetup;
const port = parentPort!;
const post = (m: WorkerMessage) => port.postMessage(m);

// Set up once, in a private namespace (not in sys.modules): what the reset puts back.
const PRELUDE = `
import sys, builtins, os, shutil
for _m in ("pyodide_js",):
    sys.modules.pop(_m, None)
_saved_builtins = dict(builtins.__dict__)
_saved_modules = dict(sys.modules)
_saved_path = list(sys.path)
_saved_limit = sys.getrecursionlimit()
_saved_streams = (sys.stdin, sys.stdout, sys.stderr)
_home = os.environ.get("HOME", "/home/pyodide")
_writable = ("/tmp", _home)

def _reset():
    builtins.__dict__.clear()
    builtins.__dict__.update(_saved_builtins)
    for k in [k for k in sys.modules if k not in _saved_modules]:
        del sys.modules[k]
    sys.modules.update(_saved_modules)
    sys.path[:] = _saved_path
    sys.setrecursionlimit(_saved_limit)
    sys.settrace(None)
    sys.setprofile(None)
    sys.stdin, sys.stdout, sys.stderr = _saved_streams
    os.chdir(_home)
    for d in _writable:
        os.makedirs(d, exist_ok=True)
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
`;

/** Python exception type of a PythonError ("" for anything else). */
function pyType(e: unknown): string {
  return typeof (e as { type?: unknown })?.type === "string" ? (e as { type: string }).type : "";
}

/** The last line of a traceback, or the message of a host error. */
function lastLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const lines = msg.trim().split("\n");
  return shorten(lines[lines.length - 1] ?? msg);
}

/** Errors after which the interpreter is not to be trusted (a host error: Pyodide's fatal state; a failed allocation). */
function damaging(e: unknown): boolean {
  const t = pyType(e);
  return t === "" || t === "MemoryError";
}

async function main(): Promise<void> {
  const indexURL = dirname(fileURLToPath(import.meta.resolve("pyodide"))) + "/";
  // Nothing may come from the network: the package ships the runtime and the standard library.
  const g = globalThis as Record<string, unknown>;
  g.fetch = (url: unknown) => Promise.reject(new Error(`sandbox: Pyodide tried to fetch ${String(url)} (it must load from ${indexURL})`));
  capWasmMemory(setup.memoryMb * 1024 * 1024);
  const py: PyodideAPI = await loadPyodide({
    indexURL, packageCacheDir: indexURL, jsglobals: Object.create(null), env: { HOME: "/home/pyodide" },
    stdout: () => {}, stderr: () => {}, checkAPIVersion: true,
  });
  // output is counted and discarded: only the tests count
  let printed = 0;
  const sink = { write: (buf: Uint8Array) => ((printed += buf.length), buf.length) };
  py.setStdout(sink);
  py.setStderr(sink);
  py.setStdin({ error: true });
  py.setInterruptBuffer(new Int32Array(setup.interrupt));
  py.unregisterJsModule("pyodide_js");
  const priv = py.toPy({}) as ReturnType<PyodideAPI["toPy"]>;
  py.runPython(PRELUDE, { globals: priv });
  const reset = priv.get("_reset") as () => void;
  const newDict = py.globals.get("dict") as () => { set(k: string, v: unknown): void; destroy(): void };
  const builtinsModule = py.pyimport("builtins");
  lockdown();

  const run = (code: string, ns: unknown, filename: string) => {
    const r = py.runPython(code, { globals: ns as never, filename });
    (r as { destroy?: () => void } | undefined)?.destroy?.();
  };

  const runJob = (job: Job): JobResult => {
    const start = performance.now();
    printed = 0;
    const total = job.tests.length;
    const ns = newDict();
    ns.set("__name__", "__main__");
    ns.set("__builtins__", builtinsModule);
    let res: JobResult;
    try {
      run(job.code, ns, "<solution>");
      let passed = 0;
      let message: string | undefined;
      res = { id: job.id, outcome: "passed", passed: 0, total };
      for (let t = 0; t < total; t++) {
        try {
          run(job.tests[t]!, ns, `<test ${t}>`);
          passed++;
        } catch (e) {
          if (pyType(e) === "KeyboardInterrupt") throw e;
          if (damaging(e)) throw e;
          message ??= `test ${t}: ${lastLine(e)}`;
        }
      }
      res = { id: job.id, outcome: passed === total ? "passed" : "failed", passed, total, ...(message ? { message } : {}) };
    } catch (e) {
      // Pyodide clears the interrupt flag as it raises: a KeyboardInterrupt at the deadline is the pool's
      const timeout = pyType(e) === "KeyboardInterrupt" && performance.now() - start >= job.timeoutMs * 0.9;
      res = { id: job.id, outcome: timeout ? "timeout" : "error", passed: 0, total, message: timeout ? `timed out after ${job.timeoutMs} ms` : lastLine(e), ...(damaging(e) ? { recycle: true } : {}) };
    }
    if (printed > MAX_OUTPUT && res.outcome !== "timeout") res = { id: job.id, outcome: "error", passed: 0, total, message: `output limit exceeded (${printed} bytes > ${MAX_OUTPUT})` };
    try {
      ns.destroy();
      reset();
    } catch (e) {
      res.recycle = true;
    }
    return res;
  };

  port.on("message", (job: Job) => post({ type: "result", result: runJob(job) }));
  post({ type: "ready" });
}

main().catch((e) => post({ type: "failed", message: e instanceof Error ? e.stack ?? e.message : String(e) }));
