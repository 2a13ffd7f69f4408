// dic-sdk public surface: load DiC weights, run the network, generate samples.
export { DiCModel, DiCModelCard, loadModel, type LoadModelOptions, type ModelSource } from "./model.ts";
export type { ModelPart } from "../src/model/params.ts";
export type { WeightLoadInfo } from "../src/weights/source.ts";
export { generate, GENERATE_OPTION_KEYS, type GeneratedImage, type GenerateOptions, type GenerateResult } from "./generate.ts";
export { DEFAULT_MODEL_FILE, defaultModelUrl, loadDefaultModel } from "./default-model.ts";
export { encodePNG, makeGrid, type RgbaImage, toRGBA } from "../src/image.ts";
export { SAMPLER_NAMES } from "../src/samplers/index.ts";
export { CFG_MODES } from "../src/samplers/guidance.ts";
export {
  BACKEND_NAMES, type BackendChoice, type BackendName, type BackendOptions, createBackend, listBackends, setWasmModules, WASM_BUILDS, type WasmBuild,
  type WasmModules,
} from "../src/backend/registry.ts";
export { createWasmBackend, createWebGpuBackend, type WasmBackendOptions, type WebGpuBackendOptions } from "./backends.ts";
export { DicError, type SettingsErrorCode } from "../src/errors.ts";
export { CFG_SCALE_MAX, type GenerationSettings, type LabelInput, STEPS_MAX, validateSettings } from "../src/settings.ts";
export { VERSION } from "../src/version.ts";
export type { Backend, MemoryBudgetCode, StorageReport, Tensor } from "../src/backend/contract.ts";
export { MemoryBudgetError } from "../src/backend/contract.ts";
export { quantizeSafetensors } from "../src/weights/quantize.ts";
export { type DiCConfig, type DiCConfigInput, PRESET_NAMES, PRESETS, resolveConfig } from "../src/model/config.ts";
export { paramCount, forwardMacs } from "../src/model/params.ts";
export { GaussianRng } from "../src/rng.ts";
export type { HostTensor } from "../src/tensor.ts";
export { WeightsError } from "../src/weights/safetensors.ts";
export type { ProgressInfo } from "../src/pipeline.ts";
export { loadVAE, type LoadVAEOptions, previewLatents, VAEModel } from "./vae.ts";
export { type DecodeOptions, type DecodeResult, latentPreview, SD_VAE_CONFIG, type VAEConfig, type VAEConfigInput } from "../src/vae/index.ts";
export { createEdgeHandler, createHostHandler, EDGE_LIMITS, type EdgeOptions, type Handler, type HostOptions, loadRemoteModel, loadServingModel, type RemoteModel, type ServingLoadOptions, type ServingModel } from "./serve.ts";
export { type NodeListenerOptions, toNodeListener } from "./node-adapter.ts";
export { PROTOCOL_VERSION, ProtocolError, type Cut, CUTS, EDGE_CUTS, type EdgeCut } from "../src/protocol/index.ts";
export { doctor, type DoctorOptions, type DoctorReport, formatDoctorReport, type MemoryCheck, type ParityCheck, storageLines } from "./doctor.ts";
export type { Capabilities, WebGpuReport } from "../src/capabilities.ts";
export { CacheApiCache, defaultCacheDir, DownloadError, type DownloadErrorCode, type DownloadOptions, type DownloadProgress, downloadWeights, FolderCache, sha256Hex, type WeightsCache } from "../src/weights/download.ts";
