// GPU benchmark: a GRPO train step and KV-cache decode on a random-weight model of Qwen2.5-0.5B or -1.5B shape (bf16 weights,
// tied embeddings, QKV bias), LoRA r=16 on every linear layer, 8 prompts × 8 generations of 128 prompt + 256
// completion tokens, in micro-batches (gradient accumulation); then the same work by PyTorch + transformers + peft
// (bench/torch_baseline.py, same folder of weights) in the same run, printed side by side. Decode is teacher-forced
// (forward + lm-head logits per token, no sampling) and shown beside the memory-bandwidth bound.
// Also times real rollouts through generate() (sampling on the device unless repetition_penalty) for 8 prompts × 8 completions.
// --load-in-4bit: the base quantised to 4 bits at load (QLoRA, nf4 with double quantisation; the torch baseline stays
// 16-bit, so pair it with --no-torch), for 4-bit against 16-bit decode rates and step times.
//   node --import tsx bench/gpu-grpo.ts [--shape 0.5b|1.5b] [--load-in-4bit] [--micro 8] [--steps 3] [--ckpt 1|0] [--ckpt-layers N] [--gen-tokens 256] [--torch-gen-tokens 64] [--no-torch] [--no-profile] [--dir …] [--layers 24] [--host-costs-only] [--memory-only] [--peaks H100|H200|A100|4090|3090|L4|T4]
// --smoke: the whole script on the CPU with a tiny model and short sequences, no torch (test/gpu-bench-smoke.test.ts
// runs it, so a device call never finds the script broken); its figures mean nothing. --smoke-cuda: the same on CUDA.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { writeSafetensors, type StWriteTensor } from "../src/models/safetensors.ts";
import { CausalLM } from "../src/models/model.ts";
import { KVCache } from "../src/models/kvcache.ts";
import { backward, embedding, fromHost, getBackend, memoryByCategory, noGrad, scope, setDefaultDevice, type Tensor } from "../src/engine/index.ts";
import { cudaBackend, cudaInfo } from "../src/engine/cuda.ts";
import { batchLoss, lossWeights, tokenAdvantages, type CompletionBatch } from "../src/grpo/loss.ts";
import { GraphedMicroBatches } from "../src/grpo/graph-step.ts";
import { flatOf } from "../src/engine/flat.ts";
import { AdamW } from "../src/grpo/optim.ts";
import { generate } from "../src/generate/generate.ts";
import { DecodeStep } from "../src/generate/decode-step.ts";

