// The numerics policy of the product (README.md "Numerics"), in one place: what `dic doctor` checks at run
// time and what the test suite holds every backend to (tests/tolerances.ts re-exports these and adds the
// suite's own op-level tolerances). Relative L2 error, ||a - b|| / ||b||. Imports nothing.

/** The js backend's forward vs the PyTorch reference, per forward. */
export const JS_VS_TORCH_FORWARD = 1e-5;
/** A whole DDIM/DDPM run from the same initial noise (and injected noise), at the end. */
export const SAMPLER_TRAJECTORY = 1e-3;
/** Fast f32 backends (wasm, webgpu) vs js, per forward (also `dic doctor`'s parity check). */
export const FAST_F32_VS_JS = 1e-4;
/** f16 paths vs js, per forward. */
export const F16_VS_JS = 1e-2;
