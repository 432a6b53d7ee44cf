// Load bench of `aha serve` on loopback: 1, 8 and 64 concurrent streaming chat clients (the official openai client),
// each asking for a fixed number of tokens (ignore_eos), against a server started as its own process so its resident
// memory can be read from /proc. Prints per concurrency: every request completed without error, the tokens each
// client got and its tokens/s, the server's aggregate tokens/s, time to first token, and the ratio to one client
// (the baseline, measured in the same run), and the CPU time the server and the clients used (on a shared machine the
// wall-clock figures depend on the other load; tokens per server CPU second do not); then the 64-client round
// repeated, with the server's RSS after each.
//   node --import tsx bench/serve-load.ts [--model DIR] [--max-tokens 64] [--rounds 10] [--max-batch 64]
// Bounded: at most 64 clients, --max-tokens each, --rounds repeats, 10 minutes in all.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string, d: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : d; };
const model = arg("model", join(root, "assets", "tiny-arith"));
const maxTokens = Number(arg("max-tokens", "64")), rounds = Number(arg("rounds", "10")), maxBatch = arg("max-batch", "64");
const deadline = Date.now() + 10 * 60_000;

const server = spawn(process.execPath, [join(root, "bin", "aha.js"), "serve", "--model", model, "--port", "0", "--max-batch", maxBatch, "--quiet"], { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise<string>((ok, fail) => {
  let out = "";
  server.stdout!.on("data", (d) => { out += d; const m = /listening on (\S+)/.exec(out); if (m) ok(m[1]); });
  server.on("exit", (c) => fail(new Error(`aha serve exited ${c}`)));
});
/** CPU seconds the server process has used (utime + stime from /proc) */
const serverCpu = () => { const f = readFileSync(`/proc/${server.pid}/stat`, "utf8").split(") ")[1].split(" "); return (Number(f[11]) + Number(f[12])) / 100; };
const clientCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, "utf8"))![1]) / 1024;
const client = new OpenAI({ baseURL: url, apiKey: "none", maxRetries: 0, timeout: 300_000 });
const modelName = (await client.models.list()).data[0].id;

interface One { tokens: number; seconds: number; ttft: number; finish: string | null; error: string | null }

async function request(k: number): Promise<One> {
  const t0 = performance.now();
  let ttft = 0, tokens = 0, finish: string | null = null;
  try {
    const stream = await client.chat.completions.create({
      model: modelName, messages: [{ role: "user", content: `What is ${k} + ${2 * k + 1}?` }], max_tokens: maxTokens,
      temperature: 1, seed: k, stream: true, stream_options: { include_usage: true }, ignore_eos: true,
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    for await (const ch of stream) {
      if (!ttft && ch.choices[0]?.delta.content) ttft = performance.now() - t0;
      if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
      if (ch.usage) tokens = ch.usage.completion_tokens;
    }
    return { tokens, seconds: (performance.now() - t0) / 1000, ttft: ttft / 1000, finish, error: null };
  } catch (e) {
    return { tokens, seconds: (performance.now() - t0) / 1000, ttft: ttft / 1000, finish, error: String(e) };
  }
}

async function round(c: number): Promise<{ ok: boolean; aggregate: number; perClient: number[]; ttft: number; errors: number; wall: number; server: number; client: number }> {
  const t0 = performance.now(), s0 = serverCpu(), c0 = clientCpu();
  const res = await Promise.all(Array.from({ length: c }, (_, k) => request(k)));
  const wall = (performance.now() - t0) / 1000;
  const errors = res.filter((r) => r.error || r.finish !== "length" || r.tokens !== maxTokens).length;
  for (const r of res) if (r.error) console.error(`  error: ${r.error}`);
  const perClient = res.map((r) => r.tokens / r.seconds).sort((a, b) => a - b);
  return { ok: errors === 0, aggregate: res.reduce((a, r) => a + r.tokens, 0) / wall, perClient, ttft: Math.max(...res.map((r) => r.ttft)), errors, wall, server: serverCpu() - s0, client: clientCpu() - c0 };
}

const f = (x: number, d = 0) => x.toFixed(d);
try {
  await round(4); // warm-up (first captures, JIT)
  console.log(`aha serve load bench: ${modelName}, ${maxTokens} tokens per request, streaming, loopback, --max-batch ${maxBatch}`);
  console.log("clients | completed | errors | aggregate tok/s | per client tok/s (min / median / max) | max time to first token | × 1 client | wall s | server CPU s | client CPU s | tokens per server CPU s");
  let base = 0;
  for (const c of [1, 8, 64]) {
    const r = await round(c);
    if (c === 1) base = r.aggregate;
    const med = r.perClient[Math.floor(r.perClient.length / 2)];
    console.log(`${String(c).padStart(7)} | ${String(c - r.errors).padStart(9)} | ${String(r.errors).padStart(6)} | ${f(r.aggregate).padStart(15)} | ${f(r.perClient[0])} / ${f(med)} / ${f(r.perClient.at(-1)!)} | ${f(r.ttft * 1000)} ms | ${f(r.aggregate / base, 1)}× | ${f(r.wall, 1)} | ${f(r.server, 1)} | ${f(r.client, 1)} | ${f((c * maxTokens) / Math.max(r.server, 0.01))}`);
  }
  console.log(`64 clients, ${rounds} rounds: server RSS after each (MiB)`);
  const health = async () => (await (await fetch(url.replace(/\/v1$/, "/health"))).json()).memory;
  const engineMiB = async () => (await health()).engine_bytes / 2 ** 20, heapMiB = async () => (await health()).heap_bytes / 2 ** 20;
  const rss: number[] = [rssMiB()], engine: number[] = [await engineMiB()], heap: number[] = [await heapMiB()];
  let allOk = true;
  for (let i = 0; i < rounds && Date.now() < deadline; i++) {
    const r = await round(64);
    allOk &&= r.ok;
    rss.push(rssMiB());
    engine.push(await engineMiB());
    heap.push(await heapMiB());
  }
  const after = rss.slice(1), half = Math.floor(after.length / 2), mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
  console.log(`  start ${f(rss[0])} → ${after.map((x) => f(x)).join(", ")}`);
  console.log(`  range ${f(Math.min(...after))}–${f(Math.max(...after))} MiB; mean of the first ${half} rounds ${f(mean(after.slice(0, half)))}, of the last ${after.length - half} ${f(mean(after.slice(half)))}; every request completed: ${allOk ? "yes" : "NO"}`);
  console.log(`  engine buffers (/health) after each: ${engine.map((x) => f(x, 2)).join(", ")} MiB`);
  console.log(`  JavaScript heap used (/health) after each: ${heap.map((x) => f(x, 1)).join(", ")} MiB`);
} finally {
  server.kill("SIGTERM");
}
