// Seeded pseudo-random numbers: splitmix32 to derive independent streams from (seed, ids…), and xoshiro128**
// for the stream itself. Not cryptographic; reproducible across platforms (32-bit integer arithmetic only).
export type Rng = () => number;

export function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Hash a list of integers into one 32-bit seed. */
export function mixSeed(...xs: number[]): number {
  let h = 0x243f6a88;
  for (const x of xs) h = splitmix32(h ^ (x >>> 0)) ^ Math.imul(Math.floor(x / 2 ** 32) | 0, 0x27d4eb2f);
  return h >>> 0;
}

/** xoshiro128** returning floats in [0, 1); its state can be read and restored (checkpoints). */
export class Xoshiro {
  s: Uint32Array;
  constructor(seed: number) {
    this.s = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) { x = splitmix32(x); this.s[i] = x; }
    if (!(this.s[0] | this.s[1] | this.s[2] | this.s[3])) this.s[0] = 1;
  }
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }
  /** uniform in [0, 1) with 32 bits of randomness */
  next(): number {
    return this.nextU32() / 4294967296;
  }
  get fn(): Rng {
    return () => this.next();
  }
  state(): number[] {
    return Array.from(this.s);
  }
  static fromState(st: number[]): Xoshiro {
    const r = new Xoshiro(0);
    r.s.set(st);
    return r;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
