// Incremental detokenizer for streaming: feed ids one at a time, get only complete UTF-8 text back.
// Is: the prefix/read-offset scheme of text-generation-inference — decode a short window of recent ids and emit the
// part that grew, holding text back while it ends in U+FFFD (an unfinished multi-byte character split over tokens).
// Is not: a byte-level decoder of its own; the tokenizer's decode() does the work, so the concatenated output equals
// decode(all ids) for byte-level BPE and SentencePiece byte-fallback tokenizers.
// Simplifies: text that truly ends in U+FFFD is only released by the next token or by flush().

/** What the stream decoder needs from a tokenizer. */
export interface DecodeFn {
  (ids: number[]): string;
}

export class StreamDecoder {
  private ids: number[] = [];
  private prefixOffset = 0; // start of the context window whose text was already emitted
  private readOffset = 0; // ids before this were emitted

  constructor(private readonly decode: DecodeFn) {}

  /** Add one id (or several); returns the newly completed text ("" while a character is still incomplete). */
  push(id: number | number[]): string {
    if (Array.isArray(id)) this.ids.push(...id);
    else this.ids.push(id);
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.decode(this.ids.slice(this.prefixOffset));
    if (newText.length > prefixText.length && !newText.endsWith("\uFFFD")) {
      // The window may re-render the prefix differently only in ways that keep its length (byte-level, byte
      // fallback); slice by the prefix's length.
      const out = newText.slice(prefixText.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return out;
    }
    return "";
  }

  /** Emit whatever is held back (possibly ending in U+FFFD) and reset. */
  flush(): string {
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.decode(this.ids.slice(this.prefixOffset));
    const out = newText.length > prefixText.length ? newText.slice(prefixText.length) : "";
    this.reset();
    return out;
  }

  reset(): void {
    this.ids = [];
    this.prefixOffset = 0;
    this.readOffset = 0;
  }

  /** All ids pushed since the last reset. */
  get tokens(): readonly number[] {
    return this.ids;
  }
}
