// generate(): the sampling loop of src/pipeline.ts driven from a loaded model, with labels by
// index, seeds, guidance, progress and cancellation.
import type { Backend } from "../src/backend/contract.ts";
import { type BackendName, createBackend } from "../src/backend/registry.ts";
import { DicError } from "../src/errors.ts";
import { runSampler, type ProgressInfo } from "../src/pipeline.ts";
import type { CfgMode } from "../src/samplers/guidance.ts";
import type { SamplerName } from "../src/samplers/index.ts";
import { encodePNG, type RgbaImage, toRGBA } from "../src/image.ts";
import { checkKnownKeys, type GenerationSettings, type LabelInput, validateSettings } from "../src/settings.ts";
import type { HostTensor } from "../src/tensor.ts";
import { loadDefaultModel } from "./default-model.ts";
import { DiCModel, loadModel, type ModelSource } from "./model.ts";
import { loadVAE, VAEModel } from "./vae.ts";
import type { Bytes } from "../src/bytes.ts";

/** Options of `generate`. */
export interface GenerateOptions {
  /** A loaded model, or where to load one from (path, URL, bytes, Response). Default: the embedded model. */
  model?: DiCModel | ModelSource;
  /**
   * Class per image, by index or name ("sneaker"); one image per entry. `null` asks for the null class
   * (an unconditional sample; the model needs one: class_dropout_prob > 0). A class-conditional model
   * given no label is an error (code "missing_label"), never a silent class 0.
   */
  labels?: LabelInput[] | LabelInput;
  /** Shorthand for a single class: `label: "sneaker"` (or `null`: one unconditional sample). */
  label?: LabelInput;
  /** Sampling steps, respaced from the 1000 training steps. Default: the model's `sampling_defaults`, else 50. */
  steps?: number;
  /** "ddim", "ddpm" or "dpmpp2m". Default: the model's `sampling_defaults`, else "ddim". */
  sampler?: SamplerName;
  /** DDIM stochasticity, default 0. */
  eta?: number;
  /** Classifier-free guidance scale; 1 disables guidance. Default: the model's `sampling_defaults`, else 1. */
  cfgScale?: number;
  /** "standard" (all eps channels, default) or "reference" (official first-3-channels quirk). */
  cfgMode?: CfgMode;
  /** Seed of the noise stream (identical noise on every runtime); random when absent. */
  seed?: number;
  /** Caller-supplied initial noise x_T [N, C, H, W] instead of a seed. */
  initNoise?: HostTensor;
  /**
   * The SD-VAE decoder of a latent model (one whose in_channels are the VAE's latent channels): a loaded
   * VAEModel or where to load one from (loaded on the model's backend). With it, `images` holds pixels.
   */
  vae?: VAEModel | ModelSource;
  /** Activation memory the VAE decode may use, in bytes; above it the decode runs in tiles. Default: no limit. */
  vaeMemoryBudget?: number;
  /**
   * The backend that runs the model: "auto" (default), "webgpu", "wasm", "js", or a Backend from
   * createBackend() (threads, f16). With a loaded `model` it must name the model's own backend (else a
   * DicError "backend_mismatch": load the model on the backend you want).
   */
  backend?: BackendName | Backend;
  /**
   * When the model's GPU device is lost mid-run (webgpu), continue the remaining steps on the wasm
   * backend from the step in flight, nothing lost. Default: on when the backend was picked automatically.
   */
  fallbackOnDeviceLoss?: boolean;
  /** Called after every step. */
  onProgress?: (info: ProgressInfo) => void | Promise<void>;
  /** Cancels between steps. */
  signal?: AbortSignal;
}

/** One generated picture: RGBA pixels (ImageData-compatible) and a PNG encoder. */
export interface GeneratedImage extends RgbaImage {
  /** Class index (num_classes for the null class of an unconditional sample) and, when the model names its classes, the class name. */
  label: number;
  labelName: string | null;
  /** True for a sample of the null class (asked for with `label: null`). */
  unconditional: boolean;
  /** Encodes the image as PNG (generation settings in tEXt chunks). */
  toPNG(): Promise<Bytes>;
}

/** Result of `generate`: the final samples, the images, and how they were made. */
export interface GenerateResult {
  /** Final samples [N, C, S, S] in the model's data space. */
  latents: HostTensor;
  /** Pictures: a pixel-space model's samples, or a latent model's samples decoded by `vae` (empty without one). */
  images: GeneratedImage[];
  labels: number[];
  seed: number | null;
  sampler: SamplerName;
  steps: number;
  cfgScale: number;
  cfgMode: CfgMode;
  /** The backend description and why it was chosen. */
  backend: string;
  timings: { totalMs: number; modelMs: number; samplerMs: number; stepMs: number[]; decodeMs?: number };
  /** Set when the GPU device was lost and the run continued on another backend from step `step` (0-based). */
  deviceLost?: { step: number; message: string; continuedOn: string };
}

