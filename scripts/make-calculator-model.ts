// Makes assets/tiny-calc: the model of the calculator example (`aha train --example calculator`). Writes a word-level
// tokenizer (scripts/tiny-tokenizer.ts) with the example's chat template, a llama config and a random init, then
// trains it with the project's own engine on CPU (full fine-tuning, loss on the assistant's own tokens only: tool
// results and template tokens are masked, as in the RL rollout) on conversations of src/defaults/calculator.ts.
// The corpus is built for GRPO to have room: `tool-rate` (70%) of the conversations go through the calculator (a
// <tool_call> with the expression copied from the question, the tool's answer, then that answer copied into
// <answer>), so the tool's use is learned well; the rest answer at once with the right number, which a model this
// small cannot compute (two-digit products, three-digit sums and differences), so alone it guesses and is nearly
// always wrong. Which path the first token takes is learned on every direct conversation but only on a share of the
// tool ones, so that the model picks the tool in `call-rate` (25%) of its samples and never greedily. Rewarding
// correct answers then teaches it to call the calculator.
// Is not: a general pretraining script. Deterministic for a given seed on one host (bit-identical across thread
// counts, and for a run resumed from a checkpoint: the data of step s and the constant learning rate do not depend on
// --steps, so the first N steps of any run are the same).
//
// The committed assets/tiny-calc is these defaults, 700 steps × 32 conversations at lr 3e-3 (0.352M params, 1.4 MB):
// on 100 held-out problems, the expression right 100% and the tool's result copied 98% (greedy, after a forced
// start), direct answers right 0%; whole episodes sampled at temperature 1 call the tool 24% of the time and are right
// 20% (83% of those that call it); greedy ones never call it. The copying appears between steps 300 and 500. 700
// steps took 43 min at one thread while the 2-core machine was shared with eight other builds (load average ~20);
// see docs/agents.md for the CPU time.
//
//   node --import tsx scripts/make-calculator-model.ts [--out assets/tiny-calc] [--steps 700] [--tool-rate 0.7]
//     [--call-rate 0.25] [--save-every 100 [--checkpoints DIR]] [--resume]
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { backward, embedding, fromHost, noGrad, scale, scope, sum } from "../src/engine/index.ts";
import { CausalLM } from "../src/models/model.ts";
import { writeSafetensors, type StWriteTensor } from "../src/models/safetensors.ts";
import { AdamW, clipGradNorm, scheduledLr } from "../src/grpo/optim.ts";
import { ChatTemplates, loadTokenizer, type Message } from "../src/tokenize/index.ts";
import { mixSeed, Xoshiro } from "../src/engine/rng.ts";
import { generate } from "../src/generate/generate.ts";
import { answerText, calcDataset, calcTrajectory, calculatorTool, CALC_TEMPLATE, type CalcProblem } from "../src/defaults/calculator.ts";
import { CALC_CONFIG } from "../src/defaults/calculator-run.ts";
import { validateConfig } from "../src/grpo/config.ts";
import { listCheckpoints, loadCheckpoint, saveCheckpoint } from "../src/grpo/checkpoint.ts";
import { createAgent, runEpisodes } from "../src/agents/rollout.ts";
import { toolSchemas } from "../src/tools/index.ts";
import { buildTokenizer, checkRoundTrip } from "./tiny-tokenizer.ts";

const { values: a } = parseArgs({
  options: {
    out: { type: "string", default: "assets/tiny-calc" },
    seed: { type: "string", default: "0" },
    hidden: { type: "string", default: "96" },
    layers: { type: "string", default: "3" },
    heads: { type: "string", default: "4" },
    intermediate: { type: "string", default: "256" },
    steps: { type: "string", default: "700" },
    batch: { type: "string", default: "32" },
    lr: { type: "string", default: "3e-3" },
    warmup: { type: "string", default: "30" },
    /** the share of conversations that go through the calculator: they teach the tool's use */
    "tool-rate": { type: "string", default: "0.7" },
    /** the share of the first-turn choices that pick the tool: how often the model learns to call it */
    "call-rate": { type: "string", default: "0.25" },
    "eval-every": { type: "string", default: "100" },
    "eval-n": { type: "string", default: "100" },
    /** also write a checkpoint (weights and AdamW moments) every N steps (0: only at the end) */
    "save-every": { type: "string", default: "0" },
    /** continue from the newest checkpoint of --checkpoints (bit-identical to an uninterrupted run) */
    resume: { type: "boolean", default: false },
    checkpoints: { type: "string" },
  },
});
const num = (k: keyof typeof a) => Number(a[k]);
const out = a.out!, seed = num("seed");
const C = num("hidden"), L = num("layers"), H = num("heads"), I = num("intermediate");
const steps = num("steps"), B = num("batch"), lr = num("lr"), warmup = num("warmup"), toolRate = num("tool-rate"), callRate = num("call-rate");
if (!(callRate <= toolRate && toolRate <= 1 && callRate > 0)) throw new Error(`--call-rate (${callRate}) must be in (0, --tool-rate (${toolRate})]`);
const ckptDir = a.checkpoints ?? `${out}.checkpoints`;
const TOOLS = toolSchemas([calculatorTool]);
/** tags with underscores (<tool_call>), words with an optional leading space, digits, punctuation, whitespace */
const REGEX = "</?[a-z_]+>| ?[A-Za-z]+|[0-9]| ?[^\\sA-Za-z0-9]|\\s";

