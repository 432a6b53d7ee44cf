// Checks the committed tiny model folder: the tokenizer loads through the project's loader, the chat template renders
// the prompt format of src/defaults/arith.ts, every generated text round-trips exactly at word level, the weights
// load, and (unless --quick) the held-out accuracy, greedy and at temperature 1.
// Is not: a unit test of the tokenizer library.
//
//   node --import tsx scripts/check-tiny-assets.ts [--dir assets/tiny-arith] [--quick]
import { statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { noGrad } from "../src/engine/index.ts";
import { CausalLM } from "../src/models/model.ts";
import { loadTokenizer } from "../src/tokenize/index.ts";
import { arithDataset, arithMessages, arithPromptText } from "../src/defaults/arith.ts";
import { evaluateArith } from "../src/defaults/eval.ts";
import { checkRoundTrip } from "./tiny-tokenizer.ts";

const { values: a } = parseArgs({ options: { dir: { type: "string", default: "assets/tiny-arith" }, quick: { type: "boolean", default: false }, n: { type: "string", default: "500" } } });
const dir = a.dir!;
const tok = loadTokenizer(dir);
const problems = [...arithDataset("train", 3000, 4242), ...arithDataset("test", 1000, 4243)];
for (const p of problems.slice(0, 200)) {
  const rendered = tok.applyChatTemplate(arithMessages(p), { addGenerationPrompt: true });
  if (rendered !== arithPromptText(p.question)) throw new Error(`chat template renders ${JSON.stringify(rendered)}`);
}
const files = { tokenizer: JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")), config: JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")) };
const longest = checkRoundTrip(files, problems.flatMap((p) => [arithPromptText(p.question), p.target, arithPromptText(p.question) + p.target + "<|im_end|>"]));
const model = CausalLM.load(dir, { dtype: "f32" });
const params = model.allWeights().reduce((s, t) => s + t.numel, 0);
if (tok.vocabSize !== model.config.vocabSize) throw new Error(`tokenizer has ${tok.vocabSize} ids, model ${model.config.vocabSize}`);
console.log(`ok: vocab ${tok.vocabSize}, eos ids [${tok.eosTokenIds}], pad ${tok.padTokenId}; longest sequence ${longest} tokens; ` +
  `${(params / 1e6).toFixed(3)}M params, model.safetensors ${(statSync(join(dir, "model.safetensors")).size / 2 ** 20).toFixed(2)} MiB`);
if (!a.quick) {
  const test = arithDataset("test", Number(a.n), 1);
  const g = noGrad(() => evaluateArith(model, tok, test, { temperature: 0 }));
  const s = noGrad(() => evaluateArith(model, tok, test, { temperature: 1, n: 4, seed: 1 }));
  console.log(`held-out (${test.length}): greedy ${(100 * g.accuracy).toFixed(1)}% (format ${(100 * g.format).toFixed(0)}%), ` +
    `temperature 1 ${(100 * s.accuracy).toFixed(1)}% (format ${(100 * s.format).toFixed(0)}%, pass@4 ${(100 * s.passAtN).toFixed(0)}%)`);
}
