// The training dashboard in a real browser (Debian's chromium driven by puppeteer-core): during an `aha train
// --dashboard` run the page shows new steps in its curves and its completions table; reward.svg is rewritten while
// the run trains; an old run (no run_config.json, none of the newer metrics) opens beside it. Also the run-folder
// reader on its own: complete lines only, a file that shrank starts over.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixtureModels } from "./fixtures.ts";
import { readMetrics, tailCompletions } from "../src/dashboard/run-files.ts";
import { startDashboard } from "../src/dashboard/server.ts";

const bin = join(fileURLToPath(new URL("..", import.meta.url)), "bin", "aha.js");
const tmp = mkdtempSync(join(tmpdir(), "aha-dash-"));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
});
const CHROMIUM = process.env.AHA_CHROMIUM ?? "/usr/bin/chromium";
/** The flags the project's browser tests run Chromium with (offline, no first-run work, a fresh profile). */
const chromiumArgs = (profile: string) => ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", `--user-data-dir=${profile}`];

test("dashboard run files: metrics after an offset, complete lines only; a shrunk file starts over; the newest completions", () => {
  const d = join(tmp, "files");
  mkdirSync(d);
  writeFileSync(join(d, "metrics.jsonl"), '{"step":1,"reward":0.5}\n{"step":2,"rew');
  const a = readMetrics(d, 0);
  assert.deepEqual(a.rows, [{ step: 1, reward: 0.5 }]);
  appendFileSync(join(d, "metrics.jsonl"), 'ard":0.7}\n{"step":3}\n');
  const b = readMetrics(d, a.offset);
  assert.deepEqual(b.rows, [{ step: 2, reward: 0.7 }, { step: 3 }]);
  assert.equal(b.reset, false);
  writeFileSync(join(d, "metrics.jsonl"), '{"step":1}\n');
  const c = readMetrics(d, b.offset);
  assert.equal(c.reset, true);
  assert.deepEqual(c.rows, [{ step: 1 }]);
  writeFileSync(join(d, "completions.jsonl"), Array.from({ length: 50 }, (_, i) => JSON.stringify({ step: i, completion: "x".repeat(i) })).join("\n") + "\n");
  assert.deepEqual(tailCompletions(d, 3).map((r) => r.step), [47, 48, 49]);
  assert.deepEqual(tailCompletions(d, 2, 200).map((r) => r.step), [48, 49]); // read from the end only
  assert.deepEqual(readMetrics(join(tmp, "nowhere"), 0).rows, []);
});

