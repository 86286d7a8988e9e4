/**
 * Deterministic randomness. Every random choice in ssd-cluster (weight init, shuffles, augmentation,
 * synthetic data) comes from `createRng(seed, ...keys)`, a pure function of its arguments: the same
 * (seed, stream, epoch, sample index) gives the same numbers in any process, in any order, on any
 * number of workers, before or after a restart.
 *
 * Keys are hashed (murmur3 finaliser) into the 128-bit state of sfc32 (Chris Doty-Humphrey's Small
 * Fast Counting generator, 32-bit variant), which passes PractRand to large sizes.
 */
export interface Rng {
  /** Uniform in [0, 1), 32 bits of entropy. */
  next(): number;
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** Integer uniform in [0, n). */
  int(n: number): number;
  /** Standard normal (Box-Muller). */
  normal(): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** The raw 32-bit output. */
  nextUint32(): number;
}

/** Named streams, so that two uses of the same seed never share numbers. */
export const RNG_STREAM = {
  init: 1,
  shuffle: 2,
  augment: 3,
  synth: 4,
  test: 5,
} as const;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hashKeys(keys: readonly number[], salt: number): number {
  let h = 0x9e3779b9 ^ salt;
  for (const key of keys) {
    // Integers up to 2^53 hash by both 32-bit halves, so epoch/index never alias.
    const lo = key >>> 0;
    const hi = Math.floor(key / 0x100000000) >>> 0;
    h = fmix32(Math.imul(h ^ lo, 0xcc9e2d51) + hi);
  }
  return fmix32(h ^ keys.length);
}

export function createRng(seed: number, ...keys: number[]): Rng {
  for (const k of [seed, ...keys]) {
    if (!Number.isSafeInteger(k) || k < 0)
      throw new RangeError(`createRng: keys must be non-negative integers, got ${k}`);
  }
  const all = [seed, ...keys];
  let a = hashKeys(all, 1);
  let b = hashKeys(all, 2);
  let c = hashKeys(all, 3);
  let d = 1;
  const nextUint32 = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) nextUint32();
  const next = () => nextUint32() / 0x100000000;
  let spare: number | undefined;
  return {
    next,
    nextUint32,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    int: (n) => Math.floor(next() * n),
    chance: (p) => next() < p,
    normal: () => {
      if (spare !== undefined) {
        const s = spare;
        spare = undefined;
        return s;
      }
      let u = 0;
      while (u === 0) u = next();
      const v = next();
      const r = Math.sqrt(-2 * Math.log(u));
      spare = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
  };
}

/** A Fisher-Yates permutation of 0..n-1 drawn from `rng`. */
export function permutation(n: number, rng: Rng): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = out[i]!;
    out[i] = out[j]!;
    out[j] = tmp;
  }
  return out;
}
