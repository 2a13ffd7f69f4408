// conv3x3 for CPU ("fallback") adapters such as lavapipe, where every storage or workgroup-memory load
// costs far more than arithmetic: each invocation computes 4 neighbouring pixels of a row x 8 output
// channels (32 accumulators), loading per input channel and kernel row only the 6 input values it needs
// (pre-op applied, zero padding after it) and 2 x 3 vec4 weights — 96 FMAs per 12 loads, no barriers.
// Weights are packed k-major, [Ci * 9][Co rounded up to 8] (pack_kmajor in pack.wgsl), read as vec4.
// Params as gemm_conv.wgsl: [0] samples in this chunk, [1] first sample, [2] Ci, [3] H, [4] W, [5] Co,
// [6] stats offset, [7] groups, [8] channels per group; plus [9] padded Co.

const HAS_BIAS: u32 = 0u;

@group(0) @binding(1) var<storage, read> X: array<ST>;
@group(0) @binding(2) var<storage, read> Wp: array<vec4<ST>>;
@group(0) @binding(3) var<storage, read> Bias: array<ST>;
@group(0) @binding(4) var<storage, read> Coef: array<f32>;
@group(0) @binding(5) var<storage, read_write> Out: array<ST>;

// NOTE: group norm's per-channel affine `gk` is computed once per input channel (4 loads saved per value).
fn load_in(base: u32, n: u32, c: u32, yy: i32, xx: i32, h: u32, w: u32, args: PreArgs, gk: vec2<f32>) -> f32 {
  if (yy < 0 || yy >= i32(h) || xx < 0 || xx >= i32(w)) {
    return 0.0;
  }
  let q = u32(yy) * w + u32(xx);
  if (PRE == 1u) {
    return act(f32(X[base + q]) * gk.x + gk.y);
  }
  return pre_op(f32(X[base + q]), n, c, q, args);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let nc = P[0];
  let ci = P[2];
  let h = P[3];
  let w = P[4];
  let co = P[5];
  let cop4 = P[9] / 4u;
  let wq = (w + 3u) / 4u;
  let quad = gid.x;
  if (quad >= nc * h * wq) {
    return;
  }
  let nl = quad / (h * wq);
  let y = i32((quad / wq) % h);
  let x0 = i32(quad % wq) * 4;
  let o0 = gid.y * 8u;
  let ng = P[1] + nl;
  let args = PreArgs(ci, h * w, P[6], P[7], P[8]);
  var p0a = vec4<f32>(0.0);
  var p0b = vec4<f32>(0.0);
  var p1a = vec4<f32>(0.0);
  var p1b = vec4<f32>(0.0);
  var p2a = vec4<f32>(0.0);
  var p2b = vec4<f32>(0.0);
  var p3a = vec4<f32>(0.0);
  var p3b = vec4<f32>(0.0);
  for (var c = 0u; c < ci; c++) {
    let base = (nl * ci + c) * h * w;
    var gk = vec2<f32>(1.0, 0.0);
    if (PRE == 1u) {
      gk = group_coef(ng, c, args);
    }
    for (var dy = 0u; dy < 3u; dy++) {
      let yy = y + i32(dy) - 1;
      let r0 = load_in(base, ng, c, yy, x0 - 1, h, w, args, gk);
      let r1 = load_in(base, ng, c, yy, x0, h, w, args, gk);
      let r2 = load_in(base, ng, c, yy, x0 + 1, h, w, args, gk);
      let r3 = load_in(base, ng, c, yy, x0 + 2, h, w, args, gk);
      let r4 = load_in(base, ng, c, yy, x0 + 3, h, w, args, gk);
      let r5 = load_in(base, ng, c, yy, x0 + 4, h, w, args, gk);
      let kb = (c * 9u + dy * 3u) * cop4 + o0 / 4u;
      for (var dx = 0u; dx < 3u; dx++) {
        let wa = vec4<f32>(Wp[kb + dx * cop4]);
        let wb = vec4<f32>(Wp[kb + dx * cop4 + 1u]);
        var v0 = r0;
        var v1 = r1;
        var v2 = r2;
        var v3 = r3;
        if (dx == 1u) {
          v0 = r1;
          v1 = r2;
          v2 = r3;
          v3 = r4;
        }
        if (dx == 2u) {
          v0 = r2;
          v1 = r3;
          v2 = r4;
          v3 = r5;
        }
        p0a = fma(vec4<f32>(v0), wa, p0a);
        p0b = fma(vec4<f32>(v0), wb, p0b);
        p1a = fma(vec4<f32>(v1), wa, p1a);
        p1b = fma(vec4<f32>(v1), wb, p1b);
        p2a = fma(vec4<f32>(v2), wa, p2a);
        p2b = fma(vec4<f32>(v2), wb, p2b);
        p3a = fma(vec4<f32>(v3), wa, p3a);
        p3b = fma(vec4<f32>(v3), wb, p3b);
      }
    }
  }
  var accs = array<vec4<f32>, 8>(p0a, p0b, p1a, p1b, p2a, p2b, p3a, p3b);
  let hw = h * w;
  for (var px = 0u; px < 4u; px++) {
    let xx = u32(x0) + px;
    if (xx >= w) {
      continue;
    }
    let pix = u32(y) * w + xx;
    for (var j = 0u; j < 8u; j++) {
      let o = o0 + j;
      if (o < co) {
        var bias = 0.0;
        if (HAS_BIAS == 1u) {
          bias = f32(Bias[o]);
        }
        Out[(nl * co + o) * hw + pix] = ST(accs[2u * px + j / 4u][j % 4u] + bias);
      }
    }
  }
}