const arg = (name: string, def: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : def; };
// --smoke-cuda: the same tiny run on the CUDA backend (the emulator where there is no GPU: test/gpu-bench-smoke.test.ts)
const SMOKE_CUDA = process.argv.includes("--smoke-cuda");
const SMOKE = process.argv.includes("--smoke") || SMOKE_CUDA, SMOKE_CPU = SMOKE && !SMOKE_CUDA;
// --memory-only: stop after the train steps (eager and graphed) and print their peak memory. With the CUDA emulator
// in no-compute mode (AHA_EMU_NO_COMPUTE=1 AHA_CUDA_ADDON=native/build/Release/aha_cuda_emu.node) this gives a real
// shape's peak as the GPU's allocator would report it, on any machine: the allocator and the kernels' scratch
// buffers are CUDA's own code, only the arithmetic is skipped (the times and losses printed then mean nothing).
const MEMORY_ONLY = process.argv.includes("--memory-only");
const FOUR_BIT = process.argv.includes("--load-in-4bit");
// Qwen2.5 shapes: hidden, intermediate, query heads, kv heads, head dim, layers (vocabulary 151,936, tied embeddings)
const SHAPES = { "0.5b": [896, 4864, 14, 2, 64, 24], "1.5b": [1536, 8960, 12, 2, 128, 28], tiny: [64, 96, 4, 2, 16, 2] } as const;
const SHAPE = arg("shape", SMOKE ? "tiny" : "0.5b") as keyof typeof SHAPES;
if (!SHAPES[SHAPE]) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(", ")}`);
const [C, I, HQ, HKV, D, LAYERS_DEFAULT] = SHAPES[SHAPE];
const LAYERS = Number(arg("layers", String(LAYERS_DEFAULT)));
const DIR = arg("dir", `/tmp/aha-bench-qwen-${SHAPE}-${LAYERS}`);
const MICRO = Number(arg("micro", "8")), STEPS = Number(arg("steps", SMOKE ? "2" : "3"));
const PROMPTS = 8, GENS = 8, P = SMOKE ? 8 : 128, T = SMOKE ? 6 : 256, NSEQ = PROMPTS * GENS;
// rollouts of the issue's length (T new tokens); torch's generate() runs at ~700 tokens/s, so its rate is taken over
// fewer tokens (--torch-gen-tokens) to fit a device call
// --ckpt-layers N: checkpoint only the first N layers (the others keep their activations), instead of all (--ckpt 1)
const CKPT: boolean | number = process.argv.includes("--ckpt-layers") ? Number(arg("ckpt-layers", "0")) : arg("ckpt", "1") === "1";
const GEN_TOKENS = Number(arg("gen-tokens", String(T))), TORCH_GEN_TOKENS = Number(arg("torch-gen-tokens", SMOKE ? "4" : "64"));
const V = SHAPE === "tiny" ? 1200 : 151936;
// one more train step and a few decode steps with every op timed, after the timed ones (--no-profile: skip them;
// under AHA_CUDA_PROFILE=1 every step is profiled already)
const PROFILE_ONE = !process.argv.includes("--no-profile") && !process.env.AHA_CUDA_PROFILE && !MEMORY_ONLY;

function makeModel(dir: string): void {
  if (existsSync(join(dir, "model.safetensors"))) return;
  mkdirSync(dir, { recursive: true });
  const config = {
    architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", hidden_size: C, intermediate_size: I, num_hidden_layers: LAYERS,
    num_attention_heads: HQ, num_key_value_heads: HKV, vocab_size: V, max_position_embeddings: 32768, rms_norm_eps: 1e-6,
    rope_theta: 1000000.0, tie_word_embeddings: true, hidden_act: "silu", dtype: "bfloat16", use_sliding_window: false,
    sliding_window: 32768, max_window_layers: LAYERS, attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643,
  };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));
  // a pool of random bf16 words (normal, std 0.02), tiled into every tensor from random offsets
  const pool = new Uint16Array(1 << 24);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let i = 0; i < pool.length; i++) { f[0] = 0.02 * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()); pool[i] = u[0] >>> 16; }
  const rnd = (n: number) => { const out = new Uint16Array(n); for (let o = 0; o < n;) { const s = Math.floor(Math.random() * (pool.length / 2)); const k = Math.min(n - o, pool.length - s); out.set(pool.subarray(s, s + k), o); o += k; } return out; };
  const ones = (n: number) => new Uint16Array(n).fill(0x3f80);
  const t: Record<string, StWriteTensor> = {};
  const put = (name: string, shape: number[], data: Uint16Array) => { t[name] = { dtype: "BF16", shape, data }; };
  put("model.embed_tokens.weight", [V, C], rnd(V * C));
  put("model.norm.weight", [C], ones(C));
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, [C], ones(C));
    put(`${p}.post_attention_layernorm.weight`, [C], ones(C));
    for (const [n, out] of [["q", HQ * D], ["k", HKV * D], ["v", HKV * D]] as const) {
      put(`${p}.self_attn.${n}_proj.weight`, [out, C], rnd(out * C));
      put(`${p}.self_attn.${n}_proj.bias`, [out], rnd(out));
    }
    put(`${p}.self_attn.o_proj.weight`, [C, HQ * D], rnd(C * HQ * D));
    put(`${p}.mlp.gate_proj.weight`, [I, C], rnd(I * C));
    put(`${p}.mlp.up_proj.weight`, [I, C], rnd(I * C));
    put(`${p}.mlp.down_proj.weight`, [C, I], rnd(C * I));
  }
  writeSafetensors(join(dir, "model.safetensors"), t);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const GB = 1024 ** 3;

function main(): void {
  const info = SMOKE_CPU ? { ok: true, name: "CPU (smoke run)", totalMemory: 0, sms: 0 } : cudaInfo();
  if (!info.ok) { console.error(`no CUDA: ${info.error}`); process.exit(1); }
  console.log(`device: ${info.name}, ${(info.totalMemory! / GB).toFixed(0)} GiB, ${info.sms} SMs`);
  PEAK = peaksOf(arg("peaks", info.name ?? "")); // (--peaks H100: those of another card, e.g. for the floors of an emulated run)
  let t0 = performance.now();
  makeModel(DIR);
  console.log(`random model folder ${DIR} ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  setDefaultDevice(SMOKE_CPU ? "cpu" : "cuda");
  const be = SMOKE_CPU ? smokeBackend() : cudaBackend();
  // what was profiled since the last call (and clears it): GPU time by op, and the GEMMs by shape
  const takeProfile = (): Profile => ({ ops: be.profile(), gemms: be.profileGemmShapes() });
  t0 = performance.now();
  const model = CausalLM.load(DIR, { quantization: FOUR_BIT ? { type: "nf4", doubleQuant: true, computeDtype: "bf16" } : null });
  if (FOUR_BIT) console.log("base weights: 4-bit (nf4, double quantisation), products in bf16");
  let rs = 1;
  const rng = () => ((rs = (rs * 16807) % 2147483647) / 2147483647);
  model.addAdapter({ r: 16, lora_alpha: 32, target_modules: "all-linear" }, rng);
  model.gradientCheckpointing = CKPT;
  console.log(`gradient checkpointing: ${CKPT === true ? "on" : CKPT === false ? "off" : `the first ${CKPT} of ${LAYERS} layers`}`);
  const params = model.parameters();
  const opt = new AdamW(params, { lr: 1e-5 });
  be.synchronize();
  console.log(`loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s; LoRA params ${params.reduce((a, p) => a + p.numel, 0)}; weights+LoRA+Adam ${(be.memory().allocated / GB).toFixed(2)} GiB`);

  if (!SMOKE && !MEMORY_ONLY) hostCosts(be);
  if (process.argv.includes("--host-costs-only")) return;

  // the batch: random prompt and completion ids, full completion masks, random advantages
  const ids = (n: number) => Int32Array.from({ length: n }, () => Math.floor(rng() * (V - 1000)));
  const promptIds = ids(NSEQ * P), completionIds = ids(NSEQ * T);
  const adv = Float32Array.from({ length: NSEQ }, () => rng() * 2 - 1);
  const lossParams = { lossType: "grpo" as const, epsilon: 0.2, epsilonHigh: 0.2, beta: 0, temperature: 1, maxCompletionLength: T };
  const micro = (m: number): [CompletionBatch, Float32Array, Float32Array] => {
    const s = m * MICRO;
    return [{ promptIds: promptIds.subarray(s * P, (s + MICRO) * P), completionIds: completionIds.subarray(s * T, (s + MICRO) * T),
      completionMask: new Float32Array(MICRO * T).fill(1), B: MICRO, P, T }, new Float32Array(MICRO * T).fill(-Math.log(V)), adv.subarray(s, s + MICRO)];
  };
  // one eager optimiser step over the 64 sequences: its time (ms) and its last micro-batch's loss
  const eagerStep = (): [number, number] => {
    be.synchronize();
    const ts = performance.now();
    let loss = 0;
    for (let m = 0; m < NSEQ / MICRO; m++) {
      const [b, old, a] = micro(m);
      loss = scope(() => { const { loss: l } = batchLoss(model, b, old, null, a, lossParams); backward(l); return l.item(); });
    }
    opt.update();
    opt.zeroGrad();
    be.synchronize();
    return [performance.now() - ts, loss];
  };
  const times: number[] = [];
  let peak = 0, peakReserved = 0, lastLoss = 0;
  for (let step = 0; step < STEPS; step++) {
    be.synchronize();
    takeProfile();
    be.resetPeak();
    const [dt, loss] = eagerStep();
    lastLoss = loss;
    const mem = be.memory();
    peak = Math.max(peak, mem.peak); peakReserved = Math.max(peakReserved, mem.peakReserved);
    console.log(`aha step ${step}: ${(dt / 1000).toFixed(3)} s, loss ${lastLoss.toFixed(4)}, peak ${(mem.peak / GB).toFixed(2)} GiB (reserved ${(mem.peakReserved / GB).toFixed(2)})`);
    if (step > 0 || STEPS === 1) times.push(dt);
  }
  printProfile("train step", takeProfile(), median(times));
  // the same eager steps with the mma.sync attention kernels (attention_tc.cu), where the tensor-core kernels run
  // (16-bit weights, head dim 64/96/128): which kernels to make the default
  let stepMmaS = NaN;
  if (!SMOKE_CPU && !MEMORY_ONLY && [64, 96, 128].includes(D)) {
    const cb = be as ReturnType<typeof cudaBackend>;
    cb.setAttentionKernel("mma");
    const mt: number[] = [];
    let lossM = 0;
    for (let step = 0; step < STEPS; step++) {
      const [dt, loss] = eagerStep();
      lossM = loss;
      if (step > 0 || STEPS === 1) mt.push(dt);
    }
    printProfile("train step, mma.sync attention", takeProfile(), median(mt));
    cb.setAttentionKernel("wmma");
    stepMmaS = median(mt) / 1000;
    console.log(`train step with the mma.sync attention kernels: ${stepMmaS.toFixed(3)} s (WMMA ${(median(times) / 1000).toFixed(3)} s), loss ${lossM.toFixed(4)}`);
  }
  // the same eager steps with only the first ¾ of the layers checkpointed (the rest keep their activations: a quarter
  // of the recomputing saved, for their activations' memory), where every layer is checkpointed by default
  let partialCkpt = { layers: 0, s: NaN, peak: NaN, peakReserved: NaN };
  if (CKPT === true && !MEMORY_ONLY) {
    const layers = Math.min(LAYERS - 1, Math.round(0.75 * LAYERS)), pt: number[] = [];
    model.gradientCheckpointing = layers;
    be.synchronize();
    be.resetPeak();
    for (let step = 0; step < STEPS; step++) {
      const [dt] = eagerStep();
      if (step > 0 || STEPS === 1) pt.push(dt);
    }
    model.gradientCheckpointing = true;
    const m = be.memory();
    partialCkpt = { layers, s: median(pt) / 1000, peak: m.peak / GB, peakReserved: m.peakReserved / GB };
    console.log(`train step with the first ${layers} of ${LAYERS} layers checkpointed: ${partialCkpt.s.toFixed(3)} s, peak ${partialCkpt.peak.toFixed(2)} GiB ` +
      `(reserved ${partialCkpt.peakReserved.toFixed(2)}); every layer: ${(median(times) / 1000).toFixed(3)} s, ${(peak / GB).toFixed(2)} GiB`);
    takeProfile(); // (drops what a profiled run collected meanwhile)
  }
  // one more eager step with every op timed (events around each op; the timed steps above ran without them): where
  // a step's GPU time goes, in the same run (AHA_CUDA_PROFILE=1 profiles every step instead)
  if (PROFILE_ONE) {
    be.setProfiling(true);
    const [dt] = eagerStep();
    be.setProfiling(false);
    printProfile("train step, profiled separately", takeProfile(), dt);
  }
  const cats = memoryByCategory("cuda");
  console.log("peak by category (GiB): " + Object.entries(cats).map(([c, b]) => `${c} ${(b.peak / GB).toFixed(2)}`).join(", "));
  const stepS = median(times) / 1000;
  // the same steps with the micro-batches replayed from one CUDA graph per step (GraphedMicroBatches, as the trainer
  // does with `graphs`): the capture, then one launch per micro-batch
  const flat = flatOf(params)!;
  const gtimes: number[] = [];
  let gpeak = 0, gnote = "";
  for (let step = 0; step < STEPS; step++) {
    be.synchronize();
    be.resetPeak();
    const ts = performance.now();
    flat.zeroGradsForAccumulation();
    const g = new GraphedMicroBatches(model, MICRO, P, T, 1, { epsilonLow: 0.2, epsilonHigh: 0.2, delta: 0, beta: 0 }, true, false);
    let lossG = 0;
    for (let m = 0; m < NSEQ / MICRO; m++) {
      const [b, old, a] = micro(m);
      const out = g.run(b, old, null, tokenAdvantages(a, MICRO, T), lossWeights(b.completionMask, MICRO, T, lossParams));
      if (m === NSEQ / MICRO - 1) lossG = out.loss.item();
      for (const t of Object.values(out)) t.dispose();
    }
    gnote = g.graphed ? "captured" : `no graph: ${g.graphError}`;
    g.dispose();
    opt.update();
    opt.zeroGrad();
    be.synchronize();
    const dt = performance.now() - ts;
    // (a graph holds the blocks its capture freed: the reserved peak is the figure to compare)
    const gm = be.memory();
    gpeak = Math.max(gpeak, gm.peakReserved);
    console.log(`aha step ${step}, micro-batches from a graph (${gnote}): ${(dt / 1000).toFixed(3)} s, loss ${lossG.toFixed(4)}, peak ${(gm.peak / GB).toFixed(2)} GiB (reserved ${(gm.peakReserved / GB).toFixed(2)})`);
    if (step > 0 || STEPS === 1) gtimes.push(dt);
  }
  const stepGraphS = median(gtimes) / 1000;
  if (MEMORY_ONLY) {
    console.log("MEMORY " + JSON.stringify({ shape: SHAPE, four_bit: FOUR_BIT, micro: MICRO, checkpointing: CKPT, peak_gib: +(peak / GB).toFixed(3), peak_reserved_gib: +(peakReserved / GB).toFixed(3),
      peak_graph_reserved_gib: +(gpeak / GB).toFixed(3) }));
    return;
  }

  // decode: prefill 128 tokens for 64 sequences, then 256 single-token steps through the KV cache
  be.emptyCache();
  const cache = new KVCache(model.config, NSEQ, P + T, model.kvDtype());
  const tp = performance.now();
  noGrad(() => scope(() => { model.logits(rowsLast(model.forward(promptIds, NSEQ, P, { cache }), NSEQ, P)); }));
  be.synchronize();
  const prefillS = (performance.now() - tp) / 1000;
  const td = performance.now();
  for (let t = 0; t < T; t++) {
    const step = completionIds.filter((_, i) => i % T === t);
    noGrad(() => scope(() => { model.logits(model.forward(step, NSEQ, 1, { cache })); }));
  }
  be.synchronize();
  const decodeS = (performance.now() - td) / 1000;
  printProfile("prefill + decode", takeProfile(), decodeS * 1000);
  cache.dispose();
  const decodeTps = (NSEQ * T) / decodeS;
  // the same decode through a DecodeStep: fixed buffers, one CUDA graph launch per token step; with the general layer
  // block, the fused layers making LoRA down-projections by GEMMs, and the default (fused layers, down-projections in
  // the norm kernels: models/fused-layers.ts), to compare them in one run
  const graphDecode = (variant: "general" | "fused, GEMM down-projections" | "fused", label: string = variant) => {
    const was = [model.fusedDecode, model.foldLoraDown];
    model.fusedDecode = variant !== "general";
    model.foldLoraDown = variant === "fused";
    const gcache = new KVCache(model.config, NSEQ, P + T, model.kvDtype());
    noGrad(() => scope(() => { model.forward(promptIds, NSEQ, P, { cache: gcache }); }));
    const dstep = new DecodeStep(model, gcache, true);
    dstep.run(completionIds.filter((_, i) => i % T === 0)); // the capture
    be.synchronize();
    takeProfile(); // (clears the totals)
    const tgd = performance.now();
    for (let t = 1; t < T; t++) dstep.run(completionIds.filter((_, i) => i % T === t));
    be.synchronize();
    const graphS = (performance.now() - tgd) / 1000;
    const tps = (NSEQ * (T - 1)) / graphS, graphed = dstep.graphed;
    console.log(`decode through DecodeStep, ${label} (${graphed ? "captured" : `no graph: ${dstep.graphError}`}): ` +
      `${tps.toFixed(0)} tok/s, ${(1000 * graphS / (T - 1)).toFixed(2)} ms per step`);
    printProfile(`graph decode, ${label}`, takeProfile(), graphS * 1000);
    dstep.dispose();
    gcache.dispose();
    [model.fusedDecode, model.foldLoraDown] = was;
    return { tps, graphed };
  };
  const general = graphDecode("general"), gemmDown = graphDecode("fused, GEMM down-projections"), fusedDecode = graphDecode("fused");
  // the default decode step run eagerly with every op timed: the GPU time of each kernel of a step (a graph's
  // replay cannot be timed by op; eager launches add gaps, not GPU time)
  if (PROFILE_ONE) {
    const pcache = new KVCache(model.config, NSEQ, P + T, model.kvDtype());
    noGrad(() => scope(() => { model.forward(promptIds, NSEQ, P, { cache: pcache }); }));
    const pstep = new DecodeStep(model, pcache, false);
    const steps = Math.min(32, T - 1);
    be.synchronize();
    takeProfile();
    be.setProfiling(true);
    const tpd = performance.now();
    for (let t = 0; t < steps; t++) pstep.run(completionIds.filter((_, i) => i % T === t));
    be.synchronize();
    be.setProfiling(false);
    printProfile(`${steps} decode steps (fused, eager), profiled`, takeProfile(), performance.now() - tpd);
    pstep.dispose();
    pcache.dispose();
  }
  const graphTps = fusedDecode.tps, dstepGraphed = fusedDecode.graphed && general.graphed && gemmDown.graphed;
  // real rollouts: generate() with sampling (temperature 1) for 8 prompts × 8 completions
  const promptList = Array.from({ length: PROMPTS }, (_, b) => Array.from(promptIds.subarray(b * GENS * P, b * GENS * P + P)));
  const tg = performance.now();
  const gen = generate(model, promptList, { n: GENS, maxTokens: GEN_TOKENS, temperature: 1, seed: 1, logprobs: false, graphs: false });
  be.synchronize();
  const genS = (performance.now() - tg) / 1000;
  const genTps = gen.reduce((a, c) => a + c.tokenIds.length, 0) / genS;
  console.log(`generate ${PROMPTS}×${GENS}×${GEN_TOKENS} (sampling on the device unless repetition_penalty): ${genS.toFixed(2)} s, ${genTps.toFixed(0)} tok/s`);
  const tgg = performance.now();
  const genG = generate(model, promptList, { n: GENS, maxTokens: GEN_TOKENS, temperature: 1, seed: 1, logprobs: false, graphs: true });
  be.synchronize();
  const genGS = (performance.now() - tgg) / 1000;
  const genGTps = genG.reduce((a, c) => a + c.tokenIds.length, 0) / genGS;
  const same = genG.every((c, i) => c.tokenIds.join() === gen[i].tokenIds.join());
  console.log(`generate with graphs: ${genGS.toFixed(2)} s, ${genGTps.toFixed(0)} tok/s; completions ${same ? "identical to" : "DIFFER from"} the run without`);
  // The opt-in decode paths, each timed like the default (graphed decode, then generate() with graphs), to decide
  // which to turn on by default on CUDA. A variant that fails is reported, not fatal: the figures above stand.
  const cb = be as ReturnType<typeof cudaBackend>;
  const genRate = () => {
    const t0 = performance.now();
    const out = generate(model, promptList, { n: GENS, maxTokens: GEN_TOKENS, temperature: 1, seed: 1, logprobs: false, graphs: true });
    be.synchronize();
    return { tps: out.reduce((a, c) => a + c.tokenIds.length, 0) / ((performance.now() - t0) / 1000), tokens: out.map((c) => c.tokenIds.join()) };
  };
  const variant = (label: string, set: (on: boolean) => void, before?: () => void) => {
    const r = { decode: NaN, gen: NaN, tokens: [] as string[] };
    if (SMOKE_CPU) return r;
    set(true);
    try {
      before?.();
      r.decode = graphDecode("fused", `fused, ${label}`).tps;
      const g = genRate();
      r.gen = g.tps;
      r.tokens = g.tokens;
      console.log(`${label}: decode with graphs ${r.decode.toFixed(0)} tok/s (default ${graphTps.toFixed(0)}), generate() with graphs ${r.gen.toFixed(0)} tok/s (${genGTps.toFixed(0)})`);
    } catch (e) {
      console.log(`${label} failed: ${(e as Error).message}`);
    } finally {
      set(false);
    }
    return r;
  };
  // GEMM tuning (each cuBLASLt shape's algorithms timed at its first call outside a capture, the fastest kept): the
  // train step too, and one eager decode step first so that the decode shapes' plans are made outside the capture
  let stepTunedS = NaN;
  const tuned = variant("tuned GEMMs", (on) => cb.setGemmTuning(on), () => {
    const tt: number[] = [];
    for (let step = 0; step < STEPS; step++) {
      const [dt] = eagerStep();
      if (step > 0 || STEPS === 1) tt.push(dt);
    }
    stepTunedS = median(tt) / 1000;
    const wcache = new KVCache(model.config, NSEQ, P + T, model.kvDtype());
    noGrad(() => scope(() => { model.forward(promptIds, NSEQ, P, { cache: wcache }); }));
    const warm = new DecodeStep(model, wcache, false);
    warm.run(completionIds.filter((_, i) => i % T === 0));
    warm.dispose();
    wcache.dispose();
  });
  if (!SMOKE_CPU) {
    const r = cb.gemmStats();
    console.log(`GEMM tuning: train step ${stepTunedS.toFixed(3)} s (heuristic's algorithms ${stepS.toFixed(3)} s); ${r.tuned} shapes timed, ${r.changed} took another algorithm than the heuristic's first`);
  }
  // decode attention by kv group (one block per kv head and sequence: the cache read once per group, not per head)
  const grouped = variant("kv-group attention", (on) => cb.setDecodeGroup(on));
  // the decode GEMMs (≤ 64 rows, bf16 weights) on aha's own kernel (native/cuda/skinny_gemm.cu) instead of cuBLASLt;
  // then also with programmatic dependent launch (every kernel of a decode step is then aha's, each scheduled while
  // the one before it finishes), and then with the kv-group attention too
  const skinnyBefore = SMOKE_CPU ? 0 : cb.gemmStats().skinny;
  const skinny = variant("skinny GEMM kernel", (on) => cb.setSkinnyGemm(on));
  if (!SMOKE_CPU) console.log(`skinny GEMM kernel: ${cb.gemmStats().skinny - skinnyBefore} GEMM calls took it`);
  const pdl = variant("skinny GEMM kernel + PDL", (on) => { cb.setSkinnyGemm(on); cb.setPdl(on); });
  if (pdl.tokens.length)
    console.log(`PDL: completions ${pdl.tokens.every((t, i) => t === skinny.tokens[i]) ? "identical to" : "DIFFER from"} the skinny kernel's without PDL`);
  const all = variant("skinny GEMM kernel + PDL + kv-group attention", (on) => { cb.setSkinnyGemm(on); cb.setPdl(on); cb.setDecodeGroup(on); });
  const optIns: [string, typeof all][] = [["tuned GEMM algorithms", tuned], ["kv-group attention", grouped], ["the skinny GEMM kernel", skinny],
    ["the skinny GEMM kernel + PDL", pdl], ["the skinny GEMM kernel + PDL + kv-group attention", all]];
  // bound: every weight read once per step (bf16) + the KV cache read at its mean length (aha's: model.kvDtype(),
  // bf16 in the default GEMM mode, f16 on Turing; bf16 in torch)
  const bw = peaksOf(info.name ?? "")?.bw ?? NaN;
  // (4-bit: half a byte per linear weight plus its scales, ~0.516 with double quantisation; the embeddings stay bf16)
  const weightBytes = 2 * V * C + (FOUR_BIT ? 0.516 : 2) * LAYERS * (C * (HQ + 2 * HKV) * D + HQ * D * C + 3 * C * I);
  const kvBytes = (f: number) => 2 * LAYERS * NSEQ * (P + T / 2) * HKV * D * f;
  const bound = (f: number) => NSEQ / ((weightBytes + kvBytes(f)) / bw);
  const aha = { four_bit: FOUR_BIT, grpo_step_estimate_s: (NSEQ * T) / genTps + stepS, grpo_step_estimate_graph_s: (NSEQ * T) / genGTps + stepGraphS, step_s: stepS, step_graph_s: stepGraphS, peak_graph_reserved_gib: gpeak / GB, peak_gib: peak / GB, peak_reserved_gib: peakReserved / GB, prefill_s: prefillS, decode_tok_s: decodeTps, decode_graph_tok_s: graphTps, decode_graph_general_tok_s: general.tps, decode_graph_gemm_down_tok_s: gemmDown.tps,
    generate_tok_s: genTps, generate_graph_tok_s: genGTps, checkpointing: CKPT, loss: lastLoss, step_mma_attention_s: stepMmaS,
    step_partial_ckpt_s: partialCkpt.s, peak_partial_ckpt_gib: partialCkpt.peak, peak_reserved_partial_ckpt_gib: partialCkpt.peakReserved,
    step_tuned_gemm_s: stepTunedS, decode_graph_tuned_gemm_tok_s: tuned.decode, generate_graph_tuned_gemm_tok_s: tuned.gen,
    decode_graph_kv_group_tok_s: grouped.decode, generate_graph_kv_group_tok_s: grouped.gen,
    decode_graph_skinny_gemm_tok_s: skinny.decode, generate_graph_skinny_gemm_tok_s: skinny.gen, decode_graph_skinny_pdl_tok_s: pdl.decode,
    generate_graph_skinny_pdl_tok_s: pdl.gen, decode_graph_all_opt_in_tok_s: all.decode, generate_graph_all_opt_in_tok_s: all.gen };
  console.log("AHA " + JSON.stringify(aha));

  let torch: Record<string, number> | null = null;
  if (!process.argv.includes("--no-torch") && !SMOKE) {
    model.adapter?.dispose();
    const script = fileURLToPath(new URL("./torch_baseline.py", import.meta.url));
    const out = execFileSync(process.env.PYTHON ?? "python3", [script, "--dir", DIR, "--micro", String(MICRO), "--steps", String(STEPS), "--gen-tokens", String(TORCH_GEN_TOKENS)],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, PYTHONUNBUFFERED: "1" } });
    process.stdout.write(out);
    const line = out.split("\n").find((l) => l.startsWith("TORCH "));
    if (line) torch = JSON.parse(line.slice(6));
  }
  const row = (name: string, a: number, b: number | undefined, unit: string, lowerBetter: boolean) =>
    console.log(`| ${name} | ${a.toFixed(3)} ${unit} | ${b === undefined ? "—" : `${b.toFixed(3)} ${unit}`} | ${b === undefined ? "—" : lowerBetter ? `${(a / b).toFixed(2)}×` : `${(a / b).toFixed(2)}×`} |`);
  console.log(`\n${info.name}, Qwen2.5-${SHAPE.toUpperCase()} shape (${LAYERS} layers)${FOUR_BIT ? ", 4-bit base (QLoRA)" : ""}, LoRA r=16 all-linear, ${PROMPTS}×${GENS} sequences of ${P}+${T} tokens, micro-batch ${MICRO}`);
  console.log("| metric | aha | torch+transformers+peft | aha / torch |\n| --- | --- | --- | --- |");
  row("train step", aha.step_s, torch?.step_s, "s", true);
  row("train step, micro-batches from a CUDA graph", aha.step_graph_s, torch?.step_s, "s", true);
  row("train step, tuned GEMM algorithms", aha.step_tuned_gemm_s, torch?.step_s, "s", true);
  row("peak memory (allocated)", aha.peak_gib, torch?.peak_gib, "GiB", true);
  row("peak memory (reserved)", aha.peak_reserved_gib, torch?.peak_reserved_gib, "GiB", true);
  const pc = `the first ${partialCkpt.layers} of ${LAYERS} layers checkpointed`;
  row(`train step, ${pc}`, aha.step_partial_ckpt_s, torch?.step_s, "s", true);
  row(`peak memory (allocated), ${pc}`, aha.peak_partial_ckpt_gib, torch?.peak_gib, "GiB", true);
  row(`peak memory (reserved), ${pc}`, aha.peak_reserved_partial_ckpt_gib, torch?.peak_reserved_gib, "GiB", true);
  row("decode (teacher-forced) ", aha.decode_tok_s, torch?.decode_tok_s, "tok/s", false);
  row("decode, CUDA graph per step", aha.decode_graph_tok_s, torch?.decode_tok_s, "tok/s", false);
  row("decode, CUDA graph, tuned GEMM algorithms", aha.decode_graph_tuned_gemm_tok_s, torch?.decode_tok_s, "tok/s", false);
  row("decode, CUDA graph, skinny GEMM kernel", aha.decode_graph_skinny_gemm_tok_s, torch?.decode_tok_s, "tok/s", false);
  row("decode, CUDA graph, skinny GEMM kernel + PDL", aha.decode_graph_skinny_pdl_tok_s, torch?.decode_tok_s, "tok/s", false);
  row("decode, CUDA graph, kv-group attention", aha.decode_graph_kv_group_tok_s, torch?.decode_tok_s, "tok/s", false);
  row("decode, CUDA graph, skinny GEMM kernel + PDL + kv-group attention", aha.decode_graph_all_opt_in_tok_s, torch?.decode_tok_s, "tok/s", false);
  row("decode, CUDA graph, general layer block", aha.decode_graph_general_tok_s, torch?.decode_tok_s, "tok/s", false);
  row("decode, CUDA graph, fused, GEMM down-projections", aha.decode_graph_gemm_down_tok_s, torch?.decode_tok_s, "tok/s", false);
  const torchGen = `torch: ${PROMPTS}×${GENS}×${TORCH_GEN_TOKENS}`;
  row(`generate() ${PROMPTS}×${GENS}×${GEN_TOKENS}, sampled (${torchGen})`, aha.generate_tok_s, torch?.generate_tok_s, "tok/s", false);
  row(`generate() ${PROMPTS}×${GENS}×${GEN_TOKENS}, with graphs (${torchGen})`, aha.generate_graph_tok_s, torch?.generate_tok_s, "tok/s", false);
  // what the next step for graphs is: on by default on CUDA (graphsByDefault in src/engine/backend.ts) only when
  // both captures happened, both are faster, and generation with them gives the same completions
  const captured = gnote === "captured" && dstepGraphed;
  const faster = stepGraphS < stepS && graphTps > decodeTps && genGTps > genTps;
  console.log(`graphs: train step ${stepGraphS.toFixed(3)} vs ${stepS.toFixed(3)} s, decode ${graphTps.toFixed(0)} vs ${decodeTps.toFixed(0)} tok/s, ` +
    `generate ${genGTps.toFixed(0)} vs ${genTps.toFixed(0)} tok/s → ${captured && faster && same ? "turn them on by default on CUDA" :
    `keep them off (${!captured ? "a capture was refused" : !same ? "completions differ" : "not faster everywhere"})`}`);
  // a whole GRPO step (beta 0, one iteration: rollouts, then the train step; rewards aside) as the brief counts it
  // against TRL's 15.9 s: 8 × 8 rollouts of T tokens at generate()'s rate, plus the train step
  const rollS = (NSEQ * T) / genTps, rollGS = (NSEQ * T) / genGTps;
  console.log(`GRPO step estimate (${NSEQ} rollouts of ${T} tokens at generate()'s rate + the train step): ${(rollS + stepS).toFixed(2)} s ` +
    `(${rollS.toFixed(2)} + ${stepS.toFixed(2)}); with graphs ${(rollGS + stepGraphS).toFixed(2)} s (${rollGS.toFixed(2)} + ${stepGraphS.toFixed(2)})`);
  const kvDt = model.kvDtype(), kvF = kvDt === "f32" ? 4 : 2;  // (f16 on Turing)
  console.log(`decode bound at ${(bw / 1e12).toFixed(2)} TB/s: ${bound(4).toFixed(0)} tok/s with an f32 KV cache, ${bound(2).toFixed(0)} with a 16-bit one; aha (${kvDt} cache) reaches ${(100 * decodeTps / bound(kvF)).toFixed(1)}% of its bound (${(100 * graphTps / bound(kvF)).toFixed(1)}% with graphs; ` +
    `${(100 * general.tps / bound(kvF)).toFixed(1)}% with graphs and the general layer block, ${(100 * gemmDown.tps / bound(kvF)).toFixed(1)}% ` +
    `with the fused layers' down-projections by GEMM)`);
  // the issue's rollout target: generate() (sampling, stops checked every step) at ≥ 50% of the same bound
  console.log(`rollout (generate() with graphs: steps that sample on the device, one enqueued ahead) reaches ${(100 * genGTps / bound(kvF)).toFixed(1)}% of the bound ` +
    `(${(100 * genTps / bound(kvF)).toFixed(1)}% without graphs, ${optIns.map(([what, r]) => `${(100 * r.gen / bound(kvF)).toFixed(1)}% with ${what}`).join(", ")})`);
}

