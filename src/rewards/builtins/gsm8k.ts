// GSM8K rewards from the Unsloth / willccbb GRPO recipes: correctness, integer answer, strict format, soft format,
// XML tag count.
// Is: faithful ports with three documented changes — (1) `<think>` is the reasoning tag and `<reasoning>` (the
// recipe's) is accepted as an alias, the closing tag having to match the opening one; (2) the format regexes let the
// reasoning and answer span lines (the recipe's `.` stops at newlines, so multi-line reasoning never matched);
// (3) correctness compares numerically ("1,000" = "1000" = "1000.0"), the recipe compared strings.
// Is not: a math grader for non-numeric answers (those compare as trimmed strings).
import { completionText, type NamedReward, type RewardArgs, type RewardValues } from "../types.ts";
import { extractXmlAnswer, numbersEqual, parseNumber } from "./extract.ts";

/**
 * Strict format: the whole completion is exactly
 * `<think>\n…\n</think>\n<answer>\n…\n</answer>\n` (one or two final newlines, as Python's `$` allows).
 */
export const STRICT_FORMAT = /^<(think|reasoning)>\n[\s\S]*?\n<\/\1>\n<answer>\n[\s\S]*?\n<\/answer>\n\n?$/;

/** Soft format: starts with `<think>…</think>`, then whitespace, then `<answer>…</answer>` (anything may follow). */
export const SOFT_FORMAT = /^<(think|reasoning)>[\s\S]*?<\/\1>\s*<answer>[\s\S]*?<\/answer>/;

function answerColumn(args: RewardArgs, reward: string): unknown[] {
  const col = args.answer;
  if (!Array.isArray(col)) throw new Error(`${reward} needs an "answer" column in the dataset (columns: ${Object.keys(args).join(", ")})`);
  return col;
}

/** 2.0 when the extracted answer equals the `answer` column (numerically when both are numbers), else 0; null where the answer is missing. */
export function correctness(args: RewardArgs): RewardValues {
  const answers = answerColumn(args, "gsm8k/correctness");
  return args.completions.map((c, i) => {
    const want = answers[i];
    if (want === null || want === undefined) return null;
    const got = extractXmlAnswer(completionText(c));
    const a = parseNumber(got);
    const b = parseNumber(want);
    if (a !== null && b !== null) return numbersEqual(a, b) ? 2.0 : 0.0;
    return got === String(want).trim() ? 2.0 : 0.0;
  });
}

/** 0.5 when the extracted answer is an integer written with digits only (an optional leading minus allowed), else 0. */
export function intAnswer(args: RewardArgs): RewardValues {
  return args.completions.map((c) => (/^-?\d+$/.test(extractXmlAnswer(completionText(c))) ? 0.5 : 0.0));
}

/** 0.5 when the completion matches STRICT_FORMAT, else 0. */
export function strictFormat(args: RewardArgs): RewardValues {
  return args.completions.map((c) => (STRICT_FORMAT.test(completionText(c)) ? 0.5 : 0.0));
}

/** 0.5 when the completion matches SOFT_FORMAT, else 0. */
export function softFormat(args: RewardArgs): RewardValues {
  return args.completions.map((c) => (SOFT_FORMAT.test(completionText(c)) ? 0.5 : 0.0));
}

function count(text: string, sub: string): number {
  return text.split(sub).length - 1;
}

/**
 * The recipe's count_xml: +0.125 for each of `<think>\n`, `\n</think>\n`, `\n<answer>\n`, `\n</answer>` appearing
 * exactly once; minus 0.001 per character after `\n</answer>\n`, and per character beyond one after `\n</answer>`
 * (both penalties apply, as in the recipe — so a completion without `\n</answer>\n` is charged for its whole length
 * by the first penalty when it has `\n<answer>\n`, a quirk kept for comparability). The tag name is `reasoning` when the text has `<reasoning>` but no `<think>`.
 */
export function xmlCountScore(text: string): number {
  const tag = text.includes("<reasoning>") && !text.includes("<think>") ? "reasoning" : "think";
  let s = 0;
  if (count(text, `<${tag}>\n`) === 1) s += 0.125;
  if (count(text, `\n</${tag}>\n`) === 1) s += 0.125;
  if (count(text, "\n<answer>\n") === 1) {
    s += 0.125;
    s -= text.split("\n</answer>\n").pop()!.length * 0.001;
  }
  if (count(text, "\n</answer>") === 1) {
    s += 0.125;
    s -= (text.split("\n</answer>").pop()!.length - 1) * 0.001;
  }
  return s;
}

export function xmlCount(args: RewardArgs): RewardValues {
  return args.completions.map((c) => xmlCountScore(completionText(c)));
}

export const gsm8k = {
  correctness: { name: "gsm8k/correctness", fn: correctness } satisfies NamedReward,
  int: { name: "gsm8k/int", fn: intAnswer } satisfies NamedReward,
  strictFormat: { name: "gsm8k/strict_format", fn: strictFormat } satisfies NamedReward,
  softFormat: { name: "gsm8k/soft_format", fn: softFormat } satisfies NamedReward,
  xmlCount: { name: "gsm8k/xml_count", fn: xmlCount } satisfies NamedReward,
};
