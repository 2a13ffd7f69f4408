// Convolution as a tiled implicit GEMM: out[n, o, p] = sum_k W[o, k] * im2col(pre(x))[k, (n, p)] + bias[o],
// with k = ci * TAPS + tap (TAPS = 9: 3x3 stride 1 pad 1; TAPS = 1: 1x1 conv, and linear as a 1x1 conv on
// 1x1 images). A workgroup of WX x WY invocations computes a TM x TN tile (output channels x pixels),
// each invocation 4 x 4 outputs in registers (TM = 4 WY, TN = 4 WX), stepping through K in TK slices staged in workgroup
// memory. The fused pre-op (norm + modulate + activation) is applied while the input tile is loaded, so
// padding stays zero after it, as in the unfused definition.
//
// Params: [0] samples in this chunk, [1] first sample (for Coef), [2] Ci, [3] H, [4] W, [5] Co,
// [6] stats offset, [7] groups, [8] channels per group.

const TAPS: u32 = 9u;
const HAS_BIAS: u32 = 0u;
const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;
const WX: u32 = 16u;
const WY: u32 = 16u;
const THREADS: u32 = WX * WY;

@group(0) @binding(1) var<storage, read> X: array<ST>;
@group(0) @binding(2) var<storage, read> Wt: array<ST>;
@group(0) @binding(3) var<storage, read> Bias: array<ST>;
@group(0) @binding(4) var<storage, read> Coef: array<f32>;
@group(0) @binding(5) var<storage, read_write> Out: array<ST>;

var<workgroup> As: array<ST, TK * TM>;
var<workgroup> Bs: array<ST, TK * TN>;

@compute @workgroup_size(WX, WY, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let nc = P[0];
  let n0 = P[1];
  let ci = P[2];
  let h = P[3];
  let w = P[4];
  let co = P[5];
  let hw = h * w;
  let npix = nc * hw;
  let kdim = ci * TAPS;
  let args = PreArgs(ci, hw, P[6], P[7], P[8]);
  let tid = lid.y * WX + lid.x;
  let m0 = wid.y * TM;
  let p0 = wid.x * TN;

  // The input column this invocation loads is the same for every K slice: decode its pixel once
  // (NOTE: divisions by run-time values are slow on CPU adapters; the ones left in the loop are by constants).
  let col = tid % TN;
  let row0 = tid / TN;
  let gp_load = p0 + col;
  let in_range = gp_load < npix;
  let nl_load = select(0u, gp_load / hw, in_range);
  let pix_load = select(0u, gp_load % hw, in_range);
  let py = i32(pix_load / w);
  let px = i32(pix_load % w);
  let xbase = nl_load * ci * hw;

  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < kdim; k0 += TK) {
    for (var i = tid; i < TK * TM; i += THREADS) {
      let m = i / TK;
      let kk = i % TK;
      let gm = m0 + m;
      let gk = k0 + kk;
      var a = ST(0.0);
      if (gm < co && gk < kdim) {
        a = Wt[gm * kdim + gk];
      }
      As[kk * TM + m] = a;
    }
    for (var kk = row0; kk < TK; kk += THREADS / TN) {
      let gk = k0 + kk;
      var b = 0.0;
      if (in_range && gk < kdim) {
        let c = gk / TAPS;
        var yy = py;
        var xx = px;
        if (TAPS == 9u) {
          let tap = gk % 9u;
          yy += i32(tap / 3u) - 1;
          xx += i32(tap % 3u) - 1;
        }
        if (yy >= 0 && yy < i32(h) && xx >= 0 && xx < i32(w)) {
          let q = u32(yy) * w + u32(xx);
          b = pre_op(f32(X[xbase + c * hw + q]), n0 + nl_load, c, q, args);
        }
      }
      Bs[kk * TN + col] = ST(b);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      let ar = kk * TM + lid.y;
      let a = vec4<f32>(f32(As[ar]), f32(As[ar + WY]), f32(As[ar + 2u * WY]), f32(As[ar + 3u * WY]));
      let br = kk * TN + lid.x;
      let b = vec4<f32>(f32(Bs[br]), f32(Bs[br + WX]), f32(Bs[br + 2u * WX]), f32(Bs[br + 3u * WX]));
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
    }
    workgroupBarrier();
  }

  let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i++) {
    let gm = m0 + lid.y + i * WY;
    if (gm >= co) {
      continue;
    }
    var bias = 0.0;
    if (HAS_BIAS == 1u) {
      bias = f32(Bias[gm]);
    }
    let v = accs[i];
    for (var j = 0u; j < 4u; j++) {
      let gp = p0 + lid.x + j * WX;
      if (gp < npix) {
        let nl = gp / hw;
        Out[(nl * co + gm) * hw + gp % hw] = ST(v[j] + bias);
      }
    }
  }
}
