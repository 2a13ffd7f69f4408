// Seeded Gaussian noise that is bit-identical on Node, Deno, Bun and browsers (README.md "Using it").
// Uniforms: xoshiro128** (Blackman & Vigna 2018) seeded by SplitMix64; normals: Marsaglia's polar
// method with our own logarithm, so only IEEE-exact operations (+ - * / sqrt, integer ops) are used.

import { type HostTensor, hostTensor, numel } from "./tensor.ts";

/**
 * Serialisable position of a {@link GaussianRng}: plain JSON (numbers and null), so that a process
 * can hand its noise stream to another one (the `handoff` cut of the streaming protocol).
 */
export interface RngState {
  algorithm: "xoshiro128**/polar";
  version: 1;
  /** The four 32-bit words of the xoshiro128** state, as unsigned integers. */
  words: [number, number, number, number];
  /** The second normal of the last polar pair when it has not been handed out yet (an f32 value). */
  spare: number | null;
}

const ALGORITHM = "xoshiro128**/polar";
const MASK64 = (1n << 64n) - 1n;
const TWO_POW_M31 = 1 / 2147483648;
const LN2 = 0.6931471805599453;
const SQRT2 = 1.4142135623730951;
// 1/(2k+1) for the atanh series; each is one correctly rounded IEEE division, the same everywhere.
const ATANH_COEFS = [1, 1 / 3, 1 / 5, 1 / 7, 1 / 9, 1 / 11, 1 / 13, 1 / 15, 1 / 17, 1 / 19, 1 / 21, 1 / 23];
const bitsView = new DataView(new ArrayBuffer(8));

/**
 * Natural logarithm of a positive, finite, normal double built only from IEEE-exact operations:
 * x = m * 2^e with m in [sqrt(1/2), sqrt(2)) (exponent read from the bits), then
 * ln m = 2 atanh(z), z = (m - 1) / (m + 1), |z| <= 0.172, by its odd power series (12 terms, error
 * below 1e-16 relative). Unlike Math.log its result is the same on every JavaScript engine.
 */
export function portableLog(x: number): number {
  if (!(x > 0) || x === Infinity) throw new RangeError(`portableLog: needs a positive finite number, got ${x}`);
  bitsView.setFloat64(0, x);
  const hi = bitsView.getUint32(0);
  let e = ((hi >>> 20) & 0x7ff) - 1023;
  if (e === -1023) throw new RangeError(`portableLog: subnormal input ${x} is not supported`);
  bitsView.setUint32(0, (hi & 0x800fffff) | (1023 << 20)); // same mantissa, exponent 0: m in [1, 2)
  let m = bitsView.getFloat64(0);
  if (m >= SQRT2) {
    m = m / 2; // exact
    e += 1;
  }
  const z = (m - 1) / (m + 1);
  const w = z * z;
  let series = ATANH_COEFS[ATANH_COEFS.length - 1];
  for (let k = ATANH_COEFS.length - 2; k >= 0; k--) series = series * w + ATANH_COEFS[k];
  return e * LN2 + 2 * z * series;
}

/** Turns a seed into a 64-bit unsigned bigint; names the problem when the seed is not usable. */
function seedToBigInt(seed: number | bigint): bigint {
  if (typeof seed === "bigint") {
    if (seed < 0n || seed > MASK64) throw new RangeError(`seed: must be in [0, 2^64 - 1], got ${seed}`);
    return seed;
  }
  if (typeof seed !== "number" || !Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`seed: must be a non-negative safe integer or a bigint, got ${String(seed)}`);
  }
  return BigInt(seed);
}

