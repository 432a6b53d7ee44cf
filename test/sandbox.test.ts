// code_tests in both sandboxes: the project's programming tasks (test/data/code-tasks.json) with right, wrong,
// partly right and too slow solutions; then every escape attempt we know of, each written so that its test passes
// only if the attempt got out — so each must score 0, the process must live on, nothing may be written or connected
// to outside, and the sandbox must still pass a right solution afterwards. One pool per language for the file
// (Pyodide's cold start is seconds).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { closeSandboxes, codeTests, computeRewards, extractCode, rewardMetrics, type RewardArgs } from "../src/rewards/index.ts";

interface Solutions { tests: string[]; right: string; wrong: string; half?: { code: string; passes: number }; slow?: string }
const tasks = JSON.parse(readFileSync(new URL("./data/code-tasks.json", import.meta.url), "utf8")) as ({ name: string; prompt: string } & Record<"python" | "javascript", Solutions>)[];

const TIMEOUT = 3000;
const host = mkdtempSync(join(tmpdir(), "aha-sandbox-"));
const CANARY = join(host, "canary.txt");
const PWNED = join(host, "pwned");
const PACKAGE = resolve("package.json");
let server: Server;
let connections = 0;
let port = 0;

before(async () => {
  writeFileSync(CANARY, "canary");
  server = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});

after(async () => {
  await closeSandboxes();
  server.close();
  rmSync(host, { recursive: true, force: true });
});

function batch(completions: string[], tests: unknown[]): RewardArgs {
  return { prompts: completions.map(() => "p"), completions, completionIds: completions.map(() => []), tests };
}

test("extractCode: the last block in the language, else the last untagged block, else the whole text", () => {
  assert.equal(extractCode("a\n```python\nx = 1\n```\nb\n```python\nx = 2\n```", "python"), "x = 2\n");
  assert.equal(extractCode("```js\nlet a\n```\n```\nplain\n```", "python"), "plain\n");
  assert.equal(extractCode("```py\nx = 3\n```\n```js\ny\n```", "python"), "x = 3\n");
  assert.equal(extractCode("def f(): pass", "python"), "def f(): pass");
  assert.equal(extractCode("```javascript\nlet cut = 1", "javascript"), "let cut = 1"); // a truncated block
});

for (const language of ["python", "javascript"] as const) {
  test(`code_tests (${language}): right, wrong, partly right and too slow solutions`, async () => {
    const all = codeTests({ language, timeoutMs: TIMEOUT, name: "all" });
    const partial = codeTests({ language, timeoutMs: TIMEOUT, partial: true, name: "partial" });
    const completions: string[] = [], tests: unknown[] = [], want: { all: number | null; partial: number | null; outcome?: string }[] = [];
    const add = (c: string, t: unknown, w: (typeof want)[number]) => (completions.push(c), tests.push(t), want.push(w));
    for (const task of tasks) {
      const s = task[language];
      add(s.right, s.tests, { all: 1, partial: 1, outcome: "passed" });
      add(s.wrong, s.tests, { all: 0, partial: null, outcome: "failed" });
      if (s.half) add(s.half.code, s.tests, { all: 0, partial: s.half.passes / s.tests.length, outcome: "failed" });
      if (s.slow) add(s.slow, s.tests, { all: 0, partial: 0, outcome: "timeout" });
      add(extractCode(s.right, language), s.tests.join("\n"), { all: 1, partial: 1, outcome: "passed" }); // no fence; tests as one string
    }
    add("", tasks[0]![language].tests, { all: 0, partial: 0, outcome: "error" }); // no code
    add(tasks[0]![language].right, null, { all: null, partial: null }); // a row without tests
    add("```\n)(\n```", ["assert(1)"], { all: 0, partial: 0, outcome: "error" }); // syntax error
    const t0 = performance.now();
    const res = await computeRewards([all, partial], [1, 0], batch(completions, tests), { timeoutMs: 600_000 }); // (the cold start counts)
    const secs = (performance.now() - t0) / 1000;
    want.forEach((w, i) => {
      assert.equal(res.byName.all![i], w.all, `sample ${i} (all): ${completions[i]}`);
      if (w.partial !== null) assert.ok(Math.abs(res.byName.partial![i]! - w.partial) < 1e-12, `sample ${i} (partial) ${res.byName.partial![i]} ≠ ${w.partial}`);
      const d = res.details.all!.samples![i] as { outcome: string } | null;
      assert.equal(d?.outcome, w.outcome, `sample ${i} outcome: ${JSON.stringify(d)}`);
    });
    // wrong solutions pass some tests; partial credit says how many
    const m = rewardMetrics(res);
    const count = (o: string) => want.filter((w) => w.outcome === o).length;
    for (const o of ["passed", "failed", "timeout", "error"]) assert.equal(m[`rewards/all/${o}`], count(o), `count of ${o}`);
    assert.deepEqual(res.errors, []);
    console.log(`# ${language}: ${completions.length} programs in ${secs.toFixed(1)} s`);
  });
}