// ---- tokenizer: the vocabulary of rendered conversations of both splits (the tool path holds every word of the direct one) ----
mkdirSync(out, { recursive: true });
const templates = ChatTemplates.from(CALC_TEMPLATE, {});
/** The template's text of a conversation (before the tokenizer exists). */
const render = (msgs: Message[], gen: boolean) => templates.render(msgs, { tools: TOOLS, addGenerationPrompt: gen });
const corpus: string[] = [];
for (const split of ["train", "test"] as const)
  for (const p of calcDataset(split, 4000, 12345)) corpus.push(render([user(p), ...calcTrajectory(p, true)], false));
corpus.push(render([{ role: "user", content: "x" }, { role: "tool", content: "{\"error\": \"calculator: unexpected end at position 3\"}" }], true));
const tokFiles = buildTokenizer(corpus, { regex: REGEX, chatTemplate: CALC_TEMPLATE });
const fresh = [...calcDataset("train", 1000, seed + 999), ...calcDataset("test", 300, seed + 999)];
const longest = checkRoundTrip(tokFiles, fresh.flatMap((p) => [render([user(p), ...calcTrajectory(p, true)], false), render([user(p), ...calcTrajectory(p, false)], false)]));
writeFileSync(join(out, "tokenizer.json"), JSON.stringify(tokFiles.tokenizer, null, 1) + "\n");
writeFileSync(join(out, "tokenizer_config.json"), JSON.stringify(tokFiles.config, null, 2) + "\n");
const V = Object.keys((tokFiles.tokenizer.model as { vocab: object }).vocab).length;

function user(p: CalcProblem): Message {
  return { role: "user", content: p.question };
}

// ---- config and random init ----
const config = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: V, hidden_size: C, intermediate_size: I,
  num_hidden_layers: L, num_attention_heads: H, num_key_value_heads: H, head_dim: C / H, hidden_act: "silu",
  max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000, attention_bias: false, mlp_bias: false,
  tie_word_embeddings: true, bos_token_id: null, eos_token_id: 2, pad_token_id: 0, initializer_range: 0.02, torch_dtype: "float32",
};
writeFileSync(join(out, "config.json"), JSON.stringify(config, null, 2) + "\n");
writeFileSync(join(out, "generation_config.json"), JSON.stringify({ eos_token_id: [2, 0], pad_token_id: 0, do_sample: true, temperature: 1.0 }, null, 2) + "\n");

