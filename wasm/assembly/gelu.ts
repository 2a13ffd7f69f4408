// Exact (erf) GELU on f32x4: torch.nn.functional.gelu(approximate="none") = x/2 * (1 + erf(x / sqrt 2)).
// erf(z) = z P(z^2) / Q(z^2) on |z| <= 3.925 (erf rounds to +-1 beyond), a (5,5) rational fitted for relative
// error 1.9e-8 (wasm/fit-erf.py), rewritten for GELU as x * (1/2 + x P2(x^2) / Q2(x^2)) with the 1/sqrt 2
// and 1/2 folded into P2, Q2 and evaluated by Estrin's scheme (shorter dependency chains). Measured in f32:
// |error| <= 2e-7 * max(1, |x|) on [-8, 8], relative L2 6e-8 on N(0, 4) inputs (tests/wasm.test.ts).
import { madd } from "./simd";

@inline function k(v: f32): v128 {
  return f32x4.splat(v);
}

/** GELU of four lanes. */
@inline export function gelu4(x: v128): v128 {
  const xc = f32x4.min(f32x4.max(x, k(-5.550788402557373)), k(5.550788402557373));
  const s = f32x4.mul(xc, xc);
  const s2 = f32x4.mul(s, s);
  const s4 = f32x4.mul(s2, s2);
  const p = madd(madd(k(2.260531495323903e-8), s, k(6.292938451224472e-6)), s4,
    madd(madd(k(0.00016665406292304397), s, k(0.004663744475692511)), s2, madd(k(0.03368648514151573), s, k(0.3989422619342804))));
  const q = madd(madd(k(1.1888901099155191e-6), s, k(7.271440699696541e-5)), s4,
    madd(madd(k(0.0018724993569776416), s, k(0.02854202687740326)), s2, madd(k(0.2511058747768402), s, k(1.0))));
  // NOTE: max(.., 0) keeps GELU of large negative x at -0 instead of a tiny positive value past the clamp.
  return f32x4.mul(x, f32x4.max(f32x4.add(k(0.5), f32x4.div(f32x4.mul(xc, p), q)), k(0)));
}

/** dst[i] = GELU(src[i]) for `count` floats (a test hook; the model applies GELU inside the norm pre-op). */
export function gelu(src: usize, dst: usize, count: i32): void {
  let i = 0;
  for (; i + 4 <= count; i += 4) v128.store(dst + (<usize>i << 2), gelu4(v128.load(src + (<usize>i << 2))));
  for (; i < count; i++) {
    store<f32>(dst + (<usize>i << 2), f32x4.extract_lane(gelu4(f32x4.splat(load<f32>(src + (<usize>i << 2)))), 0));
  }
}
