// Every numeric tolerance of the suite, named by what it protects (DESIGN.md section 4).

/** js backend forward vs the PyTorch reference, relative L2 per forward. */
export const JS_VS_TORCH_FORWARD = 1e-5;
/** A whole DDIM/DDPM run from the same initial noise (and injected noise), relative L2 at the end. */
export const SAMPLER_TRAJECTORY = 1e-3;
/** Fast f32 backends (wasm, webgpu) vs js, relative L2 per forward. */
export const FAST_F32_VS_JS = 1e-4;
/** f16 paths vs js, relative L2 per forward. */
export const F16_VS_JS = 1e-2;
