// Folds the norm affine and the modulate of a pre-op into one (A, B) pair per (sample, channel):
// (z * w + b) * (1 + scale) + shift = z * A + B with A = w * (1 + scale), B = b * (1 + scale) + shift.
// Params: [0] N, [1] C, [2] flags (1: affine, 2: modulate), [3] scale row length, [4] scale offset,
// [5] shift row length, [6] shift offset.

@group(0) @binding(1) var<storage, read> Wn: array<ST>;
@group(0) @binding(2) var<storage, read> Bn: array<ST>;
@group(0) @binding(3) var<storage, read> Scale: array<ST>;
@group(0) @binding(4) var<storage, read> Shift: array<ST>;
@group(0) @binding(5) var<storage, read_write> Coef: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = P[1];
  let i = flat_index(gid, nwg);
  if (i >= P[0] * c) {
    return;
  }
  let n = i / c;
  let ch = i % c;
  let flags = P[2];
  var a = 1.0;
  var b = 0.0;
  if ((flags & 1u) != 0u) {
    a = f32(Wn[ch]);
    b = f32(Bn[ch]);
  }
  if ((flags & 2u) != 0u) {
    let s = 1.0 + f32(Scale[n * P[3] + P[4] + ch]);
    a *= s;
    b = b * s + f32(Shift[n * P[5] + P[6] + ch]);
  }
  Coef[2u * i] = a;
  Coef[2u * i + 1u] = b;
}
