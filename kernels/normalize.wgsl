// Materialises the pre-op (see preop.wgsl): out = act(((x - mean) * rstd) * A + B), one invocation per value.
// Params: [0] samples in this chunk, [1] first sample, [2] C, [3] H * W, [4] stats offset, [5] groups, [6] channels per group.

@group(0) @binding(1) var<storage, read> X: array<ST>;
@group(0) @binding(2) var<storage, read> Coef: array<f32>;
@group(0) @binding(3) var<storage, read_write> Out: array<ST>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = P[2];
  let hw = P[3];
  let i = flat_index(gid, nwg);
  if (i >= P[0] * c * hw) {
    return;
  }
  let q = i % hw;
  let ch = (i / hw) % c;
  let nl = i / (c * hw);
  Out[i] = ST(pre_op(f32(X[i]), P[1] + nl, ch, q, PreArgs(c, hw, P[4], P[5], P[6])));
}
