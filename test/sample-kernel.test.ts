// sample_rows (CPU kernel, through the sampleTokens op) against the JS sampler (src/generate/sampler.ts sampleRow)
// with the same uniform: same token and log-prob for temperature, top-k, top-p, min-p and combinations, on random
// rows with V from 8 to 150000; a chi-square check of the draws on a fixed row; greedy; ties at a threshold.
// Logits are distinct multiples of 2^-16, so the JS sampler's filters have no exact ties. A mismatch is allowed
// only where the two samplers' float rounding can legitimately disagree: u·S within 1e-6 (relative) of a
// cumulative boundary, or a top-p / min-p boundary within 1e-6 of its threshold. Those are counted and must be rare.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fromHost, getBackend, sampleTokens, type SampleParams } from "../src/engine/index.ts";
import { filteredLogits, sampleRow, softmax, type SamplingParams } from "../src/generate/sampler.ts";
import { Xoshiro } from "../src/engine/rng.ts";

const cpu = getBackend("cpu");
const rng = new Xoshiro(2024);
const randn = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
/** a uniform in [0, 1) exactly representable in f32 (the kernel's uniforms are f32) */
const uniform = () => { const u = Math.fround(rng.next()); return u < 1 ? u : Math.fround(1 - 2 ** -24); };

/** V distinct logits, multiples of 2^-16, N(0, scale²). */
function randomRow(V: number, scale: number): Float32Array {
  const seen = new Set<number>();
  const row = new Float32Array(V);
  for (let i = 0; i < V; i++) {
    let x: number;
    do x = Math.round(randn() * scale * 65536) / 65536; while (seen.has(x));
    seen.add(x);
    row[i] = x;
  }
  return row;
}

function kernel(rows: Float32Array, V: number, u: Float32Array, p: SampleParams) {
  return sampleTokens(fromHost(rows, [rows.length / V, V], "f32", cpu), u, p);
}

/** Why the kernel may disagree with sampleRow on this row, or null if it must not. */
function excuse(row: Float32Array, p: SamplingParams, u: number, tokA: number, tokB: number): string | null {
  const eps = 1e-6;
  // filter boundaries close to their thresholds (the f32 p vs the JS sampler's double p)
  if ((p.topP ?? 1) < 1) {
    const afterK = softmax(filteredLogits(row, { ...p, topP: 1, minP: 0 }));
    const sorted = Array.from(afterK).filter((q) => q > 0).sort((a, b) => b - a);
    let cum = 0;
    for (const q of sorted) {
      cum += q;
      if (Math.abs(cum - p.topP!) <= eps) return "top-p boundary";
      if (cum >= p.topP!) break;
    }
  }
  if ((p.minP ?? 0) > 0) {
    const q = softmax(filteredLogits(row, { ...p, minP: 0 }));
    const qmax = Math.max(...q);
    for (const x of q) if (x > 0 && Math.abs(x / qmax - p.minP!) <= eps * p.minP!) return "min-p boundary";
  }
  // u on a cumulative boundary between the two tokens
  const probs = softmax(filteredLogits(row, p));
  const lo = Math.min(tokA, tokB), hi = Math.max(tokA, tokB);
  let cum = 0, cLo = 0, cHiPrev = 0;
  for (let i = 0; i < hi; i++) {
    cum += probs[i];
    if (i === lo) cLo = cum;
    cHiPrev = cum;
  }
  if (Math.abs(u - cLo) <= eps && Math.abs(u - cHiPrev) <= eps) return "u on a boundary";
  return null;
}

const PARAMS: SampleParams[] = [
  { temperature: 1 },
  { temperature: 0.7 },
  { temperature: 1.3, topK: 40 },
  { temperature: 1, topK: 1 },
  { temperature: 1, topP: 0.9 },
  { temperature: 0.8, topP: 0.5 },
  { temperature: 1, minP: 0.05 },
  { temperature: 1, topK: 1000, topP: 0.8 },
  { temperature: 0.9, topK: 50, topP: 0.95, minP: 0.02 },
  { temperature: 1.1, topP: 0.99, minP: 0.001 },
];
const SIZES: [V: number, rows: number][] = [[8, 48], [50, 48], [1000, 32], [32000, 8], [150000, 3]];

