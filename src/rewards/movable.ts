// Can a reward function run in a worker thread? A function object cannot be sent to another thread, but its source
// can, when it uses nothing but its arguments and the language's globals. This parses the source (acorn) and finds
// its free variables (eslint-scope): none beyond globals, and the source is compiled again inside the worker.
// Is: the decision and the code to send. Is not: a sandbox — the moved function runs with the process's rights.
// Simplifies: a name that is a global here (Math, JSON, fetch, …) is taken to mean the global, even if the function's
// module shadows it; esbuild's keepNames helper `__name` is allowed (the worker defines it).
import { parse, type Node } from "acorn";
import { analyze } from "eslint-scope";

export type Movable = { code: string } | { reason: string };

const parseOpts = { ecmaVersion: "latest", sourceType: "module", ranges: true } as const;

/** The code of an expression that evaluates to `fn` in a fresh scope, or why there is none. */
export function movableSource(fn: (...args: never[]) => unknown): Movable {
  const src = Function.prototype.toString.call(fn);
  if (/\{\s*\[native code\]\s*\}$/.test(src)) return { reason: "it is a native or bound function" };
  // an arrow or function expression parses as is; a method (`fn(args) { … }`) as the member of an object literal
  const forms = [`(${src})`, `Object.values({${src}})[0]`];
  for (const code of forms) {
    let ast: Node;
    try {
      ast = parse(code, parseOpts);
    } catch {
      continue;
    }
    const scope = analyze(ast as never, { ecmaVersion: 2022, sourceType: "module" });
    const free = [...new Set(scope.globalScope!.through.map((r) => r.identifier.name))]
      .filter((n) => !(n in globalThis) && n !== "__name");
    if (free.length) return { reason: `it uses ${free.map((n) => `\`${n}\``).join(", ")} from around it` };
    if (/\bsuper\b/.test(src)) return { reason: "it uses `super`" };
    return { code };
  }
  return { reason: "its source does not parse as a function" };
}
