// Exact (erf) GELU on f32x4: torch.nn.functional.gelu(approximate="none") = x/2 * (1 + erf(x / sqrt 2)).
// erf(z) = z P(z^2) / Q(z^2) on |z| <= 3.925 (erf rounds to +-1 beyond), a (5,5) rational fitted for relative
// error 1.9e-8 (wasm/fit-erf.py), rewritten for GELU as x * (1/2 + x P2(x^2) / Q2(x^2)) with the 1/sqrt 2
// and 1/2 folded into P2, Q2 and evaluated by Estrin's scheme (shorter dependency chains). Measured in f32:
// |error| <= 2e-7 * max(1, |x|) on [-8, 8], relative L2 6e-8 on N(0, 4) inputs (tests/wasm.test.ts).
import { constant, madd } from "./simd";

// The coefficients, read with `constant` (simd.ts): the clamp (-HI, HI), P2 and Q2 (highest power first), 1/2.
const C: usize = memory.data<f32>([
  -5.550788402557373, 5.550788402557373,
  2.260531495323903e-8, 6.292938451224472e-6, 0.00016665406292304397, 0.004663744475692511, 0.03368648514151573, 0.3989422619342804,
  1.1888901099155191e-6, 7.271440699696541e-5, 0.0018724993569776416, 0.02854202687740326, 0.2511058747768402, 1.0,
  0.5,
], 16);

@inline function k(i: i32): v128 {
  return constant(C, i);
}

/** GELU of four lanes. pmin / pmax (one instruction each) in place of min / max, whose NaN and -0 rules
 * cost V8 several: NaN lanes of x stay NaN through the clamp and the final product. */
@inline export function gelu4(x: v128): v128 {
  const xc = f32x4.pmin(f32x4.pmax(x, k(0)), k(1));
  const s = f32x4.mul(xc, xc);
  const s2 = f32x4.mul(s, s);
  const s4 = f32x4.mul(s2, s2);
  const p = madd(madd(k(2), s, k(3)), s4, madd(madd(k(4), s, k(5)), s2, madd(k(6), s, k(7))));
  const q = madd(madd(k(8), s, k(9)), s4, madd(madd(k(10), s, k(11)), s2, madd(k(12), s, k(13))));
  const y = f32x4.mul(x, f32x4.pmax(f32x4.splat(0), f32x4.add(k(14), f32x4.div(f32x4.mul(xc, p), q))));
  // Below the clamp GELU is 0 (|GELU(x)| < 1e-7 there): exactly, whatever the rounding of 1/2 + erf at the
  // clamp (engines that fuse relaxed_madd leave a tiny positive residual, which times x = -1e30 is not tiny).
  return v128.andnot(y, f32x4.lt(x, k(0)));
}

/** dst[i] = GELU(src[i]) for `count` floats (a test hook; the model applies GELU inside the norm pre-op). */
export function gelu(src: usize, dst: usize, count: i32): void {
  let i = 0;
  for (; i + 4 <= count; i += 4) v128.store(dst + (<usize>i << 2), gelu4(v128.load(src + (<usize>i << 2))));
  for (; i < count; i++) {
    store<f32>(dst + (<usize>i << 2), f32x4.extract_lane(gelu4(f32x4.splat(load<f32>(src + (<usize>i << 2)))), 0));
  }
}