test("sample_rows equals sampleRow (same u): temperature, top-k, top-p, min-p and combinations, V 8 … 150000", (t) => {
  let rows = 0, excused = 0;
  const reasons: Record<string, number> = {};
  for (const p of PARAMS) {
    for (const [V, B] of SIZES) {
      const logits = new Float32Array(B * V);
      for (let b = 0; b < B; b++) logits.set(randomRow(V, [0.5, 2, 4][b % 3]), b * V);
      const u = Float32Array.from({ length: B }, uniform);
      const got = kernel(logits, V, u, p);
      for (let b = 0; b < B; b++) {
        const row = logits.subarray(b * V, (b + 1) * V);
        const want = sampleRow(row, p, u[b]);
        const tok = got.tokens[b], lp = got.logprobs[b];
        rows++;
        if (tok !== want.token) {
          const why = excuse(row, p, u[b], tok, want.token);
          assert.ok(why, `${JSON.stringify(p)} V=${V} row ${b}: token ${tok} vs ${want.token} (u = ${u[b]})`);
          reasons[why] = (reasons[why] ?? 0) + 1;
          excused++;
          continue;
        }
        assert.ok(Math.abs(lp - want.logprob) <= 1e-5 + 1e-6 * Math.abs(want.logprob),
          `${JSON.stringify(p)} V=${V} row ${b}: logprob ${lp} vs ${want.logprob}`);
      }
    }
  }
  t.diagnostic(`${rows} rows, ${excused} excused mismatches ${JSON.stringify(reasons)}`);
  assert.ok(excused <= rows * 0.02, `${excused} of ${rows} rows differ at a boundary: ${JSON.stringify(reasons)}`);
});

test("sample_rows greedy: argmax (lowest index on ties), log-softmax of the raw logits", () => {
  const V = 5000, B = 16;
  const logits = new Float32Array(B * V);
  for (let b = 0; b < B; b++) logits.set(randomRow(V, b === 0 ? 0.1 : 3), b * V);
  logits.set([1, 3, 3, 2], 0); // a tie at the top of row 0: lowest index wins
  const u = Float32Array.from({ length: B }, uniform);
  const got = kernel(logits, V, u, { temperature: 0 });
  assert.equal(got.tokens[0], 1);
  for (let b = 0; b < B; b++) {
    const want = sampleRow(logits.subarray(b * V, (b + 1) * V), { temperature: 0 }, u[b]);
    assert.equal(got.tokens[b], want.token, `row ${b}`);
    assert.ok(Math.abs(got.logprobs[b] - want.logprob) <= 1e-5, `row ${b}: ${got.logprobs[b]} vs ${want.logprob}`);
  }
});

test("sample_rows keeps every token tied at a threshold (the JS top-p keeps the lower index only)", () => {
  // probabilities 0.4, 0.3, 0.3: top-p 0.6 reaches its mass at a tie
  const row = Float32Array.from([Math.log(0.4), Math.log(0.3), Math.log(0.3)]);
  const p = { temperature: 1, topP: 0.6 };
  const got = kernel(row, 3, Float32Array.of(0.99), p);
  assert.equal(got.tokens[0], 2);
  assert.ok(Math.abs(got.logprobs[0] - Math.log(0.3)) < 1e-6);
  assert.equal(sampleRow(row, p, 0.99).token, 1); // the JS sampler keeps {0, 1}
  // top-k ties are kept by both (Hugging Face's `< kth value`)
  const k = kernel(Float32Array.from([2, 1, 1, 0]), 4, Float32Array.of(0.999), { temperature: 1, topK: 2 });
  assert.equal(k.tokens[0], 2);
  // a uniform that rounds to 1 takes the last kept token
  const last = kernel(Float32Array.from([0, 0, -50, 0]), 4, Float32Array.of(1), { temperature: 1, minP: 0.5 });
  assert.equal(last.tokens[0], 3);
});

/** Upper critical value of chi-square with df degrees of freedom at significance alpha (Wilson–Hilferty). */
function chi2Critical(df: number, z: number): number {
  return df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
}

