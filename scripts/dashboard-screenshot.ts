// The README's dashboard screenshot: the default run (`aha train --dashboard`) opened in headless Chromium once it
// has trained a number of steps; writes docs/dashboard.png and stops the run.
// node --import tsx scripts/dashboard-screenshot.ts [steps=120] [out=docs/dashboard.png]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";

const root = fileURLToPath(new URL("..", import.meta.url));
const steps = Number(process.argv[2] ?? 120), outPng = process.argv[3] ?? join(root, "docs", "dashboard.png");
const tmp = mkdtempSync(join(tmpdir(), "aha-shot-"));
const child = spawn(process.execPath, [join(root, "bin", "aha.js"), "train", "--dashboard", "0", "--max-steps", "300", "--output-dir", join(tmp, "default")], { stdio: ["ignore", "inherit", "pipe"] });
let err = "";
const url = await new Promise<string>((ok, fail) => {
  child.stderr!.on("data", (d) => { err += d; process.stderr.write(d); const m = /dashboard at (\S+)/.exec(err); if (m) ok(m[1]); });
  child.on("exit", (c) => fail(new Error(`aha train exited ${c}`)));
});
const browser = await puppeteer.launch({ executablePath: process.env.AHA_CHROMIUM ?? "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", `--user-data-dir=${join(tmp, "profile")}`] });
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1380, height: 1240 });
  await page.goto(url);
  const step = () => page.evaluate(() => Number(document.querySelector("#steps-0")?.textContent ?? 0));
  while ((await step()) < steps) await new Promise((r) => setTimeout(r, 2000));
  await page.evaluate(() => { const s = document.getElementById("smooth") as HTMLInputElement; s.value = "0.6"; s.dispatchEvent(new Event("input")); });
  await new Promise((r) => setTimeout(r, 2500));
  writeFileSync(outPng, await page.screenshot()); // the charts and the newest completions
  process.stderr.write(`wrote ${outPng}\n`);
} finally {
  await browser.close();
  child.kill("SIGTERM");
  rmSync(tmp, { recursive: true, force: true });
}