/** Host cost of one call (µs, 2,000 calls then a synchronize) for the call kinds a decode step is made of. */
function hostCosts(be: ReturnType<typeof cudaBackend>): void {
  const n = 2000, k = be.k;
  const a = be.alloc("f32", 64 * 64), b = be.alloc("bf16", 64 * 64), c = be.alloc("f32", 64 * 64), small = new Int32Array(64);
  const time = (what: string, f: () => void) => {
    be.synchronize();
    const t = performance.now();
    for (let i = 0; i < n; i++) f();
    be.synchronize();
    return `${what} ${((1000 * (performance.now() - t)) / n).toFixed(1)} µs`;
  };
  console.log("host cost per call: " + [
    time("kernel (binary 4096)", () => k.binary(c, a, a, 4096, 4096, 0)),
    time("gemm 64×64×64 f32×bf16", () => k.gemm(c, a, b, 1, 1, 64, 64, 64, false, true, 64, 64, 64, 0, 0, 0, 1, 0)),
    time("gemm 64×64×64 f32", () => k.gemm(c, a, a, 0, 1, 64, 64, 64, false, true, 64, 64, 64, 0, 0, 0, 1, 0)),
    time("alloc+free", () => be.free(be.alloc("f32", 4096, false), "f32", 4096)),
    time("upload 256 B", () => be.write(c, small)),
  ].join(", "));
  for (const p of [a, b, c]) be.free(p, "f32", 0);
}