/** One SplitMix64 output; `st` holds the running state (the recommended seeder for xoshiro). */
function splitMix64(st: { s: bigint }): bigint {
  st.s = (st.s + 0x9e3779b97f4a7c15n) & MASK64;
  let z = st.s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * Seeded standard-normal generator with a portable, documented stream.
 *
 * The stream is a single sequence of f32 normals: each polar-method acceptance yields the pair
 * (u*f, v*f) in that order, and a value left over by an odd-sized request is handed out first by
 * the next request. Hence the values depend only on the seed and on how many were drawn before,
 * never on how the requests were chunked.
 *
 * @example
 * const rng = new GaussianRng(42);
 * const xT = rng.normal([1, 4, 32, 32]); // then rng.state() can be sent to another process
 */
export class GaussianRng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;

  /** Seeds the generator; `seed` is a non-negative safe integer or a bigint below 2^64. */
  constructor(seed: number | bigint) {
    const st = { s: seedToBigInt(seed) };
    const a = splitMix64(st);
    const b = splitMix64(st);
    this.s0 = Number(a & 0xffffffffn);
    this.s1 = Number(a >> 32n);
    this.s2 = Number(b & 0xffffffffn);
    this.s3 = Number(b >> 32n);
    // NOTE: xoshiro must never hold the all-zero state (it would output zeros forever).
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32-bit unsigned integer of the xoshiro128** stream. */
  nextUint32(): number {
    const s1 = this.s1;
    const rot = Math.imul(s1, 5);
    const result = Math.imul((rot << 7) | (rot >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result;
  }

  /** Fills `out` with standard normals (f32) from the stream and returns it. */
  fill(out: Float32Array): Float32Array {
    let i = 0;
    const n = out.length;
    if (n > 0 && this.spare !== null) {
      out[i++] = this.spare;
      this.spare = null;
    }
    while (i < n) {
      let u: number, v: number, s: number;
      do {
        // u, v uniform on [-1, 1) with 32-bit resolution; both exact doubles.
        u = this.nextUint32() * TWO_POW_M31 - 1;
        v = this.nextUint32() * TWO_POW_M31 - 1;
        s = u * u + v * v;
      } while (s >= 1 || s === 0);
      const f = Math.sqrt((-2 * portableLog(s)) / s);
      out[i++] = Math.fround(u * f);
      const second = Math.fround(v * f);
      if (i < n) out[i++] = second;
      else this.spare = second;
    }
    return out;
  }

  /** A new host tensor of the given shape filled with standard normals from the stream. */
  normal(shape: number[]): HostTensor {
    return hostTensor(shape, this.fill(new Float32Array(numel(shape))), "normal");
  }

  /** The current position, as JSON-safe data; {@link GaussianRng.fromState} continues from it. */
  state(): RngState {
    return {
      algorithm: ALGORITHM,
      version: 1,
      words: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0],
      spare: this.spare,
    };
  }

  /** A generator positioned at a state returned by {@link GaussianRng.state} (validated). */
  static fromState(state: RngState): GaussianRng {
    if (state === null || typeof state !== "object") throw new TypeError("rng state: expected an object");
    if (state.algorithm !== ALGORITHM || state.version !== 1) {
      throw new Error(`rng state: expected algorithm "${ALGORITHM}" version 1, got "${state.algorithm}" version ${state.version}`);
    }
    const w = state.words;
    if (!Array.isArray(w) || w.length !== 4 || !w.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) {
      throw new Error("rng state: words must be four unsigned 32-bit integers");
    }
    if ((w[0] | w[1] | w[2] | w[3]) === 0) throw new Error("rng state: the all-zero state is invalid");
    if (state.spare !== null && !(typeof state.spare === "number" && Number.isFinite(state.spare))) {
      throw new Error(`rng state: spare must be null or a finite number, got ${String(state.spare)}`);
    }
    const rng = new GaussianRng(0);
    [rng.s0, rng.s1, rng.s2, rng.s3] = [w[0] | 0, w[1] | 0, w[2] | 0, w[3] | 0];
    rng.spare = state.spare === null ? null : Math.fround(state.spare);
    return rng;
  }
}

/** A fresh random seed in [0, 2^32) from the platform's crypto source, for runs that name none. */
export function randomSeed(): number {
  const a = new Uint32Array(1);
  globalThis.crypto.getRandomValues(a);
  return a[0];
}
