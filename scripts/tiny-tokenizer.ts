// The tiny model's tokenizer: a word-level vocabulary over the arithmetic generator's text, as a Hugging Face
// tokenizer.json that @huggingface/tokenizers (and Python `tokenizers`) load.
// Is: a BPE model with no merges and ignore_merges (a pre-token found in the vocabulary is one id; anything else is
// spelled with single-character tokens, so every printable ASCII text round-trips), a Split pre-tokenizer that cuts
// text into words with their leading space, single digits, punctuation and whitespace, and a Fuse decoder
// (ids → text is plain concatenation). Special tokens: <|endoftext|> (pad), <|im_start|>, <|im_end|> (EOS).
// Is not: a trained BPE; text outside printable ASCII becomes <unk>.
import { Tokenizer } from "@huggingface/tokenizers";
import { arithDataset, arithPromptText, CHATML_TEMPLATE } from "../src/defaults/arith.ts";

export const SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const UNK = "<unk>";
/** Tags, words with an optional leading space, single digits, a punctuation mark with an optional space, one whitespace char. */
export const PRETOKEN_REGEX = "</?[a-z]+>| ?[A-Za-z]+|[0-9]| ?[^\\sA-Za-z0-9]|\\s";

/** Every pre-token of the texts longer than one character, sorted, once. */
function wordsOf(texts: string[], regex: string): string[] {
  const re = new RegExp(regex, "g");
  const set = new Set<string>();
  for (const t of texts) for (const m of t.matchAll(re)) if (m[0].length > 1) set.add(m[0]);
  return [...set].sort();
}

/** The texts the vocabulary must cover: prompts (with the chat template's role words) and targets of both splits. */
export function corpusTexts(n = 20000): string[] {
  const out: string[] = [];
  for (const split of ["train", "test"] as const) {
    for (const p of arithDataset(split, n, 12345)) out.push(arithPromptText(p.question), p.target);
  }
  out.push("<|im_start|>system\n<|im_end|>\n");
  return out;
}

export interface TokenizerFiles {
  tokenizer: Record<string, unknown>;
  config: Record<string, unknown>;
}

export interface TokenizerOptions {
  /** the pre-tokenizer's regex (default PRETOKEN_REGEX) */
  regex?: string;
  /** the chat template (default CHATML_TEMPLATE) */
  chatTemplate?: string;
}

export function buildTokenizer(texts: string[] = corpusTexts(), opts: TokenizerOptions = {}): TokenizerFiles {
  const regex = opts.regex ?? PRETOKEN_REGEX;
  const vocab: Record<string, number> = {};
  let id = 0;
  for (const s of SPECIALS) vocab[s] = id++;
  vocab[UNK] = id++;
  vocab["\n"] = id++;
  vocab["\t"] = id++;
  for (let c = 0x20; c < 0x7f; c++) vocab[String.fromCharCode(c)] = id++;
  for (const w of wordsOf(texts, regex)) if (!(w in vocab)) vocab[w] = id++;
  const added = SPECIALS.map((content, i) => ({ id: i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false },
    post_processor: null,
    decoder: { type: "Fuse" },
    model: {
      type: "BPE", dropout: null, unk_token: UNK, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges: [],
    },
  };
  const config = {
    added_tokens_decoder: Object.fromEntries(added.map(({ id: i, ...t }) => [String(i), t])),
    bos_token: null,
    eos_token: "<|im_end|>",
    pad_token: "<|endoftext|>",
    unk_token: UNK,
    additional_special_tokens: ["<|im_start|>", "<|im_end|>"],
    chat_template: opts.chatTemplate ?? CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: 256,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
  return { tokenizer, config };
}

/**
 * Check that every text encodes to word-level ids (no single-letter spelling of a word, no <unk>) and decodes back
 * exactly; returns the longest encoding. Throws naming the first text that fails.
 */
export function checkRoundTrip(files: TokenizerFiles, texts: string[]): number {
  const tok = new Tokenizer(files.tokenizer, files.config);
  const vocab = (files.tokenizer.model as { vocab: Record<string, number> }).vocab;
  const letter = new Set(Object.entries(vocab).filter(([t]) => /^[A-Za-z]$/.test(t)).map(([, i]) => i));
  let longest = 0;
  for (const t of texts) {
    const ids: number[] = tok.encode(t, { add_special_tokens: false }).ids;
    const back = tok.decode(ids, { skip_special_tokens: false });
    if (back !== t) throw new Error(`tokenizer round trip failed:\n${JSON.stringify(t)}\n→ ${JSON.stringify(back)}`);
    if (ids.includes(vocab[UNK])) throw new Error(`<unk> in ${JSON.stringify(t)}`);
    if (ids.some((i) => letter.has(i))) throw new Error(`a word of ${JSON.stringify(t)} is spelled letter by letter (missing from the vocabulary)`);
    longest = Math.max(longest, ids.length);
  }
  return longest;
}