/** The CPU backend with what the script asks of CUDA's (profile, reserved memory, emptyCache) stubbed, for --smoke. */
function smokeBackend(): ReturnType<typeof cudaBackend> {
  const cpu = getBackend("cpu");
  return Object.assign(Object.create(cpu), {
    profile: () => ({}) as Record<string, [number, number, number, number]>,
    profileGemmShapes: () => [],
    setProfiling: () => {},
    setGemmTuning: () => {},
    gemmStats: () => ({ tuned: 0, changed: 0, skinny: 0 }),
    setSkinnyGemm: () => {},
    setPdl: () => {},
    setDecodeGroup: () => {},
    emptyCache: () => {},
    memory: () => { const m = cpu.memory(); return { ...m, reserved: m.allocated, peakReserved: m.peak }; },
  }) as ReturnType<typeof cudaBackend>;
}

/**
 * Data-sheet peaks of the GPU (dense tensor-core FLOP/s for 16-bit and TF32 operands, f32 on CUDA cores, memory
 * bandwidth), where the bench knows the card: a GEMM shape's floor is max(FLOPs / peak, least bytes / bandwidth).
 */
type Peaks = { tc16: number; tf32: number; f32: number; bw: number };
let PEAK: Peaks | null = null;
function peaksOf(name: string): Peaks | null {
  if (/H200/.test(name)) return { tc16: 989e12, tf32: 494e12, f32: 67e12, bw: 4.8e12 };
  if (/H100/.test(name)) return { tc16: 989e12, tf32: 494e12, f32: 67e12, bw: 3.35e12 };
  // the cards of docs/gpus.md, dense rates with f32 accumulation as their data sheets give them (Turing has
  // no TF32: its "TF32" GEMMs run in f32)
  if (/A100.*80/.test(name)) return { tc16: 312e12, tf32: 156e12, f32: 19.5e12, bw: 2.039e12 };
  if (/A100/.test(name)) return { tc16: 312e12, tf32: 156e12, f32: 19.5e12, bw: 1.555e12 };
  if (/4090/.test(name)) return { tc16: 165.2e12, tf32: 82.6e12, f32: 82.6e12, bw: 1.008e12 };
  if (/3090/.test(name)) return { tc16: 71e12, tf32: 35.6e12, f32: 35.6e12, bw: 0.936e12 };
  if (/\bL4\b/.test(name)) return { tc16: 121e12, tf32: 60e12, f32: 30.3e12, bw: 0.3e12 };
  if (/\bT4\b/.test(name)) return { tc16: 65e12, tf32: 8.1e12, f32: 8.1e12, bw: 0.32e12 };
  return null;
}
/** the floor of a profiled GEMM shape in ms, from its label ("…, A f32, B f32, tf32…") and totals */
function gemmFloorMs(g: { shape: string; flops: number; bytes: number }, p: Peaks): number {
  const f32 = /A\S* f32, B\S* f32/.test(g.shape), rate = !f32 ? p.tc16 : g.shape.includes("tf32") ? p.tf32 : p.f32;
  return 1000 * Math.max(g.flops / rate, g.bytes / p.bw);
}
/**
 * The floor of a profiled op in ms from its cost model (NaN without one): FLOPs at the tensor cores' 16-bit rate
 * (this bench's model has bf16 weights: attention and the lm head run there; LoRA's f32 GEMMs at TF32's), bytes at
 * the memory bandwidth.
 */
