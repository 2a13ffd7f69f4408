// Element-wise kernels, one invocation per output value.
// add:      out = a + b.                                     Params: [0] count.
// gate_add: out[n, c, p] = gate[n, off + c] * h + residual.  Params: [0] count, [1] C, [2] H * W, [3] gate row length, [4] gate offset, [5] first sample.
// The gate binding is unused by `add` (bound to a placeholder).

@group(0) @binding(1) var<storage, read> A: array<ST>;
@group(0) @binding(2) var<storage, read> B: array<ST>;
@group(0) @binding(3) var<storage, read> G: array<ST>;
@group(0) @binding(4) var<storage, read_write> Out: array<ST>;

@compute @workgroup_size(256, 1, 1)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i < P[0]) {
    Out[i] = A[i] + B[i];
  }
}

@compute @workgroup_size(256, 1, 1)
fn gate_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= P[0]) {
    return;
  }
  let hw = P[2];
  let ch = (i / hw) % P[1];
  let n = P[5] + i / (hw * P[1]);
  Out[i] = G[n * P[3] + P[4] + ch] * A[i] + B[i];
}
