// Tokenizer: text ⇄ ids and chat rendering for one model, over @huggingface/tokenizers (tokenizer.json) and
// @huggingface/jinja (chat templates).
// Is: encode/decode with the model's own pre/post-processing, special token ids, chat templating, and encodeChat that
// never doubles a BOS the template already wrote. Is not: a BPE/Unigram implementation (the library is), nor a loader
// of files (load.ts). Simplifies: single sequences only (no pairs, no truncation/padding — the trainer pads ids).
import type { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import type { ChatTemplates } from "./chat-template.ts";
import { StreamDecoder } from "./stream-decoder.ts";
import type { ChatTemplateOptions, DecodeOptions, EncodeOptions, Message } from "./types.ts";

/** Special token strings by role, as tokenizer_config.json names them (null where the tokenizer has none). */
export interface SpecialTokens {
  bos_token: string | null;
  eos_token: string | null;
  pad_token: string | null;
  unk_token: string | null;
  /** additional_special_tokens plus every added token marked special in tokenizer.json. */
  additional_special_tokens: string[];
}

export interface TokenizerInit {
  hf: HFTokenizer;
  templates: ChatTemplates;
  specialTokens: SpecialTokens;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  /** tokenizer_config's clean_up_tokenization_spaces (false when absent). */
  cleanUpTokenizationSpaces: boolean;
  /** Where it was loaded from, for messages. */
  source: string;
}

export class Tokenizer {
  readonly hf: HFTokenizer;
  readonly specialTokens: SpecialTokens;
  /** Id of the BOS token (tokenizer_config bos_token, else generation_config/config bos_token_id), or null. */
  readonly bosTokenId: number | null;
  /** Ids that end a generation: generation_config eos_token_id (number or list), config.json's, and the tokenizer's eos_token. */
  readonly eosTokenIds: number[];
  /** Id of the padding token (tokenizer_config pad_token, else config pad_token_id), or null. */
  readonly padTokenId: number | null;
  /** Number of ids the tokenizer can produce: max id over the vocabulary and added tokens, plus one. */
  readonly vocabSize: number;
  /** Ids of all special tokens (what skipSpecialTokens drops). */
  readonly specialTokenIds: ReadonlySet<number>;
  readonly source: string;
  private readonly templates: ChatTemplates;
  private readonly cleanUp: boolean;
  private prefixIds: number[] | undefined;

  constructor(init: TokenizerInit) {
    this.hf = init.hf;
    this.templates = init.templates;
    this.specialTokens = init.specialTokens;
    this.bosTokenId = init.bosTokenId;
    this.eosTokenIds = init.eosTokenIds;
    this.padTokenId = init.padTokenId;
    this.cleanUp = init.cleanUpTokenizationSpaces;
    this.source = init.source;
    let max = -1;
    for (const id of this.hf.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    const special = new Set<number>();
    for (const [id, tok] of this.hf.get_added_tokens_decoder()) if (tok.special) special.add(id);
    for (const t of [init.specialTokens.bos_token, init.specialTokens.eos_token, init.specialTokens.pad_token,
      init.specialTokens.unk_token, ...init.specialTokens.additional_special_tokens]) {
      const id = t === null ? undefined : this.hf.token_to_id(t);
      if (id !== undefined) special.add(id);
    }
    this.specialTokenIds = special;
  }

  /** Text → ids. With addSpecialTokens (default true) the post-processor adds what tokenizer.json says (e.g. BOS). */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** Ids → text, exactly (no space clean-up unless the tokenizer config asks for it and opts does not forbid it). */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    return this.hf.decode(ids as number[], {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: opts.cleanUpTokenizationSpaces ?? this.cleanUp,
    });
  }

  /** Token string → id (undefined when unknown). */
  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** Id → token string (undefined when out of range). */
  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** Whether a chat template was found. */
  get hasChatTemplate(): boolean {
    return this.templates.available;
  }

  /** The template text `applyChatTemplate` would use for these options. */
  chatTemplateText(opts: ChatTemplateOptions = {}): string {
    return this.templates.text(opts);
  }

  /** Render messages with the model's chat template (transformers' apply_chat_template(tokenize=False)). */
  applyChatTemplate(messages: Message[], opts: ChatTemplateOptions = {}): string {
    return this.templates.render(messages, opts);
  }

  /**
   * Render and encode a conversation. Encodes the rendered text without the post-processor's special tokens and
   * prepends the tokens it would have put first (e.g. BOS) only when the text does not already start with them —
   * so a template that writes `{{ bos_token }}` gets exactly one BOS, and no EOS is ever appended.
   */
  encodeChat(messages: Message[], opts: ChatTemplateOptions = {}): number[] {
    const text = this.applyChatTemplate(messages, opts);
    const ids = this.encode(text, { addSpecialTokens: false });
    const prefix = this.specialPrefix();
    if (prefix.length === 0) return ids;
    const already = prefix.every((id, i) => ids[i] === id);
    return already ? ids : [...prefix, ...ids];
  }

  /** Ids the post-processor puts before a sequence (e.g. [BOS]); [] for most chat models. */
  specialPrefix(): number[] {
    if (this.prefixIds === undefined) {
      const probe = "a";
      const plain = this.encode(probe, { addSpecialTokens: false });
      const full = this.encode(probe, { addSpecialTokens: true });
      let start = -1;
      for (let i = 0; i + plain.length <= full.length; i++) {
        if (plain.every((id, j) => full[i + j] === id)) {
          start = i;
          break;
        }
      }
      this.prefixIds = start > 0 ? full.slice(0, start) : [];
    }
    return this.prefixIds;
  }

  /** A fresh incremental decoder (see StreamDecoder) using this tokenizer's decode with these options. */
  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder((ids) => this.decode(ids, opts));
  }

  /** True when `id` ends a generation. */
  isEos(id: number): boolean {
    return this.eosTokenIds.includes(id);
  }
}