/** Python escape attempts: [what, code, a test that passes only if the attempt got out]. */
const pythonAttacks = (): [string, string, string][] => [
  ["read /etc/passwd", "data = open('/etc/passwd').read()", "assert 'root:' in data"],
  ["read the project's files", `data = open(${JSON.stringify(PACKAGE)}).read()`, "assert '\"name\": \"aha\"' in data"],
  ["read a host file", `data = open(${JSON.stringify(CANARY)}).read()`, "assert data == 'canary'"],
  ["write a host file", `open(${JSON.stringify(PWNED + "-write")}, 'w').write('x')`, `assert open(${JSON.stringify(CANARY)}).read() == 'canary'`],
  ["js.process", "import js\npid = js.process.pid", "assert pid > 0"],
  ["js.require('child_process')", `import js\njs.require('child_process').execSync('touch ${PWNED}-require')`, "assert True"],
  ["js globalThis", "import js\ng = js.globalThis.process", "assert g"],
  ["pyodide_js", `import pyodide_js\npyodide_js.mountNodeFS('/host', ${JSON.stringify(host)})`, "assert open('/host/canary.txt').read() == 'canary'"],
  ["pyodide.code.run_js", "from pyodide.code import run_js\npid = run_js('process.pid')", "assert pid > 0"],
  ["Function from a JsProxy's constructor", "from pyodide.ffi import to_js\np = to_js([]).constructor.constructor('return process')()", "assert p.pid > 0"],
  ["Function from a proxy of a Python function", "from pyodide.ffi import create_proxy\ng = create_proxy(lambda: 0).constructor.constructor('return globalThis')()", "assert g.process.pid > 0"],
  ["async Function constructor", "from pyodide.ffi import run_sync, to_js\nimport js\nf = to_js([]).constructor.constructor", "assert f('return 1')() == 1"],
  ["Error.prepareStackTrace / CallSite.getThis", [
    "from pyodide.ffi import to_js, create_proxy, JsException",
    "try:\n    to_js([]).at.call(None)\nexcept JsException as e:\n    E = e.js_error.constructor",
    "E.prepareStackTrace = create_proxy(lambda err, frames: [f.getThis() for f in frames])",
    "frames = E('x').stack",
  ].join("\n"), "assert any(getattr(t, 'process', None) for t in frames)"],
  ["JsProxies found through gc", "import gc\nfrom pyodide.ffi import JsProxy\nps = [o for o in gc.get_objects() if isinstance(o, JsProxy)]", "assert any(getattr(p, 'process', None) for p in ps)"],
  ["ctypes emscripten_run_script (eval)", `import ctypes\nctypes.CDLL(None).emscripten_run_script(b"require('fs').writeFileSync('${PWNED}-ctypes', 'x')")`, `assert open(${JSON.stringify(CANARY)}).read() == 'canary'`],
  ["os.system", `import os\nrc = os.system('touch ${PWNED}-system')`, "assert rc == 0"],
  ["subprocess", `import subprocess\nsubprocess.run(['touch', '${PWNED}-subprocess'], check=True)`, "assert True"],
  ["socket to the host", `import socket\ns = socket.create_connection(('127.0.0.1', ${port}), timeout=2)\ns.sendall(b'x')`, "assert True"],
  ["urllib to the host", `import urllib.request\nurllib.request.urlopen('http://127.0.0.1:${port}/', timeout=2)`, "assert True"],
  ["environment", "import os\nkeys = dict(os.environ)", "assert 'PATH' in keys and keys['PATH'] != '/' or 'OPENAI_API_KEY' in keys or 'AHA_POISON' in keys"],
  ["threads", "import threading\nt = threading.Thread(target=lambda: None)\nt.start()", "assert True"],
  ["processes", "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()", "assert True"],
  ["os._exit", "import os\nos._exit(0)", "assert True"],
  ["infinite loop", "while True:\n    pass", "assert True"],
  ["sleep past the limit", "import time\ntime.sleep(60)", "assert True"],
  ["deep recursion", "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1) + 1\nf(0)", "assert True"],
  ["memory bomb (string)", "x = 'a' * (2 ** 30)", "assert True"],
  ["memory bomb (lists)", "x = []\nwhile True:\n    x.append([0] * 100000)", "assert True"],
  ["huge output", "for _ in range(100000):\n    print('y' * 100)", "assert True"],
  ["huge output at once", "print('x' * 10**7)", "assert True"],
];

