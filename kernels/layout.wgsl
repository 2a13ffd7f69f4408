// Data movement, one invocation per output value (NCHW in and out).
// pixel_shuffle:    [N, C*r*r, H, W] -> [N, C, H*r, W*r] (torch.nn.PixelShuffle).
// pixel_unshuffle:  [N, C, H, W] -> [N, C*r*r, H/r, W/r] (torch.nn.PixelUnshuffle).
// upsample_nearest: [N, C, H, W] -> [N, C, H*r, W*r] (F.interpolate mode "nearest", integer factor).
//   Params: [0] output count, [1] output C, [2] output H, [3] output W, [4] r.
// concat:           [N, Ca, H, W] + [N, Cb, H, W] -> [N, Ca + Cb, H, W] (B is bound to binding 2).
//   Params: [0] output count, [1] Ca, [2] Cb, [3] H * W.
// gather:           rows of a [V, D] table.  Params: [0] output count, [1] D, [2...] row ids.

@group(0) @binding(1) var<storage, read> X: array<ST>;
@group(0) @binding(2) var<storage, read> Y: array<ST>;
@group(0) @binding(3) var<storage, read_write> Out: array<ST>;

@compute @workgroup_size(256, 1, 1)
fn pixel_shuffle(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= P[0]) {
    return;
  }
  let c = P[1];
  let ho = P[2];
  let wo = P[3];
  let r = P[4];
  let ox = i % wo;
  let oy = (i / wo) % ho;
  let oc = (i / (wo * ho)) % c;
  let n = i / (wo * ho * c);
  let h = ho / r;
  let w = wo / r;
  let ic = oc * r * r + (oy % r) * r + ox % r;
  Out[i] = X[((n * c * r * r + ic) * h + oy / r) * w + ox / r];
}

@compute @workgroup_size(256, 1, 1)
fn pixel_unshuffle(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= P[0]) {
    return;
  }
  let co = P[1];
  let ho = P[2];
  let wo = P[3];
  let r = P[4];
  let ox = i % wo;
  let oy = (i / wo) % ho;
  let oc = (i / (wo * ho)) % co;
  let n = i / (wo * ho * co);
  let c = co / (r * r);
  let ic = oc / (r * r);
  let sub = oc % (r * r);
  let h = ho * r;
  let w = wo * r;
  Out[i] = X[((n * c + ic) * h + oy * r + sub / r) * w + ox * r + sub % r];
}

@compute @workgroup_size(256, 1, 1)
fn upsample_nearest(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= P[0]) {
    return;
  }
  let ho = P[2];
  let wo = P[3];
  let r = P[4];
  let ox = i % wo;
  let oy = (i / wo) % ho;
  let plane = i / (wo * ho);
  Out[i] = X[(plane * (ho / r) + oy / r) * (wo / r) + ox / r];
}

@compute @workgroup_size(256, 1, 1)
fn concat(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= P[0]) {
    return;
  }
  let ca = P[1];
  let cb = P[2];
  let hw = P[3];
  let p = i % hw;
  let c = (i / hw) % (ca + cb);
  let n = i / (hw * (ca + cb));
  if (c < ca) {
    Out[i] = X[(n * ca + c) * hw + p];
  } else {
    Out[i] = Y[(n * cb + c - ca) * hw + p];
  }
}

@compute @workgroup_size(256, 1, 1)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= P[0]) {
    return;
  }
  let d = P[1];
  Out[i] = X[P[2u + i / d] * d + i % d];
}