/**
 * Generates samples with a DiC model: seeded (or given) noise, `steps` sampler steps with optional
 * classifier-free guidance. Deterministic for a given seed on every runtime and backend (within the
 * backend's numeric tolerance).
 *
 * With no `model`, the embedded default model (Fashion-MNIST classes) is used.
 *
 * @example
 * import { generate } from "dic-sdk";
 * const { images } = await generate({ label: "sneaker", seed: 1 });
 * const png = await images[0].toPNG(); // Uint8Array, write it anywhere
 *
 * const r = await generate({ model: "dic-s.safetensors", labels: [207, 360], steps: 50, cfgScale: 1.5, seed: 1 });
 * console.log(r.latents.shape, r.timings.totalMs);
 *
 * // A latent model: the SD-VAE decoder turns its 4x32x32 latents into 256x256 pictures.
 * const { images: pics } = await generate({ model: "dic-s.safetensors", vae: "sd-vae-ft-ema.safetensors", label: 207, seed: 1 });
 */
/** The keys generate() knows; any other is refused (code "unknown_option"). */
export const GENERATE_OPTION_KEYS = [
  "model", "labels", "label", "steps", "sampler", "eta", "cfgScale", "cfgMode", "seed", "initNoise", "vae",
  "vaeMemoryBudget", "backend", "fallbackOnDeviceLoss", "onProgress", "signal",
] as const satisfies readonly (keyof GenerateOptions)[];

/** Checks the options that are not generation settings (types only; the settings validator does the rest). */
function checkOtherOptions(o: GenerateOptions): void {
  const bad = (field: string, what: string) => {
    throw new DicError("bad_type", `generate: ${field}: expected ${what}`, { field });
  };
  if (o.onProgress !== undefined && typeof o.onProgress !== "function") bad("onProgress", "a function");
  if (o.signal !== undefined && (typeof o.signal !== "object" || o.signal === null || typeof o.signal.aborted !== "boolean")) bad("signal", "an AbortSignal");
  if (o.fallbackOnDeviceLoss !== undefined && typeof o.fallbackOnDeviceLoss !== "boolean") bad("fallbackOnDeviceLoss", "a boolean");
  if (o.vaeMemoryBudget !== undefined && !(typeof o.vaeMemoryBudget === "number" && o.vaeMemoryBudget > 0)) bad("vaeMemoryBudget", "a number of bytes > 0");
  if (o.initNoise !== undefined && !(typeof o.initNoise === "object" && o.initNoise !== null && Array.isArray(o.initNoise.shape) && o.initNoise.data instanceof Float32Array)) {
    bad("initNoise", "a tensor { shape, data: Float32Array }");
  }
  if (o.backend !== undefined && typeof o.backend !== "string" && (typeof o.backend !== "object" || o.backend === null)) bad("backend", "a backend name or a Backend");
  if (o.seed !== undefined && o.initNoise !== undefined) {
    throw new DicError("conflicting_options", "generate: give seed or initNoise, not both", { field: "initNoise" });
  }
}

export async function generate(options: GenerateOptions = {}): Promise<GenerateResult> {
  if (typeof options !== "object" || options === null) throw new DicError("bad_type", "generate: options must be an object", { field: "options" });
  checkKnownKeys(options, GENERATE_OPTION_KEYS, "generate");
  const settings = validateSettings(options as Record<string, unknown>, { where: "generate" });
  checkOtherOptions(options);
  if (options.model instanceof DiCModel) {
    const model = options.model;
    const b = options.backend;
    if (b !== undefined && b !== "auto" && (typeof b === "object" ? b !== model.backend : b !== model.backend.name)) {
      const asked = typeof b === "object" ? `a ${b.name} Backend instance` : `"${b}"`;
      throw new DicError("backend_mismatch", `generate: backend ${asked} was given, but the model runs on ${model.backend.name}; ` +
        `load it there (loadModel(source, { backend })) or leave backend out`, { field: "backend" });
    }
    return generateOn(model, options, settings);
  }
  if (options.model === undefined) return generateOn(await loadDefaultModel(options.backend ?? "auto"), options, settings);
  // A model generate() loads itself is disposed when the run ends (its backend's threads stop).
  const own = await loadModel(options.model, { backend: options.backend });
  try {
    return await generateOn(own, options, settings);
  } finally {
    own.dispose();
  }
}

