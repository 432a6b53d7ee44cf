// Generated arithmetic word problems for the default run (`npx aha train` with no arguments).
// Is: a seeded generator of short word problems (addition, subtraction, small multiplication, and add-then-subtract
// in two steps) with their numeric answer and the SFT target in the GSM8K recipe's format:
//   <think>\n23 + 18 = 41\n</think>\n<answer>\n41\n</answer>\n
// and the prompt format (one user turn in ChatML, no system prompt). Train and held-out splits are disjoint by
// question text: a question belongs to the held-out split when its hash falls in the held-out fifth, so no held-out
// question is ever seen in training, whatever the seeds. The arithmetic facts themselves (a small table: sums up
// to 49, differences of numbers up to 50, products up to 5 × 10; the second operand is one digit) do recur across splits, as in GSM8K.
// Is not: a tokenizer or a reward (GSM8K correctness/format rewards score these completions as they are).
import { mixSeed, Xoshiro } from "../engine/rng.ts";
import type { Message } from "../tokenize/index.ts";

export type ArithSplit = "train" | "test";
export type ArithKind = "add" | "sub" | "mul" | "add_sub";

export interface ArithProblem {
  question: string;
  /** the final number, as a string ("41") */
  answer: string;
  /** the assistant's completion to imitate in SFT, ending with a newline after </answer> */
  target: string;
  kind: ArithKind;
}

/** Names with their subject and object pronouns. */
export const PEOPLE: [string, string][] = [
  ["Mia", "she"], ["Tom", "he"], ["Ana", "she"], ["Leo", "he"], ["Sara", "she"], ["Ben", "he"],
  ["Lily", "she"], ["Sam", "he"], ["Emma", "she"], ["Jack", "he"], ["Zoe", "she"], ["Max", "he"],
];
export const OBJECTS = ["marbles", "apples", "stickers", "cards", "pencils", "cookies", "books", "shells", "coins", "toys", "eggs", "balloons"];
export const CONTAINERS = ["box", "bag", "basket", "jar"];

export const cap = (s: string) => s[0].toUpperCase() + s.slice(1);

/** The think line(s) and the answer, formatted as the model must write them. */
export function formatTarget(steps: string[], answer: string): string {
  return `<think>\n${steps.join("\n")}\n</think>\n<answer>\n${answer}\n</answer>\n`;
}

/** One problem drawn with rng; the split is decided by `splitOf` on its text, not here. */
function draw(rng: () => number): ArithProblem {
  const int = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
  const pick = <T>(xs: T[]): T => xs[Math.floor(rng() * xs.length)];
  const [name, he] = pick(PEOPLE);
  let [name2] = pick(PEOPLE);
  while (name2 === name) [name2] = pick(PEOPLE);
  const obj = pick(OBJECTS);
  const box = pick(CONTAINERS);
  const u = rng();
  if (u < 0.3) {
    const a = int(2, 40), b = int(2, 9);
    const q = pick([
      `${name} has ${a} ${obj} and finds ${b} more. How many ${obj} does ${he} have now?`,
      `${name} had ${a} ${obj}. ${cap(he)} bought ${b} more. How many ${obj} does ${he} have now?`,
      `There are ${a} ${obj} in a ${box}. ${name} puts in ${b} more. How many ${obj} are in the ${box} now?`,
      `${name} has ${a} ${obj} and ${name2} has ${b} ${obj}. How many ${obj} do they have together?`,
    ]);
    return { question: q, answer: String(a + b), target: formatTarget([`${a} + ${b} = ${a + b}`], String(a + b)), kind: "add" };
  }
  if (u < 0.6) {
    const a = int(10, 50), b = int(1, 9);
    const q = pick([
      `${name} has ${a} ${obj} and gives ${b} to ${name2}. How many ${obj} does ${he} have left?`,
      `${name} had ${a} ${obj}. ${cap(he)} lost ${b} of them. How many ${obj} does ${he} have left?`,
      `There are ${a} ${obj} in a ${box}. ${name} takes out ${b}. How many ${obj} are left in the ${box}?`,
    ]);
    return { question: q, answer: String(a - b), target: formatTarget([`${a} - ${b} = ${a - b}`], String(a - b)), kind: "sub" };
  }
  if (u < 0.8) {
    const a = int(2, 5), b = int(2, 10);
    const q = pick([
      `${name} has ${a} bags with ${b} ${obj} in each bag. How many ${obj} does ${he} have in all?`,
      `${name} buys ${a} boxes of ${obj}. Each box holds ${b} ${obj}. How many ${obj} did ${he} buy?`,
    ]);
    return { question: q, answer: String(a * b), target: formatTarget([`${a} * ${b} = ${a * b}`], String(a * b)), kind: "mul" };
  }
  const a = int(2, 30), b = int(2, 9), c = int(1, Math.min(9, a + b - 1));
  const s = a + b, r = s - c;
  const q = pick([
    `${name} has ${a} ${obj}. ${cap(he)} finds ${b} more and then gives ${c} to ${name2}. How many ${obj} does ${he} have now?`,
    `There are ${a} ${obj} in a ${box}. ${name} puts in ${b} more and then takes out ${c}. How many ${obj} are in the ${box} now?`,
  ]);
  return { question: q, answer: String(r), target: formatTarget([`${a} + ${b} = ${s}`, `${s} - ${c} = ${r}`], String(r)), kind: "add_sub" };
}