function opFloorMs(name: string, flops: number, bytes: number, p: Peaks): number {
  if (!flops && !bytes) return NaN;
  const rate = name.startsWith("gemm f32") ? p.tf32 : p.tc16;
  return 1000 * Math.max(flops / rate, bytes / p.bw);
}

/** the profile's GEMM category of a shape label (as native/cuda/addon.cpp names them: weights' type, skinny = a dimension ≤ 64) */
function gemmCategory(shape: string): string {
  const m = /^(?:\d+ × )?(\d+)×(\d+)×(\d+), A\S* \w+, B\S* (\w+)/.exec(shape);
  if (!m) return "";
  const skinny = Math.min(+m[1], +m[2], +m[3]) <= 64;
  return `gemm ${m[4] === "f32" ? "f32" : "16-bit"}${skinny ? ", skinny" : ""}`;
}

type Profile = { ops: Record<string, [number, number, number, number]>; gemms: ReturnType<ReturnType<typeof cudaBackend>["profileGemmShapes"]> };

/**
 * GPU time by op (AHA_CUDA_PROFILE=1 or setProfiling), beside the wall time of what was profiled; then the GEMM shapes
 * that took the most time, each with the rate it reached: TFLOP/s, and GB/s of the bytes it must move at least (a
 * shape far below both the tensor cores' peak and the memory bandwidth is where a GEMM loses time)
 */
