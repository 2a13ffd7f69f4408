// The SD-VAE decoder: configuration, parameter table, loading from AutoencoderKL safetensors files, the
// graph on the Backend contract, tiled decoding under a memory budget and the linear latent preview.
export { resolveVAEConfig, SD_VAE_CONFIG, type VAEConfig, type VAEConfigInput, vaeUpscale } from "./config.ts";
export { canonicalVAEName, expectedVAEParams, vaeDecodeMacs, vaeParamCount } from "./params.ts";
export { VAEDecoderGraph } from "./decoder.ts";
export { bindVAE, bindVAEFrom, checkVAETensors, vaeConfigForFile } from "./load.ts";
export { type DecodeOptions, decodeLatents, type DecodeResult, estimateDecodeBytes } from "./tiled.ts";
export { latentPreview, SD_LATENT_RGB_BIAS, SD_LATENT_RGB_FACTORS } from "./preview.ts";
