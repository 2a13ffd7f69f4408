// exp and SiLU on f32x4 lanes: Cephes-style range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6
// polynomial for e^r and 2^n built in the exponent bits (relative error ~1e-7 for x in [-87, 88]).
// Used by the VAE's GroupNorm + SiLU pre-op and by the attention softmax.

import { constant } from "./simd";

// The constants, read with `constant` (simd.ts): clamp, log2(e), ln 2 in two parts, the polynomial, 1.
const C: usize = memory.data<f32>([
  -87.3, 88.3, 1.44269504088896341, 0.693359375, -2.12194440e-4,
  1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1, 1.0,
], 16);

@inline function k(i: i32): v128 {
  return constant(C, i);
}

/** e^x lane-wise; x is clamped to [-87.3, 88.3] (results below 2^-126 are not needed here). pmin / pmax:
 * one instruction each, and a NaN lane stays NaN. */
@inline export function exp4(x: v128): v128 {
  x = f32x4.pmin(f32x4.pmax(x, k(0)), k(1));
  const n = f32x4.nearest(f32x4.mul(x, k(2)));
  let r = f32x4.sub(x, f32x4.mul(n, k(3)));
  r = f32x4.sub(r, f32x4.mul(n, k(4)));
  let p = k(5);
  p = f32x4.add(f32x4.mul(p, r), k(6));
  p = f32x4.add(f32x4.mul(p, r), k(7));
  p = f32x4.add(f32x4.mul(p, r), k(8));
  p = f32x4.add(f32x4.mul(p, r), k(9));
  p = f32x4.add(f32x4.mul(p, r), k(10));
  const y = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), k(11));
  const pow2 = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(y, pow2);
}

/** x * sigmoid(x) = x / (1 + e^-x), lane-wise. */
@inline export function silu4(x: v128): v128 {
  return f32x4.div(x, f32x4.add(k(11), exp4(f32x4.neg(x))));
}

/** dst = SiLU(src) over count floats (dst may equal src): the SiLU of the VAE's GroupNorm + SiLU pre-op. */
export function siluSimd(src: usize, dst: usize, count: i32): void {
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    const o = <usize>i << 2;
    v128.store(dst + o, silu4(v128.load(src + o)));
  }
  for (; i < count; i++) {
    const o = <usize>i << 2;
    store<f32>(dst + o, f32x4.extract_lane(silu4(f32x4.splat(load<f32>(src + o))), 0));
  }
}
