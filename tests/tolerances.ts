// Every numeric tolerance of the suite, named by what it protects (README.md "Numerics"). The per-forward
// policy is the product's own (src/numerics.ts, which `dic doctor` checks too); the rest is the suite's.

export { F16_VS_JS, FAST_F32_VS_JS, JS_VS_TORCH_FORWARD, SAMPLER_TRAJECTORY } from "../src/numerics.ts";

/**
 * The wasm backend's compact storage (src/backend/wasm/storage.ts) vs js, relative L2. f16: the weights'
 * binary16 rounding (relative 2^-11 at most per tap); measured 2e-4 per conv3x3 on random N(0, 0.04)
 * weights, 4e-4 per forward of the tiny fixture model (an f32 file; an f16 file is stored exactly: 4e-6 on
 * DiC-S). int8 with per-output-channel scales: measured 6.6e-3 per conv3x3 (1.6e-2 on the ops fixtures), 1.2e-2 to 1.8e-2 per forward
 * on random Gaussian weights (their tails make max |w| / 127 coarse; tests/wasm.test.ts prints the figures).
 */
export const COMPACT_F16_VS_JS_OP = 1e-3;
export const COMPACT_INT8_VS_JS_OP = 4e-2;
export const COMPACT_F16_VS_JS_FORWARD = 2e-3;
export const COMPACT_INT8_VS_JS_FORWARD = 5e-2;

/**
 * js backend vs PyTorch fp32 per op, relative L2 (tests/ops.test.ts on reference/fixtures_ops.py). The js
 * backend accumulates in f64, so what it measures is torch's own fp32 rounding (torch fp32 vs fp64 on the
 * same cases: conv3x3 <= 5.0e-7, linear 3.3e-7, conv1x1 1.8e-7, normalize 1.2e-7, gateAdd 3.1e-8); about
 * 2x-5x headroom on that. add and the data-movement ops must match torch bit for bit.
 */
export const JS_VS_TORCH_OP: Readonly<Record<string, number>> = Object.freeze({
  conv3x3: 1e-6,
  conv1x1: 5e-7,
  linear: 1e-6,
  normalize: 5e-7,
  gateAdd: 2e-7,
  add: 0,
  gather: 0,
  pixelShuffle: 0,
  pixelUnshuffle: 0,
  concat: 0,
  // The VAE decoder's ops; attention's floor is torch's fp32 softmax and matmuls (torch fp32 vs fp64 <= 2.1e-7 on its cases).
  upsampleNearest: 0,
  attention: 1e-6,
});
/**
 * A backend's conv3x3 with a fused pre-op vs its own normalize followed by a plain conv3x3 (js: exactly 0;
 * a fast backend may round the normalised input differently and its Winograd transform amplifies that).
 */
export const FUSED_PREOP_VS_UNFUSED = 1e-5;

/**
 * VAE decoder: tiled (overlapping tiles, linear blending) vs untiled decode of the same latent, relative L2.
 * Tiling is approximate by design (GroupNorm statistics and the mid-block attention see one tile); measured
 * on random non-zero weights and latents (tests/vae.test.ts prints the figure): 24x20 latent in 2x2 tiles of 16,
 * 5e-2 to 6e-2; the gap shrinks with larger tiles (32x32 in 2x2 tiles of 24: 4.3e-2) and grows with small ones
 * (20x20 in tiles of 8: 2e-1), which is why the budget picks the largest tile that fits.
 */
export const VAE_TILED_VS_UNTILED = 0.1;

/** Frechet statistics in f64 vs numpy (LAPACK eigh vs our Jacobi), relative to the quantity's scale. */
export const FRECHET_REL = 1e-9;
