// Makes assets/tiny-calc: the model of the calculator example (`aha train --example calculator`). Writes a word-level
// tokenizer (scripts/tiny-tokenizer.ts) with the example's chat template, a llama config and a random init, then
// trains it with the project's own engine on CPU (full fine-tuning, loss on the assistant's own tokens only: tool
// results and template tokens are masked, as in the RL rollout) on conversations of src/defaults/calculator.ts.
// A fraction `tool-rate` of the conversations go through the calculator (a <tool_call>, the tool's answer, then the
// <answer>); the rest answer at once with the right number, which a model this small cannot compute for two-digit
// products and three-digit sums: it learns the tool's use, rarely picks it, and guesses when it does not. That is
// the room GRPO has: rewarding correct answers teaches it to call the calculator.
// Is not: a general pretraining script. Deterministic for a given seed on one host.
//
// The committed assets/tiny-calc is `--steps 300` of these defaults (948 s on the 2-core machine while it was shared
// with eight other builds; the first N steps are the same whatever --steps is): it picks the tool in a third of its
// samples but does not yet copy the tool's result into its answer. The full 1200 steps are still to be run.
//
//   node --import tsx scripts/make-calculator-model.ts [--out assets/tiny-calc] [--steps N] [--tool-rate 0.3]
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
import { calcDataset, calcTrajectory, calculatorTool, CALC_TEMPLATE, type CalcProblem } from "../src/defaults/calculator.ts";
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
    steps: { type: "string", default: "1500" },
    batch: { type: "string", default: "32" },
    lr: { type: "string", default: "3e-3" },
    warmup: { type: "string", default: "30" },
    "tool-rate": { type: "string", default: "0.3" },
    "eval-every": { type: "string", default: "250" },
    "eval-n": { type: "string", default: "100" },
    /** also write the weights every N steps (0: only at the end); the first s steps are the same whatever --steps is */
    "save-every": { type: "string", default: "0" },
  },
});
const num = (k: keyof typeof a) => Number(a[k]);
const out = a.out!, seed = num("seed");
const C = num("hidden"), L = num("layers"), H = num("heads"), I = num("intermediate");
const steps = num("steps"), B = num("batch"), lr = num("lr"), warmup = num("warmup"), toolRate = num("tool-rate");
const TOOLS = toolSchemas([calculatorTool]);
/** tags with underscores (<tool_call>), words with an optional leading space, digits, punctuation, whitespace */
const REGEX = "</?[a-z_]+>| ?[A-Za-z]+|[0-9]| ?[^\\sA-Za-z0-9]|\\s";

// ---- tokenizer: the vocabulary of every rendered conversation (both paths) of both splits ----
mkdirSync(out, { recursive: true });
const templates = ChatTemplates.from(CALC_TEMPLATE, {});
/** The template's text of a conversation (before the tokenizer exists). */
const render = (msgs: Message[], gen: boolean) => templates.render(msgs, { tools: TOOLS, addGenerationPrompt: gen });
const corpus: string[] = [];
for (const split of ["train", "test"] as const)
  for (const p of calcDataset(split, 20000, 12345)) for (const tool of [true, false]) corpus.push(render([user(p), ...calcTrajectory(p, tool)], false));
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
/** The conversation's ids and the mask of the assistant's own tokens, found by rendering its prefixes (the template preserves them). */
function encodeConversation(prompt: Message[], traj: Message[]): { ids: number[]; own: Uint8Array; P: number } {
  const ids = tok.encodeChat([...prompt, ...traj], templ);
  const own = new Uint8Array(ids.length);
  const P = tok.encodeChat(prompt, { ...templ, addGenerationPrompt: true }).length;
  traj.forEach((m, j) => {
    if (m.role !== "assistant") return;
    const start = tok.encodeChat([...prompt, ...traj.slice(0, j)], { ...templ, addGenerationPrompt: true }).length;
    const upTo = tok.encodeChat([...prompt, ...traj.slice(0, j + 1)], templ);
    const end = upTo.lastIndexOf(EOS) + 1;
    own.fill(1, start, end);
  });
  return { ids, own, P };
}