async function generateOn(model: DiCModel, options: GenerateOptions, settings: GenerationSettings): Promise<GenerateResult> {
  const cfg = model.config;
  let vae: VAEModel | null = null;
  if (options.vae !== undefined) {
    if (model.pixelRange !== null) throw new DicError("conflicting_options", `generate: ${model.source} is a pixel-space model (__metadata__.pixel_range); it takes no vae`, { field: "vae" });
    vae = options.vae instanceof VAEModel ? options.vae : await loadVAE(options.vae, { backend: model.backend });
    if (vae.config.latent_channels !== cfg.in_channels) {
      throw new Error(`generate: the VAE ${vae.source} decodes ${vae.config.latent_channels}-channel latents, but the model makes ${cfg.in_channels} channels`);
    }
  }
  const labels = resolveLabels(model, settings.labels, options.labels !== undefined ? "labels" : "label");
  const d = model.samplingDefaults;
  const cfgScale = settings.cfgScale ?? d.cfgScale ?? 1;
  if (cfgScale !== 1 && cfg.class_dropout_prob <= 0) {
    throw new DicError("no_null_class", "generate: cfgScale: this model has no null class (class_dropout_prob 0), so guidance (cfgScale != 1) is impossible", { field: "cfgScale" });
  }
  const cfgMode: CfgMode = settings.cfgMode ?? d.cfgMode ?? "standard";
  const steps = settings.steps ?? d.steps ?? 50;
  // A lost GPU device fails the forward of the step in flight; the sampler has not moved yet, so the
  // same forward reruns on the backend's deviceLossFallback (wasm) and the run goes on from there.
  const fallback = options.fallbackOnDeviceLoss ?? model.backendReason.includes("auto");
  let current = model;
  let step = 0;
  let deviceLost: GenerateResult["deviceLost"];
  const forward = async (x: HostTensor, t: number[], y: number[]): Promise<HostTensor> => {
    try {
      return await current.forward(x, t, y);
    } catch (e) {
      const to = current.backend.deviceLossFallback;
      if (!fallback || !(e as { deviceLost?: boolean }).deviceLost || !current.rebind || !to || deviceLost) throw e;
      const { backend } = await createBackend(to as BackendName); // a registry name (the contract cannot import the registry)
      current = current.rebind(backend, `${to} (the ${current.backend.name} device was lost at step ${step})`);
      deviceLost = { step, message: (e as Error).message, continuedOn: backend.description };
      return await current.forward(x, t, y);
    }
  };
  const r = await runSampler({
    model: forward,
    learnSigma: cfg.learn_sigma,
    numClasses: cfg.num_classes,
    labels,
    shape: [cfg.in_channels, cfg.input_size, cfg.input_size],
    steps,
    sampler: settings.sampler ?? d.sampler ?? "ddim",
    eta: settings.eta ?? 0,
    cfgScale,
    cfgMode,
    seed: settings.seed,
    initNoise: options.initNoise,
    onProgress: async (info) => {
      step = info.step + 1;
      await options.onProgress?.(info);
    },
    signal: options.signal,
  });
  const range = model.pixelRange;
  const names = model.classNames;
  const text = { sampler: r.sampler, steps: String(r.steps), cfg_scale: String(cfgScale), cfg_mode: cfgMode, seed: String(r.seed), model: model.source.split("/").pop() ?? "" };
  let pixels: HostTensor | null = range === null ? null : r.x;
  let decodeMs: number | undefined;
  if (vae) {
    const t0 = performance.now();
    pixels = (await vae.decode(r.x, { memoryBudgetBytes: options.vaeMemoryBudget })).image;
    decodeMs = performance.now() - t0;
  }
  const images: GeneratedImage[] = pixels === null ? [] : toRGBA(pixels, range ?? [-1, 1]).map((img, i) => ({
    ...img,
    label: labels[i],
    labelName: names?.[labels[i]] ?? null,
    unconditional: labels[i] === cfg.num_classes,
    toPNG: () => encodePNG(img, { text: { ...text, label: labels[i] === cfg.num_classes ? "unconditional" : names?.[labels[i]] ?? String(labels[i]), software: "dic-sdk" } }),
  }));
  return {
    latents: r.x,
    images,
    labels,
    seed: r.seed === null ? null : Number(r.seed),
    sampler: r.sampler,
    steps: r.steps,
    cfgScale,
    cfgMode,
    backend: `${current.backend.description} — ${current.backendReason}`,
    timings: decodeMs === undefined ? r.timings : { ...r.timings, decodeMs, totalMs: r.timings.totalMs + decodeMs },
    deviceLost,
  };
}

/**
 * The class indices of `asked` (null: the null class, num_classes). None asked: class 0 of a one-class
 * model, else a DicError "missing_label".
 */
function resolveLabels(model: DiCModel, asked: LabelInput[] | undefined, field: string): number[] {
  const n = model.config.num_classes;
  if (asked === undefined) {
    if (n === 1) return [0];
    const names = model.classNames;
    const example = names ? `"${names[0]}"` : "0";
    throw new DicError("missing_label", `generate: label: missing; give label (a class index or name, e.g. label: ${example}) or labels, ` +
      "or label: null for an unconditional sample", { field: "label" });
  }
  return asked.map((l, i) => {
    const where = asked.length > 1 || field === "labels" ? `${field}[${i}]` : field;
    if (l === null) {
      if (model.config.class_dropout_prob <= 0) {
        throw new DicError("no_null_class", `generate: ${where}: null asks for an unconditional sample, but this model has no null class (class_dropout_prob 0)`, { field: where });
      }
      return n;
    }
    try {
      return model.resolveLabel(l);
    } catch (e) {
      throw new DicError(typeof l === "number" ? "out_of_range" : "bad_value", `generate: ${(e as Error).message}`, { field: where });
    }
  });
}
