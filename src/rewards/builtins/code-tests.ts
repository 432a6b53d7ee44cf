// code_tests: run the model's code against the row's tests in a sandbox (Python in Pyodide, JavaScript in QuickJS).
// Is: the code — from the completion's text (a conversation's last assistant message), the last fenced block in the
// language (```python / ```py, ```javascript / ```js), else the last untagged block, else the whole text — run in a
// sandbox worker, then the row's tests (a string: one test; a list: one test each) in the same namespace. Reward 1
// when every test passes (partial: the fraction that pass), 0 on failure, timeout, error or no code; null for a row
// without tests. Each sample's outcome goes to completions.jsonl (details) and the batch's counts of passed / failed /
// timeout / error to the metrics.
// Is not: a grader of output printed to stdout (tests are assertions), nor a guard against programs that fake
// equality (an object whose __eq__ is always true passes `assert f(x) == y`; write tests that check types too).
import { sandboxPool, type SandboxPool } from "../sandbox/pool.ts";
import type { JobResult, SandboxLanguage, SandboxOutcome } from "../sandbox/protocol.ts";
import { completionText, type NamedReward, type RewardArgs, type RewardValues, withDetails } from "../types.ts";

export interface CodeTestsOptions {
  language: SandboxLanguage;
  /** Dataset column with each row's tests: a string, or a list of statements (assert …). Default "tests". */
  testsColumn?: string;
  /** Wall-clock limit of one program with its tests, in ms. Default 5000. */
  timeoutMs?: number;
  /** Memory cap of each sandbox worker, in MiB. Default 256. */
  memoryMb?: number;
  /** Reward the fraction of tests that pass instead of all-or-nothing. Default false. */
  partial?: boolean;
  name?: string;
  /** A pool to use instead of the process-wide one for this language and memory cap. */
  pool?: SandboxPool;
}

const TAGS: Record<SandboxLanguage, string[]> = {
  python: ["python", "py", "python3"],
  javascript: ["javascript", "js", "node", "mjs", "cjs", "ecmascript"],
};

/** The code to run from a completion (see the header). */
export function extractCode(completion: string, language: SandboxLanguage): string {
  const fence = /```[ \t]*([\w+.-]*)[^\n]*\n([\s\S]*?)(?:```|$)/g;
  let tagged: string | null = null;
  let untagged: string | null = null;
  for (const m of completion.matchAll(fence)) {
    const tag = m[1]!.toLowerCase();
    if (TAGS[language].includes(tag)) tagged = m[2]!;
    else if (tag === "") untagged = m[2]!;
  }
  return tagged ?? untagged ?? completion;
}

/** A row's tests as a list (null: none given). */
export function testList(v: unknown, column: string): string[] | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "string") return v.trim() ? [v] : null;
  if (Array.isArray(v) && v.every((t) => typeof t === "string")) return v.length ? (v as string[]) : null;
  throw new Error(`code_tests: column "${column}" must hold a string or a list of strings, got ${JSON.stringify(v).slice(0, 80)}`);
}

export function codeTests(opts: CodeTestsOptions): NamedReward {
  const { language, testsColumn = "tests", timeoutMs = 5000, memoryMb = 256, partial = false } = opts;
  if (!TAGS[language]) throw new Error(`code_tests: language must be "python" or "javascript", got ${JSON.stringify(language)}`);
  if (!(timeoutMs > 0)) throw new Error(`code_tests: timeout_ms must be > 0 (got ${timeoutMs})`);
  const name = opts.name ?? `code_tests/${language}`;
  // the workers start now: the interpreters load while the model loads and the first rollout generates
  (opts.pool ?? sandboxPool(language, memoryMb)).prestart();
  const fn = async (args: RewardArgs): Promise<RewardValues> => {
    const col = args[testsColumn];
    if (!Array.isArray(col)) throw new Error(`${name} needs a "${testsColumn}" column in the dataset (columns: ${Object.keys(args).join(", ")})`);
    const pool = opts.pool ?? sandboxPool(language, memoryMb); // (a new one after closeSandboxes())
    const results = await Promise.all(args.completions.map(async (c, i): Promise<JobResult | null> => {
      const tests = testList(col[i], testsColumn);
      if (tests === null) return null;
      const code = extractCode(completionText(c), language);
      if (!code.trim()) return { id: 0, outcome: "error", passed: 0, total: tests.length, message: "no code" };
      return pool.run(code, tests, timeoutMs);
    }));
    const values = results.map((r) => (r === null ? null : partial ? r.passed / r.total : r.outcome === "passed" ? 1 : 0));
    const counts: Record<SandboxOutcome, number> = { passed: 0, failed: 0, timeout: 0, error: 0 };
    for (const r of results) if (r) counts[r.outcome]++;
    return withDetails(values, {
      samples: results.map((r) => r && { outcome: r.outcome, passed: r.passed, total: r.total, ...(r.message ? { message: r.message } : {}), ...(r.ms !== undefined ? { ms: r.ms } : {}) }),
      counts,
    });
  };
  return { name, fn };
}