const initRng = new Xoshiro(mixSeed(seed, 7));
const normal = (std: number, n: number) => {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(initRng.next(), 1e-12), v = initRng.next();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    x[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) x[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return x;
};
const init: Record<string, StWriteTensor> = {};
const put = (name: string, shape: number[], data: Float32Array) => (init[name] = { dtype: "F32", shape, data });
put("model.embed_tokens.weight", [V, C], normal(0.02, V * C));
put("model.norm.weight", [C], new Float32Array(C).fill(1));
const residStd = 0.02 / Math.sqrt(2 * L);
for (let l = 0; l < L; l++) {
  const p = `model.layers.${l}`;
  for (const m of ["q_proj", "k_proj", "v_proj"]) put(`${p}.self_attn.${m}.weight`, [C, C], normal(0.02, C * C));
  put(`${p}.self_attn.o_proj.weight`, [C, C], normal(residStd, C * C));
  put(`${p}.mlp.gate_proj.weight`, [I, C], normal(0.02, I * C));
  put(`${p}.mlp.up_proj.weight`, [I, C], normal(0.02, I * C));
  put(`${p}.mlp.down_proj.weight`, [C, I], normal(residStd, C * I));
  put(`${p}.input_layernorm.weight`, [C], new Float32Array(C).fill(1));
  put(`${p}.post_attention_layernorm.weight`, [C], new Float32Array(C).fill(1));
}
writeSafetensors(join(out, "model.safetensors"), init);

const model = CausalLM.load(out, { dtype: "f32" });
const tok = loadTokenizer(out);
const nParams = model.allWeights().reduce((s, t) => s + t.numel, 0);
console.log(`model: hidden ${C}, ${L} layers, ${H} heads, mlp ${I}, vocab ${V}: ${(nParams / 1e6).toFixed(3)}M params; longest conversation ${longest} tokens`);

// ---- SFT on whole conversations: loss on the assistant's own tokens (each turn up to its <|im_end|>) ----
const EOS = tok.eosTokenIds[0];
const templ = { tools: TOOLS };
const promptIds = (p: CalcProblem) => tok.encodeChat([user(p)], { ...templ, addGenerationPrompt: true });
const ASSISTANT = tok.encode("<|im_start|>assistant\n", { addSpecialTokens: false });
/**
 * The conversation's ids and the mask of the assistant's own tokens: each assistant turn of CALC_TEMPLATE, from after
 * its "<|im_start|>assistant\n" through its <|im_end|>; `choice: false` leaves the first turn's first token (the choice
 * of path) out of the loss.
 */
function encodeConversation(prompt: Message[], traj: Message[], choice: boolean): { ids: number[]; own: Uint8Array } {
  const ids = tok.encodeChat([...prompt, ...traj], templ);
  const own = new Uint8Array(ids.length);
  let turn = 0;
  for (let i = 0; i + ASSISTANT.length <= ids.length; i++) {
    if (!ASSISTANT.every((x, k) => ids[i + k] === x)) continue;
    const start = i + ASSISTANT.length, end = ids.indexOf(EOS, start) + 1;
    own.fill(1, start + (turn++ === 0 && !choice ? 1 : 0), end);
    i = end - 1;
  }
  return { ids, own };
}

/**
 * Training example i: through the calculator with probability tool-rate; the choice token is learned on every direct
 * conversation and on a share d of the tool ones, so that the choices learned pick the tool at call-rate:
 * tool·d / (tool·d + 1 - tool) = call.
 */
const keepChoice = (callRate * (1 - toolRate)) / (toolRate * (1 - callRate));
const problems = calcDataset("train", steps * B, seed);
function example(i: number): { ids: number[]; own: Uint8Array } {
  const r = new Xoshiro(mixSeed(seed, 13, i));
  const tool = r.next() < toolRate;
  return encodeConversation([user(problems[i])], calcTrajectory(problems[i], tool), !tool || r.next() < keepChoice);
}

function sftLoss(batch: { ids: number[]; own: Uint8Array }[]) {
  const T = Math.max(...batch.map((e) => e.ids.length));
  const ids = new Int32Array(batch.length * T), mask = new Int32Array(batch.length * T);
  const rows: number[] = [], targets: number[] = [];
  batch.forEach((e, b) => {
    ids.set(e.ids, b * T);
    mask.fill(1, b * T, b * T + e.ids.length);
    for (let j = 1; j < e.ids.length; j++) if (e.own[j]) { rows.push(b * T + j - 1); targets.push(e.ids[j]); }
  });
  const h = model.forward(ids, batch.length, T, { attentionMask: mask });
  const hSel = embedding(fromHost(Int32Array.from(rows), [rows.length], "i32"), h);
  const { logp } = model.tokenLogprobs(hSel, Int32Array.from(targets));
  return scale(sum(logp), -1 / rows.length);
}

// ---- evaluation on held-out problems: whole episodes as the GRPO example runs them (the calculator really called),
// sampled at temperature 1 and greedy, and the skills apart (greedy, each after a forced start) ----
const evalSet = calcDataset("test", num("eval-n"), seed + 1);
const cfg = validateConfig({ ...CALC_CONFIG, model: out });
const agent = (await createAgent(cfg, tok, "llama"))!;
const rows = evalSet.map((p) => ({ prompt: [user(p)], answer: p.answer }));
async function report(step: number, sec: number): Promise<void> {
  const n = evalSet.length, pct = (k: number, of = n) => `${((100 * k) / Math.max(1, of)).toFixed(0)}%`;
  const gen = (prompts: number[][], maxTokens: number) => noGrad(() => generate(model, prompts, { temperature: 0, maxTokens, stopTokenIds: tok.eosTokenIds, logprobs: false }));
  const text = (c: { tokenIds: number[] }) => tok.decode(c.tokenIds, { skipSpecialTokens: true });
  const ids = (s: string) => tok.encode(s, { addSpecialTokens: false });
  // the tool call's expression, after a forced <tool_call>
  const calls = gen(evalSet.map((p) => [...promptIds(p), ...ids("<tool_call>")]), 40);
  const exprOk = calls.filter((c, i) => text(c).includes(`"expression": "${evalSet[i].expression}"`)).length;
  // the answer after the tool's result (the conversation so far teacher-forced)
  const after = gen(evalSet.map((p) => tok.encodeChat([user(p), ...calcTrajectory(p, true).slice(0, 2)], { ...templ, addGenerationPrompt: true })), 12);
  const copied = after.filter((c, i) => text(c).includes(answerText(evalSet[i].answer))).length;
  // the direct answer, after a forced <answer>
  const direct = gen(evalSet.map((p) => [...promptIds(p), ...ids("<answer>\n")]), 8);
  const right = direct.filter((c, i) => text(c).startsWith(`${evalSet[i].answer}\n`)).length;
  const line = [`  eval @${step} (${sec.toFixed(0)} s): expression right ${pct(exprOk)}, result copied ${pct(copied)}, direct answers right ${pct(right)};`];
  for (const temperature of [1, 0]) {
    const eps = await runEpisodes(model, tok, rows, agent, { ...cfg, temperature, n: 1, seed: step });
    const ok = eps.map((e) => { const last = e.messages.at(-1); return !!last && last.role === "assistant" && !last.tool_calls && String(last.content).includes(answerText(evalSet[e.row].answer)); });
    const tool = eps.map((e) => e.toolCalls > 0);
    const okTool = ok.filter((x, i) => x && tool[i]).length, nTool = tool.filter(Boolean).length;
    line.push(`${temperature ? "sampled" : "greedy"} episodes: accuracy ${pct(ok.filter(Boolean).length)}, tool called ${pct(nTool)} (right ${pct(okTool, nTool)} of those)${temperature ? ";" : ""}`);
  }
  console.log(line.join(" "));
}

/** Write the current weights (f32) under a temporary name, then rename. */
function saveWeights(): void {
  const t: Record<string, StWriteTensor> = {};
  for (const w of model.allWeights()) t[w.name!] = { dtype: "F32", shape: w.shape, data: w.f32() };
  writeSafetensors(join(out, "model.safetensors.tmp"), t);
  renameSync(join(out, "model.safetensors.tmp"), join(out, "model.safetensors"));
}

model.trainAll();
const params = model.parameters();
const opt = new AdamW(params, { lr, weightDecay: 0.01, beta2: 0.98 });
let first = 0;
if (a.resume) {
  const last = listCheckpoints(ckptDir).at(-1);
  if (last === undefined) throw new Error(`--resume: no checkpoint in ${ckptDir}`);
  first = loadCheckpoint(join(ckptDir, `checkpoint-${last}`), model, opt).global_step;
  console.log(`resumed from ${ckptDir}/checkpoint-${last}`);
}
console.log(`corpus: ${(100 * toolRate).toFixed(0)}% of the conversations through the calculator, the tool chosen in ${(100 * callRate).toFixed(0)}% of the choices learned`);
const t0 = Date.now();
let ema = 0;
for (let step = first; step < steps; step++) {
  const cur = scheduledLr(lr, "constant_with_warmup", step, steps, warmup);
  const batch = Array.from({ length: B }, (_, j) => example(step * B + j));
  const loss = scope(() => {
    const l = sftLoss(batch);
    backward(l);
    return l.item();
  });
  clipGradNorm(params, 1.0);
  opt.update(cur);
  opt.zeroGrad();
  ema = step === first ? loss : 0.95 * ema + 0.05 * loss;
  const done = step + 1, sec = (Date.now() - t0) / 1000;
  if (done % 25 === 0) console.log(`step ${done}/${steps} loss ${ema.toFixed(4)} lr ${cur.toExponential(2)} ${((1000 * sec) / (done - first)).toFixed(0)} ms/step`);
  if (done % num("eval-every") === 0 || done === steps) await report(done, sec);
  if (num("save-every") > 0 && (done % num("save-every") === 0 || done === steps)) {
    saveCheckpoint(ckptDir, model, opt, { global_step: done, rounds: done, seed, num_tokens: 0 }, out);
    console.log(`  checkpoint ${ckptDir}/checkpoint-${done}`);
  }
}
saveWeights();
console.log(`done: ${steps - first} steps in ${((Date.now() - t0) / 1000).toFixed(0)} s → ${out}`);
