// Statistics of the fused pre-op, written into Coef from word `stats_off`: (mean, 1/sqrt(var + eps))
// with the biased variance of F.group_norm / F.layer_norm, both computed in two passes (mean, then the
// squared deviations) in f32.
//
// group_stats: one workgroup per (sample, group) of the chunk, a tree reduction over its C/G * H * W values.
// layer_stats: one invocation per (sample, pixel), a loop over the channels.
// Params: [0] samples in this chunk, [1] first sample, [2] C, [3] H * W, [4] groups, [5] stats offset, [6] eps (f32).

const WG: u32 = 256u;

@group(0) @binding(1) var<storage, read> X: array<ST>;
@group(0) @binding(2) var<storage, read_write> Coef: array<f32>;

var<workgroup> red: array<f32, WG>;

fn reduce_sum(v: f32, t: u32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      red[t] += red[t + s];
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(WG, 1, 1)
fn group_stats(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = P[2];
  let hw = P[3];
  let groups = P[4];
  let job = wid.y * nwg.x + wid.x;
  if (job >= P[0] * groups) {
    return;
  }
  let nl = job / groups;
  let g = job % groups;
  let cpg = c / groups;
  let size = cpg * hw;
  let base = (nl * c + g * cpg) * hw;
  var s = 0.0;
  for (var i = lid.x; i < size; i += WG) {
    s += f32(X[base + i]);
  }
  let mean = reduce_sum(s, lid.x) / f32(size);
  var v = 0.0;
  for (var i = lid.x; i < size; i += WG) {
    let d = f32(X[base + i]) - mean;
    v += d * d;
  }
  let variance = reduce_sum(v, lid.x) / f32(size);
  if (lid.x == 0u) {
    let o = P[5] + 2u * ((P[1] + nl) * groups + g);
    Coef[o] = mean;
    Coef[o + 1u] = 1.0 / sqrt(variance + pf(6u));
  }
}

@compute @workgroup_size(256, 1, 1)
fn layer_stats(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = P[2];
  let hw = P[3];
  let job = flat_index(gid, nwg);
  if (job >= P[0] * hw) {
    return;
  }
  let nl = job / hw;
  let p = job % hw;
  let base = nl * c * hw + p;
  var s = 0.0;
  for (var k = 0u; k < c; k++) {
    s += f32(X[base + k * hw]);
  }
  let mean = s / f32(c);
  var v = 0.0;
  for (var k = 0u; k < c; k++) {
    let d = f32(X[base + k * hw]) - mean;
    v += d * d;
  }
  let o = P[5] + 2u * ((P[1] + nl) * hw + p);
  Coef[o] = mean;
  Coef[o + 1u] = 1.0 / sqrt(v / f32(c) + pf(6u));
}
