// `npm run bench -- cpu-vs-llamacpp [bf16] [f32] [q4] [--rounds N] [--shape qwen2.5-0.5b|small-llama] [--tokens N]`:
// aha's CPU backend beside llama.cpp (node-llama-cpp's prebuilt CPU build, never compiled here) on the same weights,
// in one process, the same thread count each (AHA_NUM_THREADS, default 2): a random-weight model of a real shape
// (bench/random-model.ts, bf16) exported to GGUF by aha's own exporter, then
//   - one-sequence decode (tokens/s after the first token), 8-sequence decode (tokens/s of all 8), and the prefill of
//     a 512-token prompt up to its first token (tokens/s);
//   - for bf16 (aha's default CPU GEMM mode: bf16 activations, as llama.cpp's), f32 (the same values, widened at load:
//     aha's exact f32 products against llama.cpp's F32 GGUF), and 4-bit (aha's NF4 with double quantisation, its lm
//     head left bf16 as bitsandbytes leaves it, against llama.cpp's q4_0 GGUF of the same weights);
//   - the measurements interleaved (aha, llama.cpp, aha, …: a loaded machine slows both alike), the median of the
//     rounds reported with its spread, and the ratio of the medians;
//   - CPU-seconds per token of each (process.cpuUsage() around each measurement: both run in this process, so this
//     counts every thread of each, and a shared machine's other load does not); the tokens of the 16-token prompts
//     count in the decode figures' CPU time, alike for both;
//   - greedy agreement: how many of the first 16 greedy tokens of one prompt agree (bf16 and f32; random weights give
//     near-uniform logits, so a late difference is a near-tie, not an error).
// What it is not: a test (test/cpu-kernels.test.ts checks the kernels); figures from a loaded machine are noise.
import { copyFileSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { SHAPES, writeRandomModel } from "./random-model.ts";
import { FIXTURES } from "../test/fixtures.ts";

const argv = process.argv.slice(process.argv.indexOf("cpu-vs-llamacpp") + 1 || 2);
const opt = (name: string, def: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : def; };
const ROUNDS = Number(opt("--rounds", "3")), SHAPE = opt("--shape", "qwen2.5-0.5b"), TOKENS = Number(opt("--tokens", "48"));
const KINDS = ["bf16", "f32", "q4"].filter((k) => argv.includes(k));
const THREADS = Number((process.env.AHA_NUM_THREADS ??= "2")); // (before the addon's pool starts)

/** tokens/s of each measurement, and CPU-seconds per token (cpu.decode1 …) */
type Rates = { decode1: number; decode8: number; prefill: number; cpu: Record<Metric, number>; greedy: number[] };
type Metric = "decode1" | "decode8" | "prefill";

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const now = () => performance.now() / 1000;
const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
/** fn's result and the CPU-seconds (every thread of this process) it took */
async function cpuTimed<T>(fn: () => T | Promise<T>): Promise<[T, number]> {
  const c0 = cpuNow(), r = await fn();
  return [r, cpuNow() - c0];
}

export async function benchCpuVsLlamacpp(): Promise<void> {
  const { CausalLM } = await import("../src/models/model.ts");
  const { generate } = await import("../src/generate/generate.ts");
  const { exportModel } = await import("../src/export/index.ts");
  const { cpuAddon } = await import("../src/engine/native.ts");
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, progressLogs: false, maxThreads: THREADS });
  const shape = SHAPES[SHAPE];
  if (!shape) throw new Error(`--shape ${SHAPE}: one of ${Object.keys(SHAPES).join(", ")}`);
  const kinds = KINDS.length ? KINDS : ["bf16", "f32", "q4"];
  console.log(`cpu-vs-llamacpp: ${SHAPE} shape, random weights; ${THREADS} threads each; aha kernels ${cpuAddon().cpu_isa()}; ` +
    `${ROUNDS} interleaved rounds; load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  const dir = mkdtempSync(join(tmpdir(), "aha-vs-llama-"));
  try {
    writeRandomModel(dir, shape, 1, "BF16");
    // a byte-level BPE tokenizer for the GGUF (the export pads the vocabulary to the embedding's rows)
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(FIXTURES, "tiny-models", "qwen2", f), join(dir, f));
    const V = shape.vocab_size, P = 16;
    const prompt = (s: number, n: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 7919 + s * 104729) % (V - 3)));
    const rows: string[] = [];
    for (const kind of kinds) {
      const gguf = join(dir, `model-${kind}.gguf`);
      const type = kind === "q4" ? "q4_0" : kind;
      await exportModel({ model: dir, format: "gguf", type, out: gguf, modelfile: false, overwrite: true });
      const model = CausalLM.load(dir, kind === "f32" ? { dtype: "f32" } : kind === "q4" ? { quantization: { type: "nf4", doubleQuant: true, computeDtype: "bf16" } } : {});
      const lm = await llama.loadModel({ modelPath: gguf });
      const ctx1 = await lm.createContext({ contextSize: 1024, batchSize: 512, sequences: 1, threads: THREADS });
      const ctx8 = await lm.createContext({ contextSize: 8 * 128, batchSize: 512, sequences: 8, threads: THREADS });
      // aha: timestamps of the tokens as generate() accepts them
      const ahaDecode = (B: number): { rate: number; tokens: number[] } => {
        const t: number[] = [];
        const out = generate(model, Array.from({ length: B }, (_, b) => prompt(b, P)), { maxTokens: TOKENS, temperature: 0, logprobs: false, onToken: () => { t.push(now()); } });
        return { rate: (t.length - B) / (t[t.length - 1] - t[B - 1]), tokens: out[0].tokenIds };
      };
      const ahaPrefill = () => {
        let t1 = 0;
        const t0 = now();
        generate(model, [prompt(99, 512)], { maxTokens: 1, temperature: 0, logprobs: false, onToken: () => { t1 ||= now(); } });
        return 512 / (t1 - t0);
      };
      const llamaDecode = async (B: number): Promise<{ rate: number; tokens: number[] }> => {
        const ctx = B === 1 ? ctx1 : ctx8;
        const seqs = Array.from({ length: B }, () => ctx.getSequence());
        try {
          const stamps = await Promise.all(seqs.map(async (seq, b) => {
            const t: number[] = [], toks: number[] = [];
            for await (const tok of seq.evaluate(prompt(b, P) as never, { temperature: 0 })) {
              t.push(now());
              toks.push(tok as number);
              if (toks.length >= TOKENS) break;
            }
            return { t, toks };
          }));
          const first = Math.max(...stamps.map((s) => s.t[0])), last = Math.max(...stamps.map((s) => s.t[s.t.length - 1]));
          const n = stamps.reduce((a, s) => a + s.t.filter((x) => x > first).length, 0);
          return { rate: n / (last - first), tokens: stamps[0].toks };
        } finally {
          for (const s of seqs) s.dispose();
        }
      };
      const llamaPrefill = async () => {
        const seq = ctx1.getSequence();
        try {
          const t0 = now();
          for await (const _ of seq.evaluate(prompt(99, 512) as never, { temperature: 0 })) break;
          return 512 / (now() - t0);
        } finally {
          seq.dispose();
        }
      };
      const a: Rates[] = [], l: Rates[] = [];
      ahaDecode(1); // (warm-up: first touches of the weights, the graph capture)
      for (let r = 0; r < ROUNDS; r++) {
        const [ad1, cad1] = await cpuTimed(() => ahaDecode(1)), [ld1, cld1] = await cpuTimed(() => llamaDecode(1));
        const [ad8, cad8] = await cpuTimed(() => ahaDecode(8)), [ld8, cld8] = await cpuTimed(() => llamaDecode(8));
        const [ap, cap] = await cpuTimed(ahaPrefill), [lp, clp] = await cpuTimed(llamaPrefill);
        a.push({ decode1: ad1.rate, decode8: ad8.rate, prefill: ap, cpu: { decode1: cad1 / TOKENS, decode8: cad8 / (8 * TOKENS), prefill: cap / 512 }, greedy: ad1.tokens });
        l.push({ decode1: ld1.rate, decode8: ld8.rate, prefill: lp, cpu: { decode1: cld1 / TOKENS, decode8: cld8 / (8 * TOKENS), prefill: clp / 512 }, greedy: ld1.tokens });
      }
      const same = (() => { let i = 0; while (i < 16 && a[0].greedy[i] === l[0].greedy[i]) i++; return i; })();
      const bytes = statSync(gguf).size;
      for (const k of ["decode1", "decode8", "prefill"] as const) {
        const am = median(a.map((x) => x[k])), lmd = median(l.map((x) => x[k]));
        const ac = median(a.map((x) => x.cpu[k])) * 1e3, lc = median(l.map((x) => x.cpu[k])) * 1e3;
        const spread = (xs: Rates[]) => `${Math.min(...xs.map((x) => x[k])).toFixed(1)}–${Math.max(...xs.map((x) => x[k])).toFixed(1)}`;
        const what = { decode1: "one sequence, decode tok/s", decode8: "8 sequences, decode tok/s (all)", prefill: "prefill 512 tokens, tok/s" }[k];
        rows.push(`| ${what} | ${kind === "q4" ? "4-bit (aha NF4 / llama.cpp q4_0)" : kind} | ${am.toFixed(1)} (${spread(a)}) | ${lmd.toFixed(1)} (${spread(l)}) | ${(am / lmd).toFixed(2)}× | ${ac.toFixed(1)} / ${lc.toFixed(1)} | ${(lc / ac).toFixed(2)}× |`);
      }
      console.log(`${kind}: GGUF ${(bytes / 2 ** 20).toFixed(0)} MiB; greedy tokens equal for the first ${same} of 16${kind === "q4" ? " (different 4-bit formats)" : ""}`);
      await ctx1.dispose();
      await ctx8.dispose();
      await lm.dispose();
      for (const t of model.allWeights()) t.dispose();
      rmSync(gguf, { force: true });
    }
    console.log(`\n| what | weights | aha (min–max) | llama.cpp (min–max) | aha / llama.cpp | CPU-ms per token, aha / llama.cpp | tokens per CPU-second, aha / llama.cpp |\n| --- | --- | --- | --- | --- | --- | --- |\n${rows.join("\n")}`);
    console.log(`load average at the end ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await llama.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchCpuVsLlamacpp();
