// `npm run bench -- sandbox`: programs per second through the code_tests sandboxes, cold (a new pool: worker start
// and interpreter load included) and warm, for Python (Pyodide) and JavaScript (QuickJS), on the project's tasks
// (test/data/code-tasks.json, right solutions with their tests). Baseline in the same run: the same JavaScript
// programs run unsandboxed in this process's V8 (trusted code only), and the sandboxes on an empty program (their
// fixed cost per program).
import { availableParallelism } from "node:os";
import { readFileSync } from "node:fs";
import { extractCode } from "../src/rewards/builtins/code-tests.ts";
import { SandboxPool } from "../src/rewards/sandbox/pool.ts";

type Lang = "python" | "javascript";
const tasks = JSON.parse(readFileSync(new URL("../test/data/code-tasks.json", import.meta.url), "utf8")) as Record<Lang, { tests: string[]; right: string }>[];

async function rate(pool: SandboxPool, programs: { code: string; tests: string[] }[]): Promise<{ perSec: number; secs: number; bad: number }> {
  const t0 = performance.now();
  const rs = await Promise.all(programs.map((p) => pool.run(p.code, p.tests, 10_000)));
  const secs = (performance.now() - t0) / 1000;
  return { perSec: programs.length / secs, secs, bad: rs.filter((r) => r.outcome !== "passed").length };
}

function hostV8(programs: { code: string; tests: string[] }[]): number {
  const assert = Object.assign((c: unknown) => { if (!c) throw new Error("assertion failed"); }, { strictEqual: (a: unknown, b: unknown) => { if (a !== b) throw new Error("not equal"); } });
  const t0 = performance.now();
  for (const p of programs) new Function("assert", `${p.code}\n${p.tests.join("\n")}`)(assert);
  return programs.length / ((performance.now() - t0) / 1000);
}

export async function benchSandbox(): Promise<void> {
  const cores = availableParallelism();
  console.log(`\nsandbox programs/s (${cores} workers = cores; tasks: ${tasks.length} right solutions with their tests)`);
  for (const lang of ["javascript", "python"] as Lang[]) {
    const progs = (n: number) => Array.from({ length: n }, (_, i) => ({ code: extractCode(tasks[i % tasks.length]![lang].right, lang), tests: tasks[i % tasks.length]![lang].tests }));
    const nCold = lang === "python" ? 16 : 64, nWarm = lang === "python" ? 400 : 2000;
    const t0 = performance.now();
    const pool = new SandboxPool({ language: lang, memoryMb: 256 });
    const first = pool.run(progs(1)[0]!.code, progs(1)[0]!.tests, 10_000).then(() => (performance.now() - t0) / 1000);
    const cold = await rate(pool, progs(nCold - 1));
    const firstSecs = await first;
    const warm = await rate(pool, progs(nWarm));
    const empty = await rate(pool, Array.from({ length: nWarm }, () => ({ code: lang === "python" ? "pass" : ";", tests: [] as string[] })));
    await pool.close();
    const bad = cold.bad + warm.bad;
    console.log(`  ${lang.padEnd(10)} cold: first result after ${firstSecs.toFixed(2)} s, ${nCold} programs at ${(nCold / ((performance.now() - t0) / 1000 - warm.secs - empty.secs)).toFixed(1)}/s` +
      ` | warm: ${warm.perSec.toFixed(0)}/s (${nWarm} programs) | empty program: ${empty.perSec.toFixed(0)}/s${bad ? ` | ${bad} FAILED` : ""}`);
    if (lang === "javascript") {
      const v8 = hostV8(progs(nWarm));
      console.log(`  ${"".padEnd(10)} baseline: the same programs unsandboxed in this process's V8: ${v8.toFixed(0)}/s (sandbox warm = ${(warm.perSec / v8 * 100).toFixed(2)} % of it)`);
    }
  }
}
