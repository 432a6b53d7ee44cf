// embedding_similarity: cosine similarity between each completion and the row's reference text, with embeddings from
// an OpenAI-compatible /v1/embeddings endpoint (endpoint.ts: batched, cached per text, retried, limited).
// Is: cos(e(completion), e(reference)) in [−1, 1]; null where the reference is missing. Is not: a judge of
// correctness (paraphrases score high, a fluent wrong answer may too); weight it beside a verifiable reward.
import { endpoint, type EndpointOptions } from "../endpoint.ts";
import { completionText, type NamedReward, type RewardArgs, type RewardValues } from "../types.ts";

export interface EmbeddingSimilarityOptions extends EndpointOptions {
  /** Dataset column with the reference text. Default "answer". */
  column?: string;
  name?: string;
}

export function cosine(a: number[], b: number[]): number {
  if (a.length !== b.length) throw new Error(`embeddings of different sizes (${a.length} and ${b.length})`);
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

export function embeddingSimilarity(opts: EmbeddingSimilarityOptions): NamedReward {
  const column = opts.column ?? "answer";
  const ep = endpoint(opts);
  const name = opts.name ?? "embedding_similarity";
  const fn = async (args: RewardArgs): Promise<RewardValues> => {
    const refs = args[column];
    if (!Array.isArray(refs)) throw new Error(`${name} needs a "${column}" column in the dataset (columns: ${Object.keys(args).join(", ")})`);
    const rows = args.completions.map((c, i) => ({ c: completionText(c), ref: refs[i] === null || refs[i] === undefined ? null : String(refs[i]) }));
    // an empty completion scores 0 (endpoints reject empty inputs)
    const live = rows.filter((r) => r.ref !== null && r.c.trim() !== "");
    const vecs = await ep.embed(live.flatMap((r) => [r.c, r.ref!]));
    let k = 0;
    return rows.map((r) => (r.ref === null ? null : r.c.trim() === "" ? 0 : cosine(vecs[2 * k]!, vecs[2 * k++ + 1]!)));
  };
  return { name, fn };
}
