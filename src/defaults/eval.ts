// Accuracy of a model on arithmetic problems: sample completions with the generation engine (greedy or at a
// temperature), decode them, and score them as the GSM8K correctness and strict-format rewards do.
// Is: the measuring stick of scripts/make-tiny-model.ts and scripts/tiny-grpo-check.ts. Is not: `aha eval` (the
// CLI's evaluation over any dataset and reward set); it knows only the arithmetic problems of ./arith.ts.
import type { CausalLM } from "../models/model.ts";
import type { Tokenizer } from "../tokenize/index.ts";
import { generate } from "../generate/generate.ts";
import { extractXmlAnswer, numbersEqual, parseNumber } from "../rewards/builtins/extract.ts";
import { STRICT_FORMAT } from "../rewards/builtins/gsm8k.ts";
import { arithMessages, type ArithProblem } from "./arith.ts";

export interface ArithEval {
  /** fraction of completions whose <answer> equals the answer (the correctness reward's full marks) */
  accuracy: number;
  /** fraction matching the strict <think>…</think><answer>…</answer> format */
  format: number;
  /** fraction of problems with at least one correct completion among its n (pass@n) */
  passAtN: number;
  /** mean completion length in tokens */
  meanTokens: number;
  completions: string[];
}

export interface ArithEvalOpts {
  /** 0 = greedy (default 1) */
  temperature?: number;
  /** completions per problem (default 1) */
  n?: number;
  seed?: number;
  maxTokens?: number;
}

/** Prompt ids of each problem (chat template, generation prompt). */
export function promptIds(tok: Tokenizer, problems: Pick<ArithProblem, "question">[]): number[][] {
  return problems.map((p) => tok.encodeChat(arithMessages(p), { addGenerationPrompt: true }));
}

/** True when the completion's <answer> is the expected number (gsm8k/correctness gives it 2.0). */
export function isCorrect(completion: string, answer: string): boolean {
  return numbersEqual(parseNumber(extractXmlAnswer(completion)), parseNumber(answer));
}

export function evaluateArith(model: CausalLM, tok: Tokenizer, problems: ArithProblem[], opts: ArithEvalOpts = {}): ArithEval {
  const n = opts.n ?? 1;
  const comps = generate(model, promptIds(tok, problems), {
    n, temperature: opts.temperature ?? 1, maxTokens: opts.maxTokens ?? 48, stopTokenIds: tok.eosTokenIds, seed: opts.seed ?? 0, logprobs: false,
  });
  let correct = 0, format = 0, tokens = 0;
  const solved = new Set<number>();
  const texts: string[] = [];
  for (const c of comps) {
    const text = tok.decode(c.tokenIds, { skipSpecialTokens: true });
    texts.push(text);
    tokens += c.tokenIds.length;
    if (isCorrect(text, problems[c.prompt].answer)) { correct++; solved.add(c.prompt); }
    if (STRICT_FORMAT.test(text)) format++;
  }
  return { accuracy: correct / comps.length, format: format / comps.length, passAtN: solved.size / problems.length, meanTokens: tokens / comps.length, completions: texts };
}
