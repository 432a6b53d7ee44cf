// Users' reward files load whatever their folder says: the matrix of extensions × package types (test/module-matrix.ts)
// through resolveReward, a relative "./r.ts#fn" against baseDir, a CommonJS-compiled `export default`, and a missing
// export named with the file and the exports it has. (test/package.test.ts runs the same matrix in a plain `node`
// process on the installed package.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveReward } from "../src/rewards/index.ts";
import { writeModuleMatrix } from "./module-matrix.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-modules-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const args = { prompts: ["p", "q"], completions: ["a", "b"], completionIds: [[1], [2]] };

test("reward files load for every extension in every package type", async () => {
  const cases = writeModuleMatrix(tmp);
  assert.equal(cases.length, 18);
  for (const c of cases) {
    const r = await resolveReward(c.spec);
    assert.equal(r.name, "fn");
    assert.deepEqual(await r.fn(args as never), [c.want, c.want], `${c.type} / .${c.ext}`);
  }
});

test("a relative reward path is taken from baseDir; default exports of CommonJS-compiled TypeScript are the author's", async () => {
  const d = join(tmp, "commonjs");
  writeFileSync(join(d, "named.ts"), "export default { name: 'mine', fn: ({ completions }: { completions: string[] }) => completions.map(() => 7) };\n");
  const r = await resolveReward("./named.ts", { baseDir: d });
  assert.equal(r.name, "mine");
  assert.deepEqual(await r.fn(args as never), [7, 7]);
});

test("a missing export names the file and the exports it has", async () => {
  for (const type of ["commonjs", "module"]) {
    const file = join(tmp, type, "r_ts.ts");
    await assert.rejects(resolveReward(`${file}#brevity`), (e: Error) => {
      assert.ok(e.message.includes(file), e.message);
      assert.match(e.message, /no export "brevity" \(exports: fn\)/);
      return true;
    });
  }
  await assert.rejects(resolveReward("./nothere.ts#x", { baseDir: tmp }), /cannot import .*nothere\.ts: the file does not exist/);
});
