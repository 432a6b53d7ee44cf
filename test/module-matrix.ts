// The user-module matrix: a reward file `r_<ext>.<ext>` for each extension users write (.ts .mts .cts .js .mjs .cjs;
// distinct names, since tsx maps an import of x.js to a sibling x.ts) in three folders: one with no package.json, one
// under "type": "commonjs" (what `npm init -y` writes) and one under "type": "module". Each file is written the way
// its folder expects: TypeScript with ES syntax and a type annotation (tsx compiles it as its folder says), .js with
// CommonJS syntax under "commonjs" and ES syntax elsewhere (with no package.json, Node detects the syntax), .mjs ES,
// .cjs CommonJS. Each returns its own constant, so a test sees which file answered. Used by test/user-modules.test.ts
// (in the suite's process) and test/package.test.ts (in a plain `node` process on the installed package, where no tsx
// hooks are registered).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const PACKAGE_TYPES = ["none", "commonjs", "module"] as const;
export const EXTENSIONS = ["ts", "mts", "cts", "js", "mjs", "cjs"] as const;

export interface ModuleCase {
  type: (typeof PACKAGE_TYPES)[number];
  ext: (typeof EXTENSIONS)[number];
  /** "<abs path>#fn" */
  spec: string;
  /** what fn returns for every completion */
  want: number;
}

const ES = (k: number, ts: boolean) =>
  ts ? `type Args = { completions: string[] };\nexport const fn = ({ completions }: Args): number[] => completions.map((): number => ${k});\n`
    : `export const fn = ({ completions }) => completions.map(() => ${k});\n`;
const CJS = (k: number) => `exports.fn = ({ completions }) => completions.map(() => ${k});\n`;

/** Write the matrix under `dir`; returns its cases. */
export function writeModuleMatrix(dir: string): ModuleCase[] {
  const cases: ModuleCase[] = [];
  PACKAGE_TYPES.forEach((type, ti) => {
    const d = join(dir, type);
    mkdirSync(d, { recursive: true });
    if (type !== "none") writeFileSync(join(d, "package.json"), JSON.stringify({ name: `m-${type}`, version: "1.0.0", type }));
    EXTENSIONS.forEach((ext, ei) => {
      const want = 10 * (ti + 1) + ei;
      const cjs = ext === "cjs" || (ext === "js" && type === "commonjs");
      writeFileSync(join(d, `r_${ext}.${ext}`), cjs ? CJS(want) : ES(want, ext.endsWith("ts")));
      cases.push({ type, ext, spec: `${join(d, `r_${ext}.${ext}`)}#fn`, want });
    });
  });
  return cases;
}
