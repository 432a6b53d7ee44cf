// The sampler, as small separate parts applied in Hugging Face's order: repetition penalty → temperature →
// top-k → top-p → min-p, then a draw. Each filter maps a row of logits to logits (filtered entries -Infinity),
// and the returned log-prob is the log of the final filtered distribution at the drawn token.
// Rows are Float32Array views of one token's logits [V]; filters work in place on a Float64 copy.
export interface SamplingParams {
  /** 0 = greedy */
  temperature?: number;
  /** 0 or ≥ V = off */
  topK?: number;
  /** 1 = off */
  topP?: number;
  /** 0 = off */
  minP?: number;
  /** 1 = off; > 1 discourages tokens already in the prompt or completion */
  repetitionPenalty?: number;
}

/** Throw, naming the option, unless every sampling setting is in range (temperature ≥ 0, top_p in (0, 1], …). */
export function checkSampling(p: SamplingParams & { n?: number; maxTokens?: number }): void {
  const bad: string[] = [];
  const check = (name: string, v: number | undefined, ok: (x: number) => boolean, want: string, int = false) => {
    if (v !== undefined && (!Number.isFinite(v) || (int && !Number.isInteger(v)) || !ok(v))) bad.push(`${name} is ${v}; it must be ${want}`);
  };
  check("temperature", p.temperature, (x) => x >= 0, "≥ 0 (0 = greedy)");
  check("topP", p.topP, (x) => x > 0 && x <= 1, "in (0, 1]");
  check("topK", p.topK, (x) => x >= 0, "an integer ≥ 0 (0 = off)", true);
  check("minP", p.minP, (x) => x >= 0 && x <= 1, "in [0, 1]");
  check("repetitionPenalty", p.repetitionPenalty, (x) => x > 0, "> 0 (1 = off)");
  check("n", p.n, (x) => x >= 1, "an integer ≥ 1", true);
  check("maxTokens", p.maxTokens, (x) => x >= 1, "an integer ≥ 1", true);
  if (bad.length) throw new RangeError(`generate: ${bad.join("; ")}`);
}

/** HF RepetitionPenaltyLogitsProcessor: seen tokens' logits divided by p if positive, multiplied if negative. */
export function applyRepetitionPenalty(z: Float64Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) z[t] = z[t] > 0 ? z[t] / penalty : z[t] * penalty;
}

export function applyTemperature(z: Float64Array, t: number): void {
  if (t === 1) return;
  for (let i = 0; i < z.length; i++) z[i] /= t;
}

/** Keep the k largest logits (ties at the k-th value kept, as HF does with `< kth value`). */
export function applyTopK(z: Float64Array, k: number): void {
  if (!(k > 0) || k >= z.length) return;
  const kth = kthLargest(z, k);
  for (let i = 0; i < z.length; i++) if (z[i] < kth) z[i] = -Infinity;
}

/** Keep the smallest set of most likely tokens whose probability mass reaches p (at least one token). */
export function applyTopP(z: Float64Array, p: number): void {
  if (!(p < 1)) return;
  const probs = softmax(z);
  // candidates above a threshold; exact when their mass already reaches p (the kept prefix lies inside them)
  let pmax = 0;
  for (const q of probs) if (q > pmax) pmax = q;
  let idx: number[] = [];
  for (let tau = pmax * 1e-3; ; tau /= 1e3) {
    idx = [];
    let mass = 0;
    for (let i = 0; i < probs.length; i++) if (probs[i] >= tau) { idx.push(i); mass += probs[i]; }
    if (mass >= p || tau === 0) break;
    if (tau < 1e-300) tau = 0;
  }
  idx.sort((a, b) => probs[b] - probs[a] || a - b);
  const keep = new Uint8Array(z.length);
  let cum = 0;
  for (const i of idx) {
    keep[i] = 1;
    cum += probs[i];
    if (cum >= p) break;
  }
  for (let i = 0; i < z.length; i++) if (!keep[i]) z[i] = -Infinity;
}

/** Drop tokens whose probability is below minP × the top probability. */
export function applyMinP(z: Float64Array, minP: number): void {
  if (!(minP > 0)) return;
  const probs = softmax(z);
  let pmax = 0;
  for (const q of probs) if (q > pmax) pmax = q;
  for (let i = 0; i < z.length; i++) if (probs[i] < minP * pmax) z[i] = -Infinity;
}

export function softmax(z: Float64Array): Float64Array {
  let mx = -Infinity;
  for (const v of z) if (v > mx) mx = v;
  const out = new Float64Array(z.length);
  let s = 0;
  for (let i = 0; i < z.length; i++) { out[i] = Math.exp(z[i] - mx); s += out[i]; }
  for (let i = 0; i < z.length; i++) out[i] /= s;
  return out;
}

function kthLargest(z: Float64Array, k: number): number {
  const a = Float64Array.from(z).sort();
  return a[a.length - k];
}

/** The filtered log-distribution for one row: log-softmax after every filter (entries -Infinity where removed). */
export function filteredLogits(row: ArrayLike<number>, p: SamplingParams, seen: Iterable<number> = []): Float64Array {
  const z = Float64Array.from(row as ArrayLike<number>);
  applyRepetitionPenalty(z, seen, p.repetitionPenalty ?? 1);
  applyTemperature(z, p.temperature ?? 1);
  applyTopK(z, p.topK ?? 0);
  applyTopP(z, p.topP ?? 1);
  applyMinP(z, p.minP ?? 0);
  return z;
}

export interface Draw {
  token: number;
  /** log-prob of the token under the distribution it was drawn from (greedy: under softmax of the raw logits) */
  logprob: number;
}

/** Draw one token from a row of logits. */
export function sampleRow(row: ArrayLike<number>, p: SamplingParams, u: number, seen: Iterable<number> = []): Draw {
  const greedy = !(p.temperature! > 0) && p.temperature !== undefined;
  if (greedy) {
    const z = Float64Array.from(row as ArrayLike<number>);
    applyRepetitionPenalty(z, seen, p.repetitionPenalty ?? 1);
    let best = 0;
    for (let i = 1; i < z.length; i++) if (z[i] > z[best]) best = i;
    return { token: best, logprob: logSoftmaxAt(z, best) };
  }
  const z = filteredLogits(row, p, seen);
  const probs = softmax(z);
  let acc = 0, token = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    acc += probs[i];
    token = i;
    if (u < acc) break;
  }
  return { token, logprob: Math.log(probs[token]) };
}

function logSoftmaxAt(z: Float64Array, i: number): number {
  let mx = -Infinity;
  for (const v of z) if (v > mx) mx = v;
  let s = 0;
  for (const v of z) s += Math.exp(v - mx);
  return z[i] - mx - Math.log(s);
}
