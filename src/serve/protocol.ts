// The request bodies `aha serve` accepts, as zod schemas with OpenAI's field names: chat completions, completions
// and embeddings. Unknown fields are refused (400 naming them), as OpenAI does; vLLM's sampling extras top_k, min_p,
// repetition_penalty and ignore_eos are accepted. Fields OpenAI has that the engine cannot honour (presence/frequency penalties
// other than 0, logit_bias, tool_choice "required", suffix, …) are refused with a message that says so, never ignored.
import { z } from "zod";

const sampling = {
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  n: z.number().int().min(1).max(128).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  seed: z.number().int().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  presence_penalty: z.literal(0, { error: "only 0 is supported (use repetition_penalty)" }).nullish(),
  frequency_penalty: z.literal(0, { error: "only 0 is supported (use repetition_penalty)" }).nullish(),
  logit_bias: z.record(z.string(), z.number()).refine((m) => Object.keys(m).length === 0, "logit_bias is not supported").nullish(),
  user: z.string().nullish(),
  // vLLM's extras
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  /** keep sampling past end-of-sequence tokens (benchmarks: a fixed number of tokens) */
  ignore_eos: z.boolean().nullish(),
};

const textPart = z.object({ type: z.literal("text", { error: "only text content parts are supported" }), text: z.string() });

const toolCall = z.object({
  id: z.string(),
  type: z.literal("function"),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

export const chatMessage = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: z.union([z.string(), z.array(textPart)]).nullish(),
  name: z.string().optional(),
  tool_calls: z.array(toolCall).optional(),
  tool_call_id: z.string().optional(),
}).loose();

export const tool = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});

export const chatRequest = z.object({
  model: z.string({ error: "you must provide a model parameter" }),
  messages: z.array(chatMessage).min(1),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  tools: z.array(tool).nullish(),
  tool_choice: z.union([z.enum(["none", "auto"]), z.string().refine(() => false, "only 'none' and 'auto' are supported"),
    z.object({}).loose().refine(() => false, "only 'none' and 'auto' are supported")]).nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: z.object({ type: z.literal("text", { error: "only the 'text' response format is supported" }) }).nullish(),
  ...sampling,
}).strict();

const tokenIds = z.array(z.number().int().min(0)).min(1);

export const completionRequest = z.object({
  model: z.string({ error: "you must provide a model parameter" }),
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)]),
  max_tokens: z.number().int().min(1).nullish(),
  logprobs: z.number().int().min(0).max(5).nullish(),
  echo: z.boolean().nullish(),
  best_of: z.number().int().min(1).nullish(),
  suffix: z.null({ error: "suffix is not supported" }).optional(),
  ...sampling,
}).strict();

export const embeddingRequest = z.object({
  model: z.string({ error: "you must provide a model parameter" }),
  input: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)]),
  encoding_format: z.enum(["float", "base64"]).nullish(),
  dimensions: z.number().int().min(1).nullish(),
  user: z.string().nullish(),
}).strict();

export type ChatRequest = z.output<typeof chatRequest>;
export type CompletionRequest = z.output<typeof completionRequest>;
export type EmbeddingRequest = z.output<typeof embeddingRequest>;
export type ChatMessageIn = z.output<typeof chatMessage>;
