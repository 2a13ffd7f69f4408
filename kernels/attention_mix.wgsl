// Third pass of attention.wgsl: out[n, c, i] = sum_j S[n, i, j] v[n, c, j].
// Params: [0] N, [1] C, [2] T.

@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<ST>;
@group(0) @binding(3) var<storage, read_write> Out: array<ST>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = P[1];
  let t = P[2];
  let idx = flat_index(gid, nwg);
  if (idx >= P[0] * c * t) {
    return;
  }
  let i = idx % t;
  let ch = (idx / t) % c;
  let n = idx / (t * c);
  var s = 0.0;
  for (var j = 0u; j < t; j++) {
    s = fma(S[(n * t + i) * t + j], f32(V[(n * c + ch) * t + j]), s);
  }
  Out[idx] = ST(s);
}
