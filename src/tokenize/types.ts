// Chat message and option types shared by tokenize, data and rewards.
// Is: plain data shapes (what a chat template sees). Is not: a validator — templates raise their own errors.
// Simplifies: content is a string or whatever a template accepts (multimodal parts pass through untouched).

/** One chat turn, as Hugging Face chat templates expect it. */
export interface Message {
  role: string;
  content: string | unknown;
  /** Extra fields (tool_calls, name, reasoning_content, …) reach the template unchanged. */
  [key: string]: unknown;
}

export interface EncodeOptions {
  /** Let the tokenizer's post-processor add its special tokens (BOS/EOS as tokenizer.json says). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special/added-special tokens from the text. Default false. */
  skipSpecialTokens?: boolean;
  /**
   * Apply transformers' `clean_up_tokenization_spaces` (" ," → "," …). Default: what tokenizer_config.json says,
   * false when it says nothing. Pass false where rewards must parse the exact text the model wrote.
   */
  cleanUpTokenizationSpaces?: boolean;
}

export interface ChatTemplateOptions {
  /** Append the assistant header so the model continues as the assistant. Default false (as transformers). */
  addGenerationPrompt?: boolean;
  /** Tool (function) JSON schemas, passed to the template as `tools`. */
  tools?: unknown[];
  /** Pick a named template when tokenizer_config holds a list (`default` otherwise, or `tool_use` when tools given). */
  templateName?: string;
  /** Extra template variables, e.g. `{ enable_thinking: false }` (same as passing them as top-level keys). */
  kwargs?: Record<string, unknown>;
  /** Any other key is a template variable too, like transformers' `**kwargs` (`enable_thinking: false`). */
  [kwarg: string]: unknown;
}
