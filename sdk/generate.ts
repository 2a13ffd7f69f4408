// generate(): the sampling loop of src/pipeline.ts driven from a loaded model, with labels by
// index, seeds, guidance, progress and cancellation.
import { runSampler, type ProgressInfo } from "../src/pipeline.ts";
import type { CfgMode } from "../src/samplers/guidance.ts";
import type { SamplerName } from "../src/samplers/index.ts";
import type { HostTensor } from "../src/tensor.ts";
import { DiCModel, loadModel, type ModelSource } from "./model.ts";

/** Options of `generate`. */
export interface GenerateOptions {
  /** A loaded model, or where to load one from (path, URL, bytes, Response). */
  model: DiCModel | ModelSource;
  /** Class index per image (or a single index). */
  labels?: number[] | number;
  /** Sampling steps, respaced from the 1000 training steps. Default 50. */
  steps?: number;
  /** "ddim" (default) or "ddpm". */
  sampler?: SamplerName;
  /** DDIM stochasticity, default 0. */
  eta?: number;
  /** Classifier-free guidance scale; 1 disables guidance. Default 1. */
  cfgScale?: number;
  /** "standard" (all eps channels, default) or "reference" (official first-3-channels quirk). */
  cfgMode?: CfgMode;
  /** Seed of the noise stream (identical noise on every runtime); random when absent. */
  seed?: number;
  /** Caller-supplied initial noise x_T [N, C, H, W] instead of a seed. */
  initNoise?: HostTensor;
  /** Backend when `model` is a source: "auto" (default) or "js". */
  backend?: string;
  /** Called after every step. */
  onProgress?: (info: ProgressInfo) => void | Promise<void>;
  /** Cancels between steps. */
  signal?: AbortSignal;
}

/** Result of `generate`: the final latents and how they were made. */
export interface GenerateResult {
  /** Final samples [N, C, S, S] in the model's data space. */
  latents: HostTensor;
  labels: number[];
  seed: number | null;
  sampler: SamplerName;
  steps: number;
  cfgScale: number;
  cfgMode: CfgMode;
  /** The backend description and why it was chosen. */
  backend: string;
  timings: { totalMs: number; modelMs: number; samplerMs: number; stepMs: number[] };
}

/**
 * Generates samples with a DiC model: seeded (or given) noise, `steps` sampler steps with optional
 * classifier-free guidance. Deterministic for a given seed on every runtime and backend (within the
 * backend's numeric tolerance).
 *
 * @example
 * import { generate } from "dic-sdk";
 * const r = await generate({ model: "dic-s.safetensors", labels: [207, 360], steps: 50, cfgScale: 1.5, seed: 1 });
 * console.log(r.latents.shape, r.timings.totalMs);
 */
export async function generate(options: GenerateOptions): Promise<GenerateResult> {
  const model = options.model instanceof DiCModel ? options.model : await loadModel(options.model, { backend: options.backend });
  const cfg = model.config;
  const labels = options.labels === undefined ? [0] : Array.isArray(options.labels) ? options.labels : [options.labels];
  if (labels.length === 0) throw new Error("generate: labels is empty");
  for (const l of labels) {
    if (!Number.isInteger(l) || l < 0 || l >= cfg.num_classes) {
      throw new Error(`generate: label ${l} outside 0..${cfg.num_classes - 1}`);
    }
  }
  const cfgScale = options.cfgScale ?? 1;
  if (!(Number.isFinite(cfgScale) && cfgScale >= 0)) throw new Error(`generate: cfgScale must be a number >= 0, got ${cfgScale}`);
  if (cfgScale !== 1 && cfg.class_dropout_prob <= 0) {
    throw new Error("generate: this model has no null class (class_dropout_prob 0), so guidance (cfgScale != 1) is impossible");
  }
  const cfgMode: CfgMode = options.cfgMode ?? "standard";
  const steps = options.steps ?? 50;
  const r = await runSampler({
    model: (x, t, y) => model.forward(x, t, y),
    learnSigma: cfg.learn_sigma,
    numClasses: cfg.num_classes,
    labels,
    shape: [cfg.in_channels, cfg.input_size, cfg.input_size],
    steps,
    sampler: options.sampler ?? "ddim",
    eta: options.eta ?? 0,
    cfgScale,
    cfgMode,
    seed: options.seed,
    initNoise: options.initNoise,
    onProgress: options.onProgress,
    signal: options.signal,
  });
  return {
    latents: r.x,
    labels,
    seed: r.seed === null ? null : Number(r.seed),
    sampler: r.sampler,
    steps: r.steps,
    cfgScale,
    cfgMode,
    backend: `${model.backend.description} — ${model.backendReason}`,
    timings: r.timings,
  };
}
