// An export killed midway (SIGKILL while tensors are being written) leaves no file under the final name: the data
// goes to `<out>.tmp-<pid>` and is renamed only when complete.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { makeSynthModel } from "./export-synth.ts";

test("killing a GGUF export midway leaves nothing under the final name", async () => {
  const tmp = mkdtempSync(join(tmpdir(), "aha-export-kill-"));
  try {
    const dir = join(tmp, "model");
    makeSynthModel(dir, { hidden: 1024, inter: 4096, layers: 8, heads: 8, kvHeads: 4, vocab: 512 }, fixtureModels()[0], false);
    const out = join(tmp, "out", "model.gguf");
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "export-kill-child.ts"), dir, out], { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (b) => { stdout += String(b); });
    const exited = new Promise<void>((res) => child.on("exit", () => res()));
    // wait until the temp file has data in it, then kill
    const deadline = Date.now() + 60_000;
    let tmpFile: string | undefined;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      const names = existsSync(join(tmp, "out")) ? readdirSync(join(tmp, "out")) : [];
      tmpFile = names.find((n) => n.startsWith("model.gguf.tmp-"));
      if (tmpFile && stdout.includes("started") && statSync(join(tmp, "out", tmpFile)).size > 1e6) break;
    }
    assert.ok(tmpFile, "the export started writing its temp file");
    child.kill("SIGKILL");
    await exited;
    assert.ok(!stdout.includes("finished"), "killed before it finished");
    assert.ok(!existsSync(out), "no file under the final name");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
