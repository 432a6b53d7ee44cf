// The calculator example (`aha train --example calculator`): word problems whose arithmetic a tiny model cannot do in
// its head (two-digit products, three-digit sums and differences), a `calculator` tool, and the chat template of the
// model that learns to call it (assets/tiny-calc, made by scripts/make-calculator-model.ts).
// Is: a seeded generator (train and held-out splits disjoint by question text, as ./arith.ts), the tool (an
// arithmetic expression evaluator: + - * / and parentheses on decimal numbers), the conversations the model is
// pretrained on — the tool path (a <tool_call> with the expression, the tool's answer, then <answer>…</answer>) and the
// direct path (an <answer> written at once) — and the template that renders them in the Qwen2.5 style (hermes tool
// calls, results in a user turn as <tool_response>…</tool_response>), with the tool list shortened to its names.
// Is not: the training loop (src/agents, src/grpo) or the run (./calculator-run.ts).
import { mixSeed, Xoshiro } from "../engine/rng.ts";
import type { Message } from "../tokenize/index.ts";
import type { Tool } from "../tools/index.ts";
import { cap, CONTAINERS, OBJECTS, PEOPLE, splitOf, type ArithSplit } from "./arith.ts";

export type CalcKind = "mul" | "add" | "sub";

export interface CalcProblem {
  question: string;
  /** the expression the tool should get, e.g. "37 * 48" */
  expression: string;
  /** the result, as a string ("1776") */
  answer: string;
  kind: CalcKind;
}

/** One problem drawn with rng. */
function draw(rng: () => number): CalcProblem {
  const int = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
  const pick = <T>(xs: T[]): T => xs[Math.floor(rng() * xs.length)];
  const [name, he] = pick(PEOPLE);
  let [name2] = pick(PEOPLE);
  while (name2 === name) [name2] = pick(PEOPLE);
  const obj = pick(OBJECTS), box = pick(CONTAINERS);
  const u = rng();
  if (u < 0.4) {
    const a = int(12, 99), b = int(12, 99);
    const q = pick([
      `${name} has ${a} bags with ${b} ${obj} in each bag. How many ${obj} does ${he} have in all?`,
      `${name} buys ${a} boxes of ${obj}. Each box holds ${b} ${obj}. How many ${obj} did ${he} buy?`,
    ]);
    return { question: q, expression: `${a} * ${b}`, answer: String(a * b), kind: "mul" };
  }
  if (u < 0.7) {
    const a = int(100, 999), b = int(100, 999);
    const q = pick([
      `There are ${a} ${obj} in a ${box}. ${name} puts in ${b} more. How many ${obj} are in the ${box} now?`,
      `${name} has ${a} ${obj} and ${name2} has ${b} ${obj}. How many ${obj} do they have together?`,
    ]);
    return { question: q, expression: `${a} + ${b}`, answer: String(a + b), kind: "add" };
  }
  const a = int(500, 999), b = int(100, 499);
  const q = pick([
    `${name} had ${a} ${obj}. ${cap(he)} lost ${b} of them. How many ${obj} does ${he} have left?`,
    `There are ${a} ${obj} in a ${box}. ${name} takes out ${b}. How many ${obj} are left in the ${box}?`,
  ]);
  return { question: q, expression: `${a} - ${b}`, answer: String(a - b), kind: "sub" };
}

/** n problems of a split (deterministic; no question is in both splits, see arith.ts splitOf). */
export function calcDataset(split: ArithSplit, n: number, seed = 0): CalcProblem[] {
  const rng = new Xoshiro(mixSeed(seed, split === "train" ? 3 : 4)).fn;
  const out: CalcProblem[] = [];
  while (out.length < n) {
    const p = draw(rng);
    if (splitOf(p.question) === split) out.push(p);
  }
  return out;
}

/** Dataset rows: a conversational prompt (one user turn) and the `answer` column gsm8k/correctness reads. */
export function calcRows(split: ArithSplit, n: number, seed = 0): { prompt: Message[]; answer: string; kind: CalcKind }[] {
  return calcDataset(split, n, seed).map((p) => ({ prompt: [{ role: "user", content: p.question }], answer: p.answer, kind: p.kind }));
}

