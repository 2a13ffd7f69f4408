// The fused input pre-op act(((x - mean) * rstd) * A[n, c] + B[n, c]) shared by the GEMM and normalize
// kernels. `Coef` (declared by the including kernel) holds A, B per (sample, channel) at 2 * (n * C + c)
// (the norm affine and the modulate folded together by norm_coef.wgsl), then from word `stats_off` the
// mean and 1/std per (sample, group) for group norm or per (sample, pixel) for layer norm.

/** 0: no norm (activation only), 1: group norm, 2: layer norm over channels. */
const PRE: u32 = 0u;

struct PreArgs {
  c: u32,         // channels of the input
  hw: u32,        // pixels per channel plane
  stats_off: u32, // word offset of the statistics in Coef
  groups: u32,
  cpg: u32,       // channels per group
}

fn pre_op(v: f32, n: u32, c: u32, q: u32, a: PreArgs) -> f32 {
  var y = v;
  if (PRE != 0u) {
    var s = n * a.hw + q;
    if (PRE == 1u) {
      s = n * a.groups + c / a.cpg;
    }
    let mean = Coef[a.stats_off + 2u * s];
    let rstd = Coef[a.stats_off + 2u * s + 1u];
    let k = 2u * (n * a.c + c);
    y = (y - mean) * rstd * Coef[k] + Coef[k + 1u];
  }
  return act(y);
}

/** Group norm only: the pre-op of channel c of sample n as v * k.x + k.y (mean, 1/std, A and B folded). */
fn group_coef(n: u32, c: u32, a: PreArgs) -> vec2<f32> {
  let s = n * a.groups + c / a.cpg;
  let rstd = Coef[a.stats_off + 2u * s + 1u];
  let k = 2u * (n * a.c + c);
  let scale = rstd * Coef[k];
  return vec2<f32>(scale, Coef[k + 1u] - Coef[a.stats_off + 2u * s] * scale);
}
