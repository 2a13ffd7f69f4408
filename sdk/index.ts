// dic-sdk public surface: load DiC weights, run the network, generate samples.
export { DiCModel, loadModel, type LoadModelOptions, type ModelSource } from "./model.ts";
export { generate, type GeneratedImage, type GenerateOptions, type GenerateResult } from "./generate.ts";
export { DEFAULT_MODEL_FILE, defaultModelUrl, loadDefaultModel } from "./default-model.ts";
export { encodePNG, makeGrid, type RgbaImage, toRGBA } from "../src/image.ts";
export { SAMPLER_NAMES } from "../src/samplers/index.ts";
export { CFG_MODES } from "../src/samplers/guidance.ts";
export { listBackends } from "../src/backend/registry.ts";
export type { Backend, Tensor } from "../src/backend/contract.ts";
export { type DiCConfig, type DiCConfigInput, PRESET_NAMES, PRESETS, resolveConfig } from "../src/model/config.ts";
export { paramCount, forwardMacs } from "../src/model/params.ts";
export { GaussianRng } from "../src/rng.ts";
export type { HostTensor } from "../src/tensor.ts";
export { WeightsError } from "../src/weights/safetensors.ts";
export type { ProgressInfo } from "../src/pipeline.ts";
export { doctor, type DoctorOptions, type DoctorReport, formatDoctorReport, type ParityCheck } from "./doctor.ts";
export type { Capabilities, WebGpuReport } from "../src/capabilities.ts";
export { CacheApiCache, defaultCacheDir, DownloadError, type DownloadErrorCode, type DownloadOptions, type DownloadProgress, downloadWeights, FolderCache, sha256Hex, type WeightsCache } from "../src/download.ts";
