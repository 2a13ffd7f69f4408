// Repacks a [Co, K] weight matrix k-major with Co padded: out[k, o] = o < Co ? w[o, k] : 0 (conv_rows.wgsl).
// Params: [0] K * padded Co, [1] Co, [2] K, [3] padded Co.

@group(0) @binding(1) var<storage, read> Wsrc: array<ST>;
@group(0) @binding(2) var<storage, read_write> Out: array<ST>;

@compute @workgroup_size(256, 1, 1)
fn pack_kmajor(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= P[0]) {
    return;
  }
  let k = i / P[3];
  let o = i % P[3];
  var v = ST(0.0);
  if (o < P[1]) {
    v = Wsrc[o * P[2] + k];
  }
  Out[i] = v;
}