test("sample_rows draws from the filtered distribution (chi-square on a fixed row, α = 0.001)", () => {
  const LOGITS = [2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0];
  const draws = 40000, V = LOGITS.length;
  const logits = new Float32Array(draws * V);
  for (let i = 0; i < draws; i++) logits.set(LOGITS, i * V);
  const cases: [SampleParams, number][] = [
    [{ temperature: 1 }, 8], [{ temperature: 0.6 }, 8], [{ temperature: 1, topK: 3 }, 3], [{ temperature: 1, topP: 0.8 }, 4],
    [{ temperature: 1, minP: 0.2 }, 4], [{ temperature: 0.8, topK: 5, topP: 0.9, minP: 0.05 }, -1],
  ];
  for (const [p, kept] of cases) {
    const probs = softmax(filteredLogits(LOGITS, p));
    if (kept > 0) assert.equal(probs.filter((q) => q > 0).length, kept);
    const seeded = new Xoshiro(42);
    const u = Float32Array.from({ length: draws }, () => Math.min(Math.fround(seeded.next()), 1 - 2 ** -24));
    const got = kernel(logits, V, u, p);
    const counts = new Array(V).fill(0);
    got.tokens.forEach((t, i) => {
      counts[t]++;
      assert.ok(Math.abs(got.logprobs[i] - Math.log(probs[t])) < 1e-6, "logprob is the log of the filtered distribution");
    });
    let chi = 0, df = -1;
    probs.forEach((q, i) => {
      if (q === 0) { assert.equal(counts[i], 0, `filtered token ${i} was drawn for ${JSON.stringify(p)}`); return; }
      chi += (counts[i] - draws * q) ** 2 / (draws * q);
      df++;
    });
    if (df > 0) assert.ok(chi < chi2Critical(df, 3.09), `chi-square ${chi.toFixed(2)} with ${df} df for ${JSON.stringify(p)}`);
  }
});

test("sample_rows with a repetition penalty equals sampleRow on the penalised row (same u)", (t) => {
  let rows = 0, excused = 0;
  for (const rp of [1.3, 0.8]) for (const p of [{ temperature: 1 }, { temperature: 0.7, topK: 20 }, { temperature: 1, topP: 0.9 }, { temperature: 0 }] as SampleParams[]) {
    const V = 1000, B = 12;
    const logits = new Float32Array(B * V);
    for (let b = 0; b < B; b++) logits.set(randomRow(V, [0.5, 2, 4][b % 3]), b * V);
    // each row's seen tokens: distinct, some of them the row's most likely (where the penalty decides)
    const seen = Array.from({ length: B }, (_, b) => {
      const row = logits.subarray(b * V, (b + 1) * V), top = Array.from(row.keys()).sort((x, y) => row[y] - row[x]).slice(0, 3);
      return [...new Set([...top, ...Array.from({ length: 2 + (b % 7) }, () => Math.floor(rng.next() * V))])];
    });
    const u = Float32Array.from({ length: B }, uniform);
    const got = sampleTokens(fromHost(logits, [B, V], "f32", cpu), u, { ...p, repetitionPenalty: rp }, seen);
    for (let b = 0; b < B; b++) {
      // the row as the kernel penalises it (f32), drawn by the JS sampler without a penalty
      const row = Float32Array.from(logits.subarray(b * V, (b + 1) * V));
      for (const tok of seen[b]) row[tok] = Math.fround(row[tok] > 0 ? row[tok] / Math.fround(rp) : row[tok] * Math.fround(rp));
      const want = sampleRow(row, p, u[b]);
      rows++;
      if (got.tokens[b] !== want.token) {
        assert.ok(excuse(row, p, u[b], got.tokens[b], want.token), `rp ${rp} ${JSON.stringify(p)} row ${b}: token ${got.tokens[b]} vs ${want.token}`);
        excused++;
        continue;
      }
      assert.ok(Math.abs(got.logprobs[b] - want.logprob) <= 1e-5 + 1e-6 * Math.abs(want.logprob), `row ${b}: logprob ${got.logprobs[b]} vs ${want.logprob}`);
    }
    // and the JS sampler's own penalty (in f64) agrees with this reference on the token
    for (let b = 0; b < B; b++) if (p.temperature === 0) assert.equal(sampleRow(logits.subarray(b * V, (b + 1) * V), { ...p, repetitionPenalty: rp }, u[b], seen[b]).token, got.tokens[b]);
  }
  t.diagnostic(`${rows} rows, ${excused} excused`);
  assert.ok(excused <= rows * 0.02);
  assert.throws(() => sampleTokens(fromHost(new Float32Array(8), [2, 4], "f32", cpu), Float32Array.of(0.5, 0.5), { repetitionPenalty: 1.2 }), /needs the seen tokens/);
});