/** The final answer as the model writes it (gsm8k/correctness reads the number inside <answer>). */
export const answerText = (answer: string) => `<answer>\n${answer}\n</answer>`;

/** The conversation after the prompt: through the calculator, or answered at once (the answer given may be wrong). */
export function calcTrajectory(p: CalcProblem, useTool: boolean, directAnswer = p.answer): Message[] {
  if (!useTool) return [{ role: "assistant", content: answerText(directAnswer) }];
  return [
    { role: "assistant", content: "", tool_calls: [{ id: "000000000", type: "function", function: { name: "calculator", arguments: { expression: p.expression } } }] },
    { role: "tool", name: "calculator", tool_call_id: "000000000", content: p.answer },
    { role: "assistant", content: answerText(p.answer) },
  ];
}

/**
 * Evaluate an arithmetic expression: numbers, + - * /, unary minus, parentheses. Throws on anything else (the error
 * goes back to the model as the tool's message).
 */
export function evaluateExpression(expr: string): number {
  const s = expr.replace(/\s+/g, "");
  let i = 0;
  const fail = (what: string): never => { throw new Error(`${what} at position ${i} of "${expr}"`); };
  const atom = (): number => {
    if (s[i] === "(") { i++; const v = sum(); if (s[i] !== ")") fail("expected )"); i++; return v; }
    if (s[i] === "-") { i++; return -atom(); }
    const m = /^\d+(\.\d+)?/.exec(s.slice(i));
    if (!m) fail(i >= s.length ? "unexpected end" : `unexpected "${s[i]}"`);
    i += m![0].length;
    return Number(m![0]);
  };
  const product = (): number => {
    let v = atom();
    while (s[i] === "*" || s[i] === "/") {
      const op = s[i++], r = atom();
      if (op === "/" && r === 0) fail("division by zero");
      v = op === "*" ? v * r : v / r;
    }
    return v;
  };
  const sum = (): number => {
    let v = product();
    while (s[i] === "+" || s[i] === "-") { const op = s[i++], r = product(); v = op === "+" ? v + r : v - r; }
    return v;
  };
  const v = sum();
  if (i < s.length) fail(`unexpected "${s[i]}"`);
  return v;
}

/** The tool: evaluates an arithmetic expression; the result as the model reads numbers (no trailing ".0"). */
export const calculatorTool: Tool = {
  name: "calculator",
  description: "Evaluate an arithmetic expression with + - * / and parentheses",
  parameters: { type: "object", properties: { expression: { type: "string", description: "e.g. 37 * 48" } }, required: ["expression"] },
  execute: ({ expression }) => {
    const v = evaluateExpression(String(expression));
    return String(Number.isInteger(v) ? v : Number(v.toFixed(6)));
  },
};

/**
 * The tiny model's chat template: ChatML with Qwen2.5-style tool calls and results; the system turn lists the tools
 * by name only (the model learns the one tool's use in pretraining, and short prompts keep it fast).
 */
export const CALC_TEMPLATE =
  "{%- if tools %}{{ '<|im_start|>system\\nTools:' }}{% for t in tools %}{{ ' ' + t.function.name }}{% endfor %}{{ '<|im_end|>\\n' }}{% endif %}" +
  "{%- for m in messages %}" +
  "{%- if m.role == 'tool' %}{{ '<|im_start|>user\\n<tool_response>\\n' + m.content + '\\n</tool_response><|im_end|>\\n' }}" +
  "{%- elif m.role == 'assistant' %}{{ '<|im_start|>assistant\\n' + (m.content or '') }}" +
  "{%- if m.tool_calls %}{% for tc in m.tool_calls %}{{ '<tool_call>\\n{\"name\": \"' + tc.function.name + '\", \"arguments\": ' + (tc.function.arguments | tojson) + '}\\n</tool_call>' }}{% endfor %}{% endif %}" +
  "{{ '<|im_end|>\\n' }}" +
  "{%- else %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endif %}" +
  "{%- endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
