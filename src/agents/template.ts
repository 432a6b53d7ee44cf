// The token ids that follow an assistant turn when tool results or an environment's messages come next, rendered by
// the model's own chat template: what a rollout prefills into the live KV cache after the model's end-of-turn token.
// Is: TRL's `_get_tool_suffix_ids` (render [user, assistant] and [user, assistant, …new messages] with the generation
// prompt; the first, cut after its last end-of-turn token, must be a prefix of the second; the rest is the suffix),
// with the conversation's tools and chat_template_kwargs passed to both renders. Is not: a renderer of whole
// conversations (the model's own tokens are never re-rendered: the rollout keeps the ids it sampled).
// Simplifies: the assistant message is rendered as parsed (its text and tool calls); only the part after its
// end-of-turn token is used, so a template that renders calls differently from what the model wrote changes nothing.
import type { Message, Tokenizer } from "../tokenize/index.ts";

export interface TemplateOptions {
  /** the `tools` argument of the template (toolSchemas) */
  tools?: unknown[];
  /** chat_template_kwargs */
  kwargs?: Record<string, unknown>;
  /** ids that end an assistant turn (the rollout's stop ids) */
  stopIds: number[];
}

/** Ids after `assistant`'s end-of-turn token when `next` follows it, up to and including the next generation prompt. */
export function idsAfterTurn(tok: Tokenizer, assistant: Message, next: Message[], o: TemplateOptions): number[] {
  const head: Message[] = [{ role: "user", content: "dummy" }, assistant];
  const render = { tools: o.tools, kwargs: o.kwargs };
  let prefix = tok.encodeChat(head, { ...render, addGenerationPrompt: false });
  const full = tok.encodeChat([...head, ...next], { ...render, addGenerationPrompt: true });
  const stop = new Set(o.stopIds);
  let end = prefix.length;
  while (end > 0 && !stop.has(prefix[end - 1])) end--;
  if (end > 0) prefix = prefix.slice(0, end);
  if (prefix.some((id, i) => full[i] !== id))
    throw new Error(`the chat template of ${tok.source} is not prefix-preserving: rendering ${next.map((m) => m.role).join(", ")} messages after an assistant ` +
      "turn changes how the turn itself renders, so their ids cannot be appended to the conversation");
  return full.slice(prefix.length);
}
