// Prompt formatting: turn a row's `prompt` column into the text the model continues.
// Is: TRL's two prompt formats — standard (`prompt` is a string) and conversational (`prompt` is a list of
// {role, content} messages) — plus an optional system prompt, rendered with the tokenizer's chat template and
// add_generation_prompt. Is not: tokenization (the trainer encodes with Tokenizer.encodeChat / encode).
// Simplifies: a system prompt without a chat template is prepended to a standard prompt followed by a blank line.
import type { Message, Tokenizer } from "../tokenize/index.ts";
import { DatasetError } from "./errors.ts";
import type { Row } from "./types.ts";

export interface FormatPromptOptions {
  /** Put this system message first (unless the conversation already starts with a system message). */
  systemPrompt?: string;
  /**
   * Render with the tokenizer's chat template (add_generation_prompt=true). Standard prompts become one user turn.
   * false: a standard prompt is used as is (base models); conversational prompts require true.
   */
  chatTemplate: boolean;
  /** Extra chat-template variables, e.g. { enable_thinking: false }. */
  templateKwargs?: Record<string, unknown>;
  /** Used in error messages, e.g. "row 12". */
  where?: string;
}

function isMessage(v: unknown): v is Message {
  return typeof v === "object" && v !== null && typeof (v as Message).role === "string" && "content" in v;
}

/** True when the row's prompt is a list of messages. */
export function isConversational(row: Row): boolean {
  return Array.isArray(row.prompt) || (row.prompt === undefined && Array.isArray(row.messages));
}

/**
 * The row's prompt as given to reward functions: the string, or the messages with the system prompt applied
 * (TRL passes conversational prompts to rewards as message lists).
 */
export function rowPrompt(row: Row, opts: { systemPrompt?: string; where?: string } = {}): string | Message[] {
  // TRL's conversational `messages` column: the conversation up to its trailing assistant turn (the reference, which
  // reward functions still get in the `messages` column)
  const p = row.prompt === undefined && Array.isArray(row.messages) ? withoutTrailingAssistant(row.messages as Message[]) : row.prompt;
  const where = opts.where ?? "row";
  if (typeof p === "string") return p;
  if (Array.isArray(p)) {
    p.forEach((m, i) => {
      if (!isMessage(m)) throw new DatasetError("dataset", where, `prompt[${i}] is not a {role, content} message: ${JSON.stringify(m)?.slice(0, 80)}`);
    });
    const msgs = p as Message[];
    if (opts.systemPrompt !== undefined && msgs[0]?.role !== "system") {
      return [{ role: "system", content: opts.systemPrompt }, ...msgs];
    }
    return msgs;
  }
  throw new DatasetError(
    "dataset",
    where,
    p === undefined
      ? `no "prompt" column (nor a "messages" column; columns: ${Object.keys(row).join(", ")}); map your data to a prompt column or use a preset`
      : `"prompt" must be a string or a list of {role, content} messages, got ${typeof p}`,
  );
}

function withoutTrailingAssistant(msgs: Message[]): Message[] {
  return msgs.length > 0 && msgs[msgs.length - 1]?.role === "assistant" ? msgs.slice(0, -1) : msgs;
}

/** The prompt text to generate from. */
export function formatPrompt(row: Row, tokenizer: Tokenizer, opts: FormatPromptOptions): string {
  const prompt = rowPrompt(row, opts);
  if (!opts.chatTemplate) {
    if (typeof prompt !== "string") {
      throw new DatasetError("dataset", opts.where ?? "row", "conversational prompt (a list of messages) needs chatTemplate: true");
    }
    return opts.systemPrompt !== undefined ? `${opts.systemPrompt}\n\n${prompt}` : prompt;
  }
  const messages: Message[] = typeof prompt === "string"
    ? [...(opts.systemPrompt !== undefined ? [{ role: "system", content: opts.systemPrompt }] : []), { role: "user", content: prompt }]
    : prompt;
  return tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, ...(opts.templateKwargs ?? {}) });
}

/**
 * Columns for reward functions: every column but `prompt`, as TRL passes them (`{answer: [...], ...}`), one entry
 * per row. A column missing from some rows gets undefined there.
 */
export function rowsToColumns(rows: Row[], exclude: string[] = ["prompt"]): Record<string, unknown[]> {
  const names = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) if (!exclude.includes(k)) names.add(k);
  const out: Record<string, unknown[]> = {};
  for (const k of names) out[k] = rows.map((r) => r[k]);
  return out;
}
