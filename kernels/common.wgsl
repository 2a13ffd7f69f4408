// Shared prelude of every dic-sdk WGSL kernel. The runtime (src/backend/webgpu/) prepends it to each
// kernel, replaces the `alias ST` line for the f16 build (with `enable f16;` first), and substitutes the
// `const NAME: u32 = ...u;` lines of a kernel per pipeline (tile sizes, fused pre-op, activation).
//
// Binding 0 of every kernel is a read-only word array of dispatch parameters (u32, f32 as bits), a
// 256-byte-aligned slice of one arena buffer written once per submission.

alias ST = f32;

@group(0) @binding(0) var<storage, read> P: array<u32>;

/** Activation applied after the pre-op: 0 none, 1 GELU (exact erf form), 2 SiLU. */
const ACT: u32 = 0u;

fn pf(i: u32) -> f32 {
  return bitcast<f32>(P[i]);
}

// erf(x) by a rational approximation of erfc with an exp factor (absolute error < 2e-7 in f32).
fn erf_approx(x: f32) -> f32 {
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
  let y = 1.0 - poly * exp(-a * a);
  return select(-y, y, x >= 0.0);
}

fn gelu(x: f32) -> f32 {
  return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476));
}

fn silu(x: f32) -> f32 {
  return x / (1.0 + exp(-x));
}

fn act(x: f32) -> f32 {
  if (ACT == 1u) {
    return gelu(x);
  }
  if (ACT == 2u) {
    return silu(x);
  }
  return x;
}

/** Flat invocation index of a 1-D job dispatched as a 2-D grid of 256-wide workgroups. */
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.y * nwg.x * 256u + gid.x;
}
