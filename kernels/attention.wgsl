// Single-head attention over the H*W positions of [N, C, H, W] tensors as tokens of dimension C:
// out[n, :, p] = sum_j softmax_j(q[n, :, p] . k[n, :, j] / sqrt(C)) v[n, :, j], in three passes over a
// [N, T, T] score buffer S (T = H * W).
// scores:  S[n, i, j] = q_i . k_j * scale.           Params: [0] N, [1] C, [2] T, [3] scale (f32).
// softmax: each row of S in place (max-subtracted).   One workgroup of 256 per row.
// mix:     out[n, c, i] = sum_j S[n, i, j] v[n, c, j].

@group(0) @binding(1) var<storage, read> Q: array<ST>;
@group(0) @binding(2) var<storage, read> K: array<ST>;
@group(0) @binding(3) var<storage, read_write> S: array<f32>;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn scores(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = P[1];
  let t = P[2];
  let idx = flat_index(gid, nwg);
  if (idx >= P[0] * t * t) {
    return;
  }
  let j = idx % t;
  let i = (idx / t) % t;
  let n = idx / (t * t);
  var s = 0.0;
  for (var k = 0u; k < c; k++) {
    s = fma(f32(Q[(n * c + k) * t + i]), f32(K[(n * c + k) * t + j]), s);
  }
  S[idx] = s * pf(3u);
}

@compute @workgroup_size(256, 1, 1)
fn softmax(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = P[2];
  let row = wid.y * nwg.x + wid.x;
  if (row >= P[0] * t) {
    return;
  }
  let base = row * t;
  var m = -3.0e38;
  for (var j = lid.x; j < t; j += 256u) {
    m = max(m, S[base + j]);
  }
  red[lid.x] = m;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      red[lid.x] = max(red[lid.x], red[lid.x + s]);
    }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var j = lid.x; j < t; j += 256u) {
    let e = exp(S[base + j] - mx);
    S[base + j] = e;
    sum += e;
  }
  red[lid.x] = sum;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      red[lid.x] += red[lid.x + s];
    }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];
  for (var j = lid.x; j < t; j += 256u) {
    S[base + j] *= inv;
  }
}