function printProfile(what: string, p: Profile, wallMs: number): void {
  const rows = Object.entries(p.ops).sort((a, b) => b[1][0] - a[1][0]);
  if (!rows.length) return;
  const total = rows.reduce((a, r) => a + r[1][0], 0), pk = PEAK;
  // the data sheet's floor of what was profiled: each op's cost model at the card's peaks (ops without one count 0)
  const floors = new Map(rows.map(([name, [, , flops, bytes]]) => [name, pk ? opFloorMs(name, flops, bytes, pk) : NaN]));
  // (a GEMM category's floor: the sum of its shapes' floors, each flop- or memory-bound on its own)
  if (pk) for (const name of floors.keys()) if (name.startsWith("gemm"))
    floors.set(name, p.gemms.filter((g) => gemmCategory(g.shape) === name).reduce((a, g) => a + gemmFloorMs(g, pk), 0));
  const floorSum = [...floors.values()].reduce((a, f) => a + (Number.isFinite(f) ? f : 0), 0);
  console.log(`GPU time by op, ${what} (last one): ${total.toFixed(1)} ms busy of ${wallMs.toFixed(1)} ms wall` +
    (pk ? `; the data sheet's floor of the ops with a cost model: ${floorSum.toFixed(1)} ms` : ""));
  for (const [name, [ms, n]] of rows.slice(0, 24)) {
    const f = floors.get(name)!;
    console.log(`  ${name.padEnd(20)} ${ms.toFixed(1).padStart(8)} ms ${String(n).padStart(7)} calls ${((1000 * ms) / n).toFixed(1).padStart(9)} µs/call` +
      (Number.isFinite(f) ? ` ${f.toFixed(1).padStart(8)} ms floor ${(ms / f).toFixed(1).padStart(6)}×` : ""));
  }
  const gemms = [...p.gemms].sort((a, b) => b.ms - a.ms);
  if (!gemms.length) return;
  const gemmMs = gemms.reduce((a, g) => a + g.ms, 0);
  const floor = pk ? ` (the data sheet's floor: ${gemms.reduce((a, g) => a + gemmFloorMs(g, pk), 0).toFixed(1)} ms)` : "";
  console.log(`  GEMMs by shape (${gemms.length} shapes, ${gemmMs.toFixed(1)} ms${floor}; C [M, N] = op(A) op(B), f32 out; the first ${Math.min(16, gemms.length)}):`);
  for (const g of gemms.slice(0, 16)) {
    const s = g.ms / 1000;
    console.log(`    ${g.shape.padEnd(44)} ${g.ms.toFixed(1).padStart(8)} ms ${String(g.calls).padStart(6)} calls ${((1000 * g.ms) / g.calls).toFixed(1).padStart(8)} µs/call ` +
      `${(g.flops / s / 1e12).toFixed(1).padStart(6)} TFLOP/s ${(g.bytes / s / 1e9).toFixed(0).padStart(6)} GB/s` + (pk ? ` ${(g.ms / gemmFloorMs(g, pk)).toFixed(1).padStart(6)}× floor` : ""));
  }
}

/** the last row of each sequence of hidden states [B*T, C] (what decoding needs the logits of) */
function rowsLast(h: Tensor, B: number, T: number): Tensor {
  return embedding(fromHost(Int32Array.from({ length: B }, (_, b) => b * T + T - 1), [B], "i32"), h);
}

main();
