// GSM8K preset: question/answer rows → a conversational `prompt` and the final numeric `answer`.
// Is: the mapping used by the Unsloth / willccbb GRPO recipes (extract_hash_answer). Is not: a reward (see
// rewards/builtins/gsm8k.ts). Simplifies: the worked solution is dropped; other columns pass through.
import type { Message } from "../tokenize/index.ts";
import { DatasetError } from "./errors.ts";
import type { Row } from "./types.ts";

export interface Gsm8kOptions {
  /** System message put before each question (e.g. the <think>/<answer> format instructions). None by default. */
  systemPrompt?: string;
  /** For error messages. Default "gsm8k". */
  source?: string;
}

/** The number after "####" with thousands separators removed ("#### 1,000" → "1000"), or null. */
export function extractHashAnswer(text: string): string | null {
  const i = text.lastIndexOf("####");
  if (i < 0) return null;
  const ans = text.slice(i + 4).trim().replace(/,/g, "");
  return ans === "" ? null : ans;
}

/** Map GSM8K rows ({question, answer}) to {prompt: Message[], answer: "<number>"}. */
export function prepareGsm8k(rows: Row[], opts: Gsm8kOptions = {}): Row[] {
  const src = opts.source ?? "gsm8k";
  return rows.map((row, i) => {
    const { question, answer, ...rest } = row;
    if (typeof question !== "string") throw new DatasetError(src, `row ${i}`, `"question" must be a string, got ${typeof question}`);
    if (typeof answer !== "string") throw new DatasetError(src, `row ${i}`, `"answer" must be a string, got ${typeof answer}`);
    const final = extractHashAnswer(answer);
    if (final === null) throw new DatasetError(src, `row ${i}`, `answer has no "#### <number>" line: ${answer.slice(-60)}`);
    const prompt: Message[] = [
      ...(opts.systemPrompt !== undefined ? [{ role: "system", content: opts.systemPrompt }] : []),
      { role: "user", content: question },
    ];
    return { ...rest, prompt, answer: final };
  });
}