/** JavaScript escape attempts, as above. */
const jsAttacks = (): [string, string, string][] => [
  ["process", "const p = process;", "assert(p.pid > 0)"],
  ["require('fs')", `require('fs').writeFileSync('${PWNED}-js-require', 'x')`, "assert(true)"],
  ["Function('return process')()", "const p = Function('return process')();", "assert(p.pid > 0)"],
  ["constructor chain to the global object", "const g = (function () {}).constructor('return this')();", "assert(g.process.pid > 0)"],
  ["prototype chain", "const g = ({}).__proto__.constructor.constructor('return globalThis')();", "assert(typeof g.require === 'function')"],
  ["async function constructor", "var got; Object.getPrototypeOf(async function () {}).constructor('return process')().then((p) => { got = p; });", "assert(got.pid > 0)"],
  ["dynamic import", "var fs; import('fs').then((m) => { fs = m; });", "assert(typeof fs.readFileSync === 'function')"],
  ["quickjs std/os modules", "var os; import('os').then((m) => { os = m; });", "assert(typeof os.exec === 'function')"],
  ["Error.prepareStackTrace", "Error.prepareStackTrace = (e, s) => s.map((f) => f.getThis()); const st = new Error('x').stack;", "assert(st.some((t) => t && t.process))"],
  ["spawn a worker", "const w = new Worker('data:text/javascript,1');", "assert(true)"],
  ["timers", "setTimeout(() => {}, 1);", "assert(true)"],
  ["infinite loop", "while (true) {}", "assert(true)"],
  ["endless promise jobs", "(async () => { for (;;) await 0; })();", "assert(true)"],
  ["Atomics.wait forever", "Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);", "assert(true)"],
  ["deep recursion", "function f(n) { return f(n + 1) + 1; } f(0);", "assert(true)"],
  ["memory bomb (filled arrays)", "const a = []; for (;;) a.push(new Array(1e6).fill(1.5));", "assert(true)"],
  ["memory bomb (one filled array)", "const a = new Array(2 ** 28).fill(0);", "assert(true)"],
  ["memory bomb (strings)", "let s = 'a'; for (;;) s += s;", "assert(true)"],
  ["memory bomb (repeat)", "const s = 'x'.repeat(2 ** 29);", "assert(true)"],
  ["huge output", "for (let i = 0; i < 1e5; i++) console.log('y'.repeat(100));", "assert(true)"],
];

for (const language of ["python", "javascript"] as const) {
  test(`code_tests (${language}): every escape attempt scores 0, the process lives on, nothing gets out`, async () => {
    const attacks = language === "python" ? pythonAttacks() : jsAttacks();
    const fence = language === "python" ? "python" : "js";
    const reward = codeTests({ language, timeoutMs: TIMEOUT, memoryMb: 128, name: "sandboxed" });
    const envBefore = JSON.stringify(process.env);
    const res = await computeRewards([reward], undefined, batch(attacks.map(([, code]) => `\`\`\`${fence}\n${code}\n\`\`\``), attacks.map(([, , t]) => [t])), { onError: "stop", timeoutMs: 600_000 });
    attacks.forEach(([what], i) => {
      const d = res.details.sandboxed!.samples![i] as { outcome: string; message?: string };
      assert.equal(res.total[i], 0, `${what}: reward ${res.total[i]} (${JSON.stringify(d)})`);
      assert.notEqual(d.outcome, "passed", what);
    });
    // nothing written or connected to outside, the environment untouched
    assert.deepEqual(readdirSync(host), ["canary.txt"], "files appeared beside the canary");
    assert.equal(readFileSync(CANARY, "utf8"), "canary");
    assert.equal(connections, 0, "a sandboxed program connected to the host");
    assert.equal(JSON.stringify(process.env), envBefore);
    assert.ok(!existsSync(`${PWNED}-system`) && !existsSync(`${PWNED}-js-require`));
    // and the sandbox still works
    const s = tasks[0]![language];
    const again = await computeRewards([reward], undefined, batch([s.right, s.wrong], [s.tests, s.tests]), { timeoutMs: 600_000 });
    assert.deepEqual(again.total, [1, 0]);
    const outcomes = attacks.map(([what], i) => {
      const d = res.details.sandboxed!.samples![i] as { outcome: string; ms: number; message?: string };
      return `${what}: ${d.outcome} ${d.ms} ms (${d.message ?? ""})`;
    });
    console.log(`# ${language}:\n# ${outcomes.join("\n# ")}`);
  });
}
