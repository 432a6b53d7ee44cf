// Public API of src/tokenize: tokenizers and chat templates for Hugging Face model folders.
export { loadTokenizer, type LoadTokenizerOptions } from "./load.ts";
export { Tokenizer, type SpecialTokens, type TokenizerInit } from "./tokenizer.ts";
export { StreamDecoder, type DecodeFn } from "./stream-decoder.ts";
export { ChatTemplates, type ChatTemplateSource } from "./chat-template.ts";
export type { ChatTemplateOptions, DecodeOptions, EncodeOptions, Message } from "./types.ts";
