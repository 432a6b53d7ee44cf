// Lockdown of a sandbox worker's JavaScript realm, run once its interpreter is loaded and before any program.
// Is: the second wall around model-written code. Pyodide's Python can reach JavaScript objects of the worker (its FFI
// is a feature), and its Emscripten runtime implements system calls in JavaScript with Node's modules (`os.system`
// is child_process.spawnSync, sockets are the `ws` package), so the realm must hold nothing that leads back to Node:
// no code generation from strings (Function/eval, the path to `process` and `import()` from any object's
// `.constructor.constructor`), no stack-trace hooks (CallSite.getThis/getFunction), no `process`, network or channel
// globals, every function of Node's host modules (fs, child_process, net, http, vm, …) and `require` itself replaced
// by one that throws — in this thread only: each worker has its own module instances — and a cap on the growth of
// every WebAssembly memory. The first wall is the interpreter's own (QuickJS has no host bindings at all; Pyodide
// gets an empty `js` module and no `pyodide_js`). The third is the worker: resourceLimits, an empty environment,
// terminate on a missed deadline.
// Is not: a general-purpose SES lockdown (no frozen intrinsics: a program may change its own realm's prototypes;
// each worker serves only sandboxed programs, and is reset or replaced between them).

import * as childProcess from "node:child_process";
import * as cluster from "node:cluster";
import * as dgram from "node:dgram";
import * as dns from "node:dns";
import * as fs from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import * as inspector from "node:inspector";
import * as nodeModule from "node:module";
import * as net from "node:net";
import * as os from "node:os";
import * as tls from "node:tls";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import * as workerThreads from "node:worker_threads";

/** Node modules whose every function is replaced (their CommonJS objects, shared by every importer in the thread). */
const HOST_MODULES: Record<string, unknown> = {
  child_process: childProcess, cluster, dgram, dns, fs, "fs.promises": fs.promises, "dns.promises": dns.promises, http,
  http2, https, inspector, net, os, tls, v8, vm, worker_threads: workerThreads,
};

/** process methods that reach outside the thread. */
const PROCESS_METHODS = ["binding", "_linkedBinding", "dlopen", "kill", "abort", "chdir", "setuid", "setgid", "seteuid", "setegid", "setgroups", "initgroups", "send", "_debugProcess", "_kill", "reallyExit", "umask", "loadEnvFile"];

/** Globals removed from the worker's realm: host access, network, cross-thread channels. */
const REMOVED_GLOBALS = [
  "process", "require", "module", "exports", "__filename", "__dirname", "fetch", "Request", "Response", "Headers",
  "FormData", "WebSocket", "EventSource", "BroadcastChannel", "MessageChannel", "MessagePort", "Worker",
  "SharedWorker", "importScripts", "navigator", "localStorage", "sessionStorage", "caches", "Deno", "Bun",
];

function disabled(what: string): () => never {
  return function () {
    throw new EvalError(`${what} is disabled in the sandbox`);
  };
}

/**
 * Cap the growth of every WebAssembly.Memory in this realm to `maxBytes` (Emscripten grows its heap through
 * `memory.grow` from JavaScript; a refused grow is a failed malloc, which Python reports as MemoryError).
 */
export function capWasmMemory(maxBytes: number): void {
  const proto = WebAssembly.Memory.prototype;
  const grow = proto.grow;
  const maxPages = Math.floor(maxBytes / 65536);
  Object.defineProperty(proto, "grow", {
    value: function (this: WebAssembly.Memory, delta: number): number {
      if (this.buffer.byteLength / 65536 + delta > maxPages) throw new RangeError(`sandbox memory cap (${maxBytes >> 20} MiB) reached`);
      return grow.call(this, delta);
    },
    writable: false, configurable: false,
  });
}

/** Replace every function property of `obj` with one that throws. */
function neuter(obj: unknown, label: string): void {
  if (!obj || (typeof obj !== "object" && typeof obj !== "function")) return;
  for (const key of Object.getOwnPropertyNames(obj)) {
    if (key === "prototype" || key === "constructor") continue;
    const d = Object.getOwnPropertyDescriptor(obj, key);
    if (!d || typeof d.value !== "function") continue;
    try {
      Object.defineProperty(obj, key, { value: disabled(`${label}.${key}`), writable: false, configurable: false });
    } catch {
      /* a frozen property: left as is */
    }
  }
}

/** Lock the realm down (see the header). Keep references to anything the worker itself needs before calling. */
export function lockdown(): void {
  const g = globalThis as Record<string, unknown>;
  // Node's host modules, then the ESM named exports that mirror them, then require itself.
  for (const [name, mod] of Object.entries(HOST_MODULES)) neuter((mod as { default?: unknown }).default ?? mod, name);
  nodeModule.syncBuiltinESMExports();
  const Module = (nodeModule as unknown as { default: { prototype: object } }).default;
  neuter(Module, "module");
  neuter(Module.prototype, "require");
  const proc = (g.process ?? {}) as Record<string, unknown>;
  for (const m of PROCESS_METHODS) if (typeof proc[m] === "function") proc[m] = disabled(`process.${m}`);
  const fnProtos = [
    Function.prototype,
    Object.getPrototypeOf(async function () {}),
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async function* () {}),
  ] as object[];
  for (const proto of fnProtos) Object.defineProperty(proto, "constructor", { value: disabled("Function"), writable: false, configurable: false });
  const F = disabled("Function");
  F.prototype = Function.prototype; // `x instanceof Function` still works
  for (const [name, value] of [["Function", F], ["eval", disabled("eval")]] as const) {
    Object.defineProperty(g, name, { value, writable: false, configurable: false });
  }
  Object.defineProperty(Error, "prepareStackTrace", { value: undefined, writable: false, configurable: false });
  Object.defineProperty(Error, "captureStackTrace", { value: () => {}, writable: false, configurable: false });
  for (const name of REMOVED_GLOBALS) {
    if (name in g) {
      try {
        delete g[name];
      } catch {
        /* non-configurable: overwritten below */
      }
      if (name in g) Object.defineProperty(g, name, { value: undefined, writable: false, configurable: false });
    }
  }
  const silent = () => {};
  g.console = Object.freeze({ log: silent, info: silent, warn: silent, error: silent, debug: silent, trace: silent, dir: silent });
}