test("the dashboard in headless Chromium during a training run: new steps in the curves and the completions", { skip: existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`, timeout: 180_000 }, async () => {
  const run = join(tmp, "run");
  mkdirSync(run);
  writeFileSync(join(run, "data.jsonl"), Array.from({ length: 64 }, (_, i) => JSON.stringify({ prompt: `question ${i}: what is ${i} + ${i}?`, answer: String(2 * i) })).join("\n") + "\n");
  writeFileSync(join(run, "cfg.yaml"), [
    `model: ${fixtureModels()[0]}`, "dataset: { path: ./data.jsonl }",
    "reward_funcs:", '  - { type: regex, pattern: "[0-9]", name: digits }', "  - { type: length_penalty, target: 6, penalty_per: 0.05, name: brevity }",
    "num_generations: 4", "per_device_train_batch_size: 8", "max_completion_length: 16", "learning_rate: 0.01", "beta: 0.04",
    "max_steps: 100000", "log_completions: 3", "output_dir: ./out", ""].join("\n"));
  const out = join(run, "out");
  const child = spawn(process.execPath, [bin, "train", join(run, "cfg.yaml"), "--dashboard", "0"], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let err = "";
  const url = await new Promise<string>((ok, fail) => {
    child.stderr!.on("data", (d) => { err += d; const m = /dashboard at (\S+)/.exec(err); if (m) ok(m[1]); });
    child.on("exit", (c) => fail(new Error(`aha train exited ${c}: ${err}`)));
  });
  const { default: puppeteer } = await import("puppeteer-core");
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: chromiumArgs(join(tmp, "profile")) });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    await page.goto(url);
    type Seen = { step: number; points: number; newest: number; charts: string[]; series: string[]; rows: number; config: string };
    const seen = () => page.evaluate((): Seen => {
      const w = window as unknown as { aha: { charts: Record<string, { data: number[][]; plot: { series: { label: string }[] } }> } };
      const r = w.aha.charts.reward;
      const rows = document.querySelectorAll("#completions tr[data-step]");
      return {
        step: Number(document.querySelector("#steps-0")?.textContent ?? 0),
        points: r ? r.data[0].length : 0,
        newest: rows.length ? Number(rows[0].getAttribute("data-step")) : 0,
        charts: Object.keys(w.aha.charts),
        series: r ? r.plot.series.map((s) => s.label) : [],
        rows: rows.length,
        config: document.querySelector("#config")?.textContent ?? "",
      };
    });
    await page.waitForFunction(() => Number(document.querySelector("#steps-0")?.textContent ?? 0) >= 3, { timeout: 60_000 });
    const first = await seen();
    assert.ok(existsSync(join(out, "reward.svg")), "reward.svg is written while the run trains");
    const svgTime = statSync(join(out, "reward.svg")).mtimeMs;
    await page.waitForFunction((s: number) => Number(document.querySelector("#steps-0")?.textContent ?? 0) >= s + 5, { timeout: 60_000 }, first.step);
    await new Promise((r) => setTimeout(r, 2000)); // one more poll for the table
    const later = await seen();
    assert.ok(later.points > first.points, `reward curve points ${first.points} → ${later.points}`);
    assert.ok(later.newest > first.newest, `newest completion step ${first.newest} → ${later.newest}`);
    assert.ok(later.rows >= 3);
    for (const c of ["reward", "loss", "kl", "entropy", "length", "clip", "grad_norm", "step_time", "tokens_per_second", "memory"]) assert.ok(later.charts.includes(c), `chart ${c}`);
    assert.deepEqual(later.series, ["step", "reward", "rewards/brevity/mean", "rewards/digits/mean"]);
    assert.match(later.config, /learning_rate/);
    assert.ok(statSync(join(out, "reward.svg")).mtimeMs > svgTime, "reward.svg rewritten at later steps");
    // the smoothing slider: same points, a smoother curve
    const curve = () => page.evaluate(() => (window as unknown as { aha: { charts: Record<string, { data: (number | null)[][] }> } }).aha.charts.reward.data[1].slice(0, 8) as number[]);
    const raw = await curve();
    await page.evaluate(() => { const s = document.getElementById("smooth") as HTMLInputElement; s.value = "0.9"; s.dispatchEvent(new Event("input")); });
    const smooth = await curve();
    const tv = (ys: number[]) => ys.slice(1).reduce((a, y, i) => a + Math.abs(y - ys[i]), 0);
    assert.equal(smooth.length, raw.length);
    assert.equal(smooth[0], raw[0]);
    assert.ok(tv(smooth) < tv(raw), `total variation ${tv(raw)} → ${tv(smooth)}`);
    const png = await page.screenshot({ fullPage: true });
    writeFileSync(join(tmp, "dashboard.png"), png);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.ok(png.length > 30_000, `screenshot of ${png.length} bytes`);
    child.kill("SIGTERM");

    // an old run (no run_config.json, no tokens/s or memory metrics) beside it, from `aha dashboard`'s server
    const old = join(tmp, "old");
    cpSync(out, old, { recursive: true, filter: (p) => !p.includes("checkpoint") });
    rmSync(join(old, "run_config.json"));
    writeFileSync(join(old, "metrics.jsonl"), readFileSync(join(old, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => {
      const m = JSON.parse(l);
      for (const k of Object.keys(m)) if (k === "tokens_per_second" || k.startsWith("memory/")) delete m[k];
      return JSON.stringify(m);
    }).join("\n") + "\n");
    const dash = await startDashboard({ runs: [out, old], port: 0 });
    try {
      await page.goto(dash.url);
      await page.waitForFunction(() => (window as unknown as { aha: { polls: number } }).aha.polls > 0);
      const both = await page.evaluate(() => {
        const w = window as unknown as { aha: { charts: Record<string, { plot: { series: { label: string }[] } }> } };
        return { runs: document.querySelectorAll("#runs .run").length, tps: w.aha.charts.tokens_per_second.plot.series.length, memory: w.aha.charts.memory.plot.series.length };
      });
      assert.equal(both.runs, 2);
      assert.equal(both.tps, 3, "tokens/s derived for the old run from num_tokens and step_time");
      assert.equal(both.memory, 4, "memory curves for the new run only");
    } finally {
      await dash.close();
    }
  } finally {
    await browser.close();
  }
});