/** Write the current weights (f32) under a temporary name, then rename. */
function saveWeights(): void {
  const t: Record<string, StWriteTensor> = {};
  for (const w of model.allWeights()) t[w.name!] = { dtype: "F32", shape: w.shape, data: w.f32() };
  writeSafetensors(join(out, "model.safetensors.tmp"), t);
  renameSync(join(out, "model.safetensors.tmp"), join(out, "model.safetensors"));
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

// ---- evaluation with single-turn greedy generation: the first turn's choice, the call's expression, and the answer
// after the tool's result (each turn teacher-forced on the tool path) ----
const evalSet = calcDataset("test", num("eval-n"), seed + 1);
function report(step: number, sec: number): void {
  noGrad(() => {
    const prompts = evalSet.map((p) => tok.encodeChat([user(p)], { ...templ, addGenerationPrompt: true }));
    const first = generate(model, prompts, { temperature: 0, maxTokens: 48, stopTokenIds: tok.eosTokenIds, logprobs: false });
    let calls = 0, exprOk = 0;
    first.forEach((c, i) => {
      const text = tok.decode(c.tokenIds, { skipSpecialTokens: true });
      if (text.startsWith("<tool_call>")) { calls++; if (text.includes(`"expression": "${evalSet[i].expression}"`)) exprOk++; }
    });
    const sampled = generate(model, prompts, { temperature: 1, maxTokens: 2, stopTokenIds: tok.eosTokenIds, logprobs: false, seed: step, n: 4 });
    const rate = sampled.filter((c) => tok.decode(c.tokenIds).startsWith("<tool_call>")).length / sampled.length;
    const afterTool = evalSet.map((p) => tok.encodeChat([user(p), ...calcTrajectory(p, true).slice(0, 2)], { ...templ, addGenerationPrompt: true }));
    const answers = generate(model, afterTool, { temperature: 0, maxTokens: 12, stopTokenIds: tok.eosTokenIds, logprobs: false });
    const copied = answers.filter((c, i) => tok.decode(c.tokenIds, { skipSpecialTokens: true }).includes(`<answer>\n${evalSet[i].answer}\n</answer>`)).length;
    const direct = evalSet.map((p) => tok.encodeChat([user(p)], { ...templ, addGenerationPrompt: true }));
    // the direct path's accuracy: force the answer tag and read the number
    const forced = direct.map((ids) => [...ids, ...tok.encode("<answer>\n", { addSpecialTokens: false })]);
    const guesses = generate(model, forced, { temperature: 0, maxTokens: 8, stopTokenIds: tok.eosTokenIds, logprobs: false });
    const right = guesses.filter((c, i) => tok.decode(c.tokenIds, { skipSpecialTokens: true }).startsWith(`${evalSet[i].answer}\n`)).length;
    const n = evalSet.length;
    console.log(`  eval @${step} (${sec.toFixed(0)}s): greedy first turn calls the tool ${(100 * calls / n).toFixed(0)}% (expression right ${(100 * exprOk / Math.max(1, calls)).toFixed(0)}%), ` +
      `sampled tool rate ${(100 * rate).toFixed(0)}%, answer copied after the tool ${(100 * copied / n).toFixed(0)}%, direct answers right ${(100 * right / n).toFixed(0)}%`);
  });
}

model.trainAll();
const params = model.parameters();
const opt = new AdamW(params, { lr, weightDecay: 0.01, beta2: 0.98 });
const pathRng = new Xoshiro(mixSeed(seed, 13));
const train = calcDataset("train", steps * B, seed).map((p) => encodeConversation([user(p)], calcTrajectory(p, pathRng.next() < toolRate)));
const t0 = Date.now();
let ema = 0;
for (let step = 0; step < steps; step++) {
  const cur = scheduledLr(lr, "constant_with_warmup", step, steps, warmup);
  const loss = scope(() => {
    const l = sftLoss(train.slice(step * B, (step + 1) * B));
    backward(l);
    return l.item();
  });
  clipGradNorm(params, 1.0);
  opt.update(cur);
  opt.zeroGrad();
  ema = step === 0 ? loss : 0.95 * ema + 0.05 * loss;
  const done = step + 1;
  if (done % 50 === 0) console.log(`step ${done}/${steps} loss ${ema.toFixed(4)} lr ${cur.toExponential(2)} ${((Date.now() - t0) / done).toFixed(0)} ms/step`);
  if (done % num("eval-every") === 0 || done === steps) report(done, (Date.now() - t0) / 1000);
  if (num("save-every") > 0 && done % num("save-every") === 0 && done < steps) { saveWeights(); console.log(`  saved the weights of step ${done}`); }
}
saveWeights();
console.log(`done: ${steps} steps in ${((Date.now() - t0) / 1000).toFixed(0)} s → ${out}`);
