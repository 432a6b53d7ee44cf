// Rotary-embedding frequencies as transformers computes them (modeling_rope_utils): default, linear, dynamic
// (NTK), yarn, llama3 and longrope; and the per-token cos/sin tables [N, rot/2] the rope kernel reads.
// Computed in float64 on the host: a few thousand numbers per forward.
import type { RopeParams } from "./config.ts";

export interface RopeFreqs {
  invFreq: Float64Array; // [rot/2]
  /** multiplies cos and sin (yarn / longrope attention factor) */
  attentionScaling: number;
}

/** seqLen: the longest position + 1 in this forward (dynamic and longrope depend on it). */
export function ropeFrequencies(p: RopeParams, rot: number, maxPositions: number, seqLen: number): RopeFreqs {
  const half = rot / 2;
  const base = (theta: number) => Float64Array.from({ length: half }, (_, i) => 1 / theta ** ((2 * i) / rot));
  switch (p.type) {
    case "default":
      return { invFreq: base(p.theta), attentionScaling: 1 };
    case "linear":
      return { invFreq: base(p.theta).map((f) => f / p.factor!), attentionScaling: 1 };
    case "dynamic": {
      const maxPos = p.originalMaxPositions ?? maxPositions;
      let theta = p.theta;
      if (seqLen > maxPos) theta = p.theta * ((p.factor! * seqLen) / maxPos - (p.factor! - 1)) ** (rot / (rot - 2));
      return { invFreq: base(theta), attentionScaling: 1 };
    }
    case "llama3": {
      const inv = base(p.theta);
      const orig = p.originalMaxPositions!, low = p.lowFreqFactor!, high = p.highFreqFactor!, factor = p.factor!;
      const lowWave = orig / low, highWave = orig / high;
      return {
        invFreq: inv.map((f) => {
          const wave = (2 * Math.PI) / f;
          if (wave < highWave) return f;
          if (wave > lowWave) return f / factor;
          const smooth = (orig / wave - low) / (high - low);
          return (1 - smooth) * (f / factor) + smooth * f;
        }),
        attentionScaling: 1,
      };
    }
    case "yarn": {
      const factor = p.factor!, orig = p.originalMaxPositions ?? maxPositions;
      const mscale = (s: number, m = 1) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
      let att = p.attentionFactor;
      if (att === undefined) att = p.mscale && p.mscaleAllDim ? mscale(factor, p.mscale) / mscale(factor, p.mscaleAllDim) : mscale(factor);
      const bf = p.betaFast ?? 32, bs = p.betaSlow ?? 1;
      const corrDim = (rotations: number) => (rot * Math.log(orig / (rotations * 2 * Math.PI))) / (2 * Math.log(p.theta));
      let lo = corrDim(bf), hi = corrDim(bs);
      if (p.truncate !== false) { lo = Math.floor(lo); hi = Math.ceil(hi); }
      lo = Math.max(lo, 0); hi = Math.min(hi, rot - 1);
      if (lo === hi) hi += 0.001;
      const extra = base(p.theta);
      return {
        invFreq: extra.map((f, i) => {
          const ramp = Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
          const extrapolation = 1 - ramp;
          return (f / factor) * (1 - extrapolation) + f * extrapolation;
        }),
        attentionScaling: att,
      };
    }
    case "longrope": {
      const orig = p.originalMaxPositions ?? maxPositions;
      const ext = seqLen > orig ? p.longFactor! : p.shortFactor!;
      if (!ext || ext.length !== half) throw new Error(`longrope: short/long factor must have ${half} entries`);
      const factor = p.factor ?? maxPositions / orig;
      const att = p.attentionFactor ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig)));
      return { invFreq: base(p.theta).map((f, i) => f / ext[i]), attentionScaling: att };
    }
  }
}

/** cos/sin tables [N, rot/2] (float32) for the given positions. */
export function ropeTables(f: RopeFreqs, positions: ArrayLike<number>): { cos: Float32Array; sin: Float32Array } {
  const half = f.invFreq.length, N = positions.length;
  const cos = new Float32Array(N * half), sin = new Float32Array(N * half);
  for (let n = 0; n < N; n++) {
    const p = positions[n];
    for (let i = 0; i < half; i++) {
      const a = p * f.invFreq[i];
      cos[n * half + i] = Math.cos(a) * f.attentionScaling;
      sin[n * half + i] = Math.sin(a) * f.attentionScaling;
    }
  }
  return { cos, sin };
}