/** Which split a question belongs to: held-out ("test") for one hash bucket (FNV-1a) in five. */
export function splitOf(question: string): ArithSplit {
  let h = 0x811c9dc5;
  for (let i = 0; i < question.length; i++) h = Math.imul(h ^ question.charCodeAt(i), 0x01000193);
  return (h >>> 0) % 5 === 0 ? "test" : "train";
}

/**
 * n problems of a split, drawn with a stream seeded by (seed, split). Deterministic; train and test never share a
 * question (see splitOf), so any two seeds give disjoint train and held-out sets.
 */
export function arithDataset(split: ArithSplit, n: number, seed = 0): ArithProblem[] {
  const rng = new Xoshiro(mixSeed(seed, split === "train" ? 1 : 2)).fn;
  const out: ArithProblem[] = [];
  while (out.length < n) {
    const p = draw(rng);
    if (splitOf(p.question) === split) out.push(p);
  }
  return out;
}

/**
 * The target with a careless slip in its last calculation: the result (and so the answer) off by `delta`
 * (e.g. ±1, ±10). The pretraining corpus of the tiny model has such slips in part of its solutions.
 */
export function withSlip(target: string, delta: number): { target: string; answer: string } {
  const lines = target.split("\n");
  const i = lines.indexOf("</think>") - 1;
  const m = /^(\d+) ([-+*]) (\d+) = (\d+)$/.exec(lines[i]);
  if (!m) throw new Error(`withSlip: no calculation in ${JSON.stringify(target)}`);
  const wrong = Math.max(0, Number(m[4]) + delta);
  const finalWrong = wrong === Number(m[4]) ? wrong + 1 : wrong;
  lines[i] = `${m[1]} ${m[2]} ${m[3]} = ${finalWrong}`;
  return { target: formatTarget(lines.slice(1, i + 1), String(finalWrong)), answer: String(finalWrong) };
}

/** The prompt as chat messages: one user turn holding the question (no system prompt). */
export function arithMessages(p: Pick<ArithProblem, "question">): Message[] {
  return [{ role: "user", content: p.question }];
}

/**
 * Dataset rows in the shape the GRPO data layer uses (conversational `prompt`, `answer` column for the GSM8K
 * correctness reward).
 */
export function arithRows(split: ArithSplit, n: number, seed = 0): { prompt: Message[]; answer: string; kind: ArithKind }[] {
  return arithDataset(split, n, seed).map((p) => ({ prompt: arithMessages(p), answer: p.answer, kind: p.kind }));
}

/**
 * The ChatML template of the tiny model (also in its tokenizer_config.json). Rendered prompt for one question:
 *   <|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n
 * and the completion ends with <|im_end|> (the EOS).
 */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** The same prompt text as the template renders, without a tokenizer (for scripts and tests). */
export function arithPromptText(question: string): string {
  return `<|im_start|>user\n${question}<|im_end|>\n<|im_start|>assistant\n`;
}
