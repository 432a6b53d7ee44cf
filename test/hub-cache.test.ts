// Hugging Face hub ids resolved offline from the hub cache, in the layout huggingface_hub writes: a fixture model
// copied into blobs/ (named by content hash) and linked from snapshots/<commit>/ by relative symlinks, refs/main
// holding the commit. Checks: the id loads the same weights and tokenizer as the folder (logits equal), through
// HF_HOME and HF_HUB_CACHE (which wins), `revision` as a tag, a full commit hash and a prefix, `aha generate --model
// <id>`, `aha serve --model <id> --revision` (served under the id's name), a dataset by id with its configuration sub-folder and Parquet files, and the error when the id is absent: it
// lists every place looked in and says that aha never downloads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parquetWriteBuffer } from "hyparquet-writer";
import { CausalLM } from "../src/models/model.ts";
import { loadTokenizer } from "../src/tokenize/index.ts";
import { loadDataset } from "../src/data/index.ts";
import { hubCacheDirs, resolveHubPath } from "../src/hub/cache.ts";
import { noGrad, scope } from "../src/engine/index.ts";
import { fixtureModels } from "./fixtures.ts";
import { spawnServe } from "./serve-process.ts";

const tmp = mkdtempSync(join(tmpdir(), "aha-hub-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const bin = join(fileURLToPath(new URL("..", import.meta.url)), "bin", "aha.js");
const model = fixtureModels()[0];

/** Put `files` (name → source path or contents) into <cache>/<folder> as commit `commit`, the way huggingface_hub does. */
function cacheRepo(cache: string, folder: string, commit: string, files: Record<string, string | Buffer>, refs: string[]): string {
  const repo = join(cache, folder);
  const snap = join(repo, "snapshots", commit);
  mkdirSync(join(repo, "blobs"), { recursive: true });
  for (const [name, src] of Object.entries(files)) {
    const data = typeof src === "string" ? readFileSync(src) : src;
    const blob = join(repo, "blobs", createHash("sha256").update(data).digest("hex"));
    writeFileSync(blob, data);
    mkdirSync(join(snap, name, ".."), { recursive: true });
    symlinkSync(relative(join(snap, name, ".."), blob), join(snap, name));
  }
  mkdirSync(join(repo, "refs"), { recursive: true });
  for (const r of refs) writeFileSync(join(repo, "refs", r), commit);
  return snap;
}

const COMMIT = "a".repeat(8) + "0123456789abcdef0123456789abcdef", V2 = "b".repeat(8) + "0123456789abcdef0123456789abcdef";
const modelFiles = () => Object.fromEntries(readdirSync(model).filter((n) => statSync(join(model, n)).isFile()).map((n) => [n, join(model, n)]));

/** Run f (sync or async) with these environment variables set (undefined: unset), then put them back. */
function withEnv<T>(env: Record<string, string | undefined>, f: () => T): T {
  const old = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const set = (e: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(e)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  };
  set(env);
  let r: T;
  try {
    r = f();
  } catch (e) {
    set(old);
    throw e;
  }
  if (r instanceof Promise) return r.finally(() => set(old)) as T;
  set(old);
  return r;
}

const logits = (m: CausalLM, ids: number[]) => noGrad(() => scope(() => m.logits(m.forward(Int32Array.from(ids), 1, ids.length)).f32()));

test("a model id resolves through HF_HOME's hub cache (symlinked snapshot) and loads the same model", () => {
  const home = join(tmp, "hf-home");
  const snap = cacheRepo(join(home, "hub"), "models--tiny--model", COMMIT, modelFiles(), ["main"]);
  assert.ok(lstatSync(join(snap, "config.json")).isSymbolicLink());
  // a second revision, tagged v2 (one more file, so its snapshot is its own)
  const files = { ...modelFiles(), "README.md": Buffer.from("revision 2\n") };
  cacheRepo(join(home, "hub"), "models--tiny--model", V2, files, ["v2"]);
  withEnv({ HF_HOME: home, HF_HUB_CACHE: undefined }, () => {
    assert.equal(resolveHubPath("tiny/model"), snap);
    const a = CausalLM.load("tiny/model"), b = CausalLM.load(model);
    const ids = [1, 2, 3, 4, 5];
    assert.deepEqual(logits(a, ids), logits(b, ids));
    assert.deepEqual(loadTokenizer("tiny/model").encode("hello world"), loadTokenizer(model).encode("hello world"));
    const v2 = join(home, "hub", "models--tiny--model", "snapshots", V2);
    for (const rev of ["v2", V2, V2.slice(0, 10)]) assert.equal(resolveHubPath("tiny/model", { revision: rev }), v2, rev);
    assert.equal(resolveHubPath("tiny/model", { revision: "main" }), snap);
    assert.throws(() => resolveHubPath("tiny/model", { revision: "v3" }), /no revision "v3" \(refs: main, v2; snapshots: /);
    // HF_HUB_CACHE comes first
    const other = join(tmp, "hub-cache");
    const snap2 = cacheRepo(other, "models--tiny--model", V2, files, ["main"]);
    withEnv({ HF_HUB_CACHE: other }, () => assert.equal(resolveHubPath("tiny/model"), snap2));
    // a local folder wins over the cache
    assert.equal(resolveHubPath(model), model);
  });
});

test("aha generate --model <hub id> with HF_HOME set", () => {
  const home = join(tmp, "hf-home");
  const r = spawnSync(process.execPath, [bin, "generate", "--model", "tiny/model", "--prompt-ids", "1,2,3", "--max-tokens", "3", "--temperature", "0", "--json"],
    { encoding: "utf8", env: { ...process.env, HF_HOME: home, HF_HUB_CACHE: "" } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim().split("\n")[0]).token_ids.length > 0, true);
});

test("aha serve --model <hub id> --revision v2 serves that snapshot under the id's name", async () => {
  const home = join(tmp, "hf-home");
  const { child, url } = await spawnServe(["--model", "tiny/model", "--revision", "v2"], { ...process.env, HF_HOME: home, HF_HUB_CACHE: "" });
  try {
    const models = (await (await fetch(`${url}/models`)).json()) as { data: { id: string }[] };
    assert.deepEqual(models.data.map((m) => m.id), ["tiny/model"]);
  } finally {
    child.kill("SIGTERM");
  }
  // a revision that is not in the cache is the resolver's error, before any loading
  const r = spawnSync(process.execPath, [bin, "serve", "--model", "tiny/model", "--revision", "v3", "--port", "0"],
    { encoding: "utf8", env: { ...process.env, HF_HOME: home, HF_HUB_CACHE: "" } });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /no revision "v3"/);
});

test("an absent id is an error listing every place looked in, and saying that aha never downloads", () => {
  const home = join(tmp, "empty-home"), hub = join(tmp, "empty-hub"), xdg = join(tmp, "xdg");
  withEnv({ HF_HOME: home, HF_HUB_CACHE: hub, XDG_CACHE_HOME: xdg }, () => {
    assert.deepEqual(hubCacheDirs(), [hub, join(home, "hub"), join(xdg, "huggingface", "hub")]);
    assert.throws(() => CausalLM.load("Qwen/Qwen2.5-0.5B-Instruct"), (e: Error) => {
      for (const place of [join(hub, "models--Qwen--Qwen2.5-0.5B-Instruct"), join(home, "hub", "models--Qwen--Qwen2.5-0.5B-Instruct"),
        join(xdg, "huggingface", "hub", "models--Qwen--Qwen2.5-0.5B-Instruct")]) assert.ok(e.message.includes(place), `${place} not in:\n${e.message}`);
      assert.match(e.message, /local path "Qwen\/Qwen2.5-0.5B-Instruct": no such file or folder/);
      assert.match(e.message, /aha never downloads/);
      return true;
    });
  });
});

test("a dataset id resolves to its snapshot; its configuration's Parquet files are read", async () => {
  const home = join(tmp, "hf-home");
  const parquet = (n: number) => Buffer.from(parquetWriteBuffer({ columnData: [
    { name: "question", data: Array.from({ length: n }, (_, i) => `q${i}`), type: "STRING" },
    { name: "answer", data: Array.from({ length: n }, (_, i) => `#### ${i}`), type: "STRING" },
  ] }));
  cacheRepo(join(home, "hub"), "datasets--tiny--gsm", COMMIT, {
    "main/train-00000-of-00001.parquet": parquet(5), "main/test-00000-of-00001.parquet": parquet(2), "socratic/train-00000-of-00001.parquet": parquet(3),
  }, ["main"]);
  await withEnv({ HF_HOME: home, HF_HUB_CACHE: undefined }, async () => {
    const rows = await loadDataset({ path: "tiny/gsm", name: "main" });
    assert.equal(rows.length, 5);
    assert.deepEqual(rows[4], { question: "q4", answer: "#### 4" });
    assert.equal((await loadDataset({ path: "tiny/gsm", name: "main", split: "test" })).length, 2);
    assert.equal((await loadDataset({ path: "tiny/gsm", name: "socratic" })).length, 3);
    await assert.rejects(loadDataset({ path: "tiny/gsm" }), /configurations main, socratic: pick one with dataset\.name/);
    await assert.rejects(loadDataset({ path: "tiny/nothere" }), /datasets--tiny--nothere: not there[\s\S]*aha never downloads/);
  });
});
