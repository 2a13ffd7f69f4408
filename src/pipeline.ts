// The sampling loop, the only one in the product (docs/ARCHITECTURE.md): noise, guidance, sampler
// steps and cut points. Mirrors the official p_sample_loop / ddim_sample_loop with forward_with_cfg.

import { GaussianRng, randomSeed, type RngState } from "./rng.ts";
import { type CfgMode, checkCfgMode, combineGuided, doubleBatch } from "./samplers/guidance.ts";
import { checkSamplerName, getSampler, type SamplerName } from "./samplers/index.ts";
import { createDiffusion } from "./samplers/schedule.ts";
import { checkNumberSetting } from "./settings.ts";
import { type HostTensor, hostTensor, numel, shapeStr } from "./tensor.ts";
import { yieldNow } from "./yield.ts";

/**
 * The denoiser: x [B, C, H, W], t = ORIGINAL timesteps (integers 0..999, one per row), y = labels
 * (num_classes = null label); returns [B, outC, H, W] with outC = C, or 2C when it learns sigma.
 * `step` (always passed by runSampler) is the 0-based loop step: the hook that lets the `unet` cut of
 * the streaming protocol run the decoder remotely, keyed by session and step (a retried step is the
 * same request).
 */
export type ModelFn = (x: HostTensor, t: number[], y: number[], step?: number) => Promise<HostTensor>;

/** Reported after each step. */
export interface ProgressInfo {
  /** 0-based index of the step just completed (display as step + 1 of totalSteps). */
  step: number;
  totalSteps: number;
  /** Original timestep the model saw in this step. */
  t: number;
  /** x after the step [N, C, H, W]; a fresh tensor each step, safe to keep. */
  x: HostTensor;
}

/**
 * Where a (partial) run stopped: pass `x` as `initNoise`, `nextStep` as `startStep`, `rngState` as
 * `rngState` and `samplerState` as `samplerState` (with the same other options) to finish the run, here
 * or elsewhere, bit-identically.
 */
export interface SamplerState {
  x: HostTensor;
  /** Index of the next step to run; equals totalSteps when the run is complete. */
  nextStep: number;
  /** Position of the noise stream, or null when this run used no generator. */
  rngState: RngState | null;
  /**
   * What the sampler carries from step nextStep - 1 to nextStep, serialised by the sampler itself
   * (multistep samplers, e.g. dpmpp2m's x0 prediction); opaque here. Null for single-step samplers
   * (ddpm, ddim) and once the run is complete.
   */
  samplerState: Uint8Array | null;
}

/** Options of {@link runSampler}. */
export interface RunSamplerOptions {
  model: ModelFn;
  /** Whether the model outputs 2C channels (eps, then variance interpolation values). */
  learnSigma: boolean;
  /** Number of classes; the label `numClasses` is the null (unconditional) label. */
  numClasses: number;
  /** One label per sample, each in [0, numClasses] (numClasses = unconditional). */
  labels: number[];
  /** Per-sample latent shape [C, H, W]. */
  shape: [number, number, number];
  /** Number of sampling steps (respaced from 1000). */
  steps: number;
  /** Respacing as the official `timestep_respacing` ("50", "ddim50", "10,15,20"); default String(steps). */
  respacing?: string | number[];
  /** "ddpm", "ddim" or "dpmpp2m" (DPM-Solver++(2M), deterministic), see SAMPLER_NAMES. */
  sampler: SamplerName | string;
  /** DDIM stochasticity in [0, 1]; default 0. Ignored by DDPM and dpmpp2m. */
  eta?: number;
  /** Guidance scale; 1 (default) = no guidance and no batch doubling. */
  cfgScale?: number;
  /** Default "standard" (all eps channels); "reference" is the official first-3-channels quirk. */
  cfgMode?: CfgMode | string;
  /** Seed of the noise stream; a random one (reported in the result) when needed and absent. */
  seed?: number | bigint;
  /** Caller-supplied x_T [N, C, H, W] (or, with startStep > 0, the x of a SamplerState). */
  initNoise?: HostTensor;
  /** Continue this noise stream (from SamplerState.rngState) instead of seeding a new one. */
  rngState?: RngState;
  /** Supplies the noise of step k instead of the generator (tests inject a reference's noise). */
  noiseFn?: (stepIndex: number, shape: number[]) => HostTensor;
  /** First step to run (0-based, default 0); > 0 resumes a SamplerState. */
  startStep?: number;
  /** Resuming a multistep sampler (dpmpp2m): SamplerState.samplerState of the run that stopped at startStep - 1. */
  samplerState?: Uint8Array | null;
  /**
   * Last step to run (inclusive, default steps - 1); the result's state resumes after it. startStep - 1
   * runs no step (the `remote` cut: the state at step 0, x_T drawn, for a host to run every step).
   */
  stopAfterStep?: number;
  onProgress?: (info: ProgressInfo) => void | Promise<void>;
  /**
   * Checked before each step and after each model call (the event loop runs between steps and between
   * the model's ops, so the signal can fire); an aborted run throws the signal's reason (an AbortError by default).
   */
  signal?: AbortSignal;
}

/** Wall-clock times in milliseconds. */
export interface SamplerTimings {
  totalMs: number;
  modelMs: number;
  samplerMs: number;
  /** Per executed step, model call included. */
  stepMs: number[];
}

/** What {@link runSampler} returns. */
export interface RunSamplerResult {
  /** Final (or, when cut, current) latent [N, C, H, W]. */
  x: HostTensor;
  /** The seed that was used (given or drawn), or null when no generator was seeded. */
  seed: number | bigint | null;
  sampler: SamplerName;
  steps: number;
  /** Original timesteps in the order they are visited (descending), for all steps. */
  timesteps: number[];
  timings: SamplerTimings;
  /** State to resume from; `state.nextStep === steps` when the run is complete. */
  state: SamplerState;
}

/** Throws the abort reason, or an AbortError when the signal gives none. */
function checkAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  throw signal.reason ?? new DOMException("sampling aborted", "AbortError");
}

/** Checks a tensor's shape, naming it and the expected shape in the error. */
function checkShape(t: HostTensor, expected: number[], what: string): void {
  if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`${what}: expected shape ${shapeStr(expected)}, got ${shapeStr(t.shape)}`);
  }
  if (t.data.length !== numel(expected)) throw new Error(`${what}: ${t.data.length} values for shape ${shapeStr(expected)}`);
}

/**
 * Runs the sampler loop: x_T, then for steps k = startStep..stopAfterStep the model at original
 * timestep timesteps[k] (with batch doubling when cfgScale != 1) and one sampler step.
 *
 * Noise order (the contract that makes a seed reproducible everywhere): one GaussianRng stream;
 * x_T is drawn first (N*C*H*W values, NCHW order) unless `initNoise` is given, then each step that
 * adds noise draws N*C*H*W values, in step order. Steps that add no noise (the last step, DDIM
 * with eta 0, every dpmpp2m step) draw nothing. Guidance never draws noise for the unconditional half.
 *
 * @example
 * const { x } = await runSampler({ model, learnSigma: true, numClasses: 1000, labels: [207],
 *   shape: [4, 32, 32], steps: 50, sampler: "ddim", cfgScale: 4, seed: 0 });
 */
export async function runSampler(opts: RunSamplerOptions): Promise<RunSamplerResult> {
  const t0 = performance.now();
  const run = planRun(opts);
  const { rng, seed } = noiseSource(opts, run);
  let x = initialX(opts, run, rng);
  const timings: SamplerTimings = { totalMs: 0, modelMs: 0, samplerMs: 0, stepMs: [] };
  for (let k = run.start; k <= run.stop; k++) {
    // The event loop runs between steps (timers, I/O, an AbortSignal firing), whatever the backend.
    await yieldNow();
    checkAborted(opts.signal);
    x = await runStep(opts, run, x, k, rng, timings);
  }
  timings.totalMs = performance.now() - t0;
  const { sampler, steps, stop } = run;
  const samplerState = stop + 1 < steps ? sampler.saveState() : null;
  return {
    x,
    seed,
    sampler: sampler.name,
    steps,
    timesteps: run.timesteps,
    timings,
    state: { x, nextStep: stop + 1, rngState: rng ? rng.state() : null, samplerState },
  };
}

/** What a run is, from its checked options: the sampler, the schedule, the shapes and the steps it covers. */
interface RunPlan {
  sampler: ReturnType<typeof getSampler>;
  cfgMode: CfgMode;
  cfgScale: number;
  guided: boolean;
  steps: number;
  diffusion: ReturnType<typeof createDiffusion>;
  /** Original timesteps in visiting order (descending). */
  timesteps: number[];
  labels: RunSamplerOptions["labels"];
  numClasses: number;
  learnSigma: boolean;
  C: number;
  H: number;
  W: number;
  N: number;
  xShape: number[];
  /** Channels of the model output: C, or 2C with a learned sigma. */
  outC: number;
  start: number;
  stop: number;
}

/** Checks the options (each error names the setting) and plans the run. */
function planRun(opts: RunSamplerOptions): RunPlan {
  const sampler = getSampler(checkSamplerName(opts.sampler), opts.eta ?? 0);
  const cfgMode = checkCfgMode(opts.cfgMode ?? "standard");
  const cfgScale = checkNumberSetting("cfgScale", opts.cfgScale ?? 1);
  const { labels, numClasses, learnSigma } = opts;
  const steps = checkNumberSetting("steps", opts.steps);
  const diffusion = createDiffusion(opts.respacing ?? String(steps));
  if (diffusion.numTimesteps !== steps) {
    throw new RangeError(`respacing ${JSON.stringify(opts.respacing)} gives ${diffusion.numTimesteps} steps, but steps is ${steps}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`numClasses must be a positive integer, got ${numClasses}`);
  if (labels.length < 1) throw new RangeError("labels: need at least one label (one per sample)");
  labels.forEach((y, i) => {
    if (!Number.isInteger(y) || y < 0 || y > numClasses) {
      throw new RangeError(`labels[${i}] = ${y} is outside [0, ${numClasses}] (${numClasses} = unconditional)`);
    }
  });
  const [C, H, W] = opts.shape;
  const N = labels.length;
  const start = opts.startStep ?? 0;
  const stop = opts.stopAfterStep ?? steps - 1;
  if (!Number.isInteger(start) || start < 0 || start >= steps) throw new RangeError(`startStep must be an integer in [0, ${steps - 1}], got ${start}`);
  // stop = start - 1 runs no step: the state at startStep (from step 0: x_T and the generator after it).
  if (!Number.isInteger(stop) || stop < start - 1 || stop >= steps) throw new RangeError(`stopAfterStep must be an integer in [${start - 1}, ${steps - 1}], got ${stop}`);
  return {
    sampler, cfgMode, cfgScale, guided: cfgScale !== 1, steps, diffusion, timesteps: [...diffusion.timestepMap].reverse(),
    labels, numClasses, learnSigma, C, H, W, N, xShape: [N, C, H, W], outC: learnSigma ? 2 * C : C, start, stop,
  };
}

/**
 * The noise generator (needed for x_T without initNoise, or for step noise without noiseFn) and the seed,
 * after checking that a resumed run brings what it needs (initNoise, rngState, the sampler's saved state).
 */
function noiseSource(opts: RunSamplerOptions, run: RunPlan): { rng: GaussianRng | null; seed: number | bigint | null } {
  const { sampler, steps, start, stop } = run;
  let needsStepNoise = false;
  for (let k = start; k <= stop; k++) needsStepNoise ||= sampler.needsNoise(steps - 1 - k);
  const needsRng = !opts.initNoise || (needsStepNoise && !opts.noiseFn);
  if (start > 0 && !opts.initNoise) throw new Error(`startStep ${start}: resuming needs initNoise (the x of the SamplerState)`);
  if (start > 0 && needsRng && !opts.rngState) throw new Error(`startStep ${start}: resuming a run that draws noise needs rngState`);
  if (opts.samplerState) {
    sampler.loadState(opts.samplerState, steps - 1 - start, numel(run.xShape));
  } else if (start > 0 && sampler.needsState(steps - 1 - start, steps)) {
    throw new Error(`startStep ${start}: resuming a ${sampler.name} run at this step needs samplerState (SamplerState.samplerState of the run that stopped after step ${start - 1})`);
  }
  if (opts.rngState) return { rng: GaussianRng.fromState(opts.rngState), seed: opts.seed ?? null };
  if (needsRng || opts.seed !== undefined) {
    const seed = opts.seed ?? randomSeed();
    return { rng: new GaussianRng(seed), seed };
  }
  return { rng: null, seed: null };
}

/** x at startStep: a copy of initNoise, else x_T drawn from the generator. */
function initialX(opts: RunSamplerOptions, run: RunPlan, rng: GaussianRng | null): HostTensor {
  if (!opts.initNoise) return rng!.normal(run.xShape);
  checkShape(opts.initNoise, run.xShape, "initNoise");
  return hostTensor(run.xShape, Float32Array.from(opts.initNoise.data), "x");
}

/** Loop step k: the model (guided: on the doubled batch), then one sampler step; returns the next x. */
async function runStep(opts: RunSamplerOptions, run: RunPlan, x: HostTensor, k: number, rng: GaussianRng | null, timings: SamplerTimings): Promise<HostTensor> {
  const { sampler, steps, diffusion, guided, labels, numClasses, C, H, W, N, xShape, learnSigma } = run;
  const ts = performance.now();
  const i = steps - 1 - k;
  const t = diffusion.timestepMap[i];
  const input = guided ? doubleBatch(x, labels, numClasses) : { x, y: labels };
  const rows = input.x.shape[0];
  const raw = await opts.model(input.x, new Array<number>(rows).fill(t), input.y, k);
  const tm = performance.now();
  timings.modelMs += tm - ts;
  checkAborted(opts.signal);
  checkShape(raw, [rows, run.outC, H, W], `model output at step ${k} (t=${t}, learnSigma=${learnSigma})`);
  const out = guided ? combineGuided(raw, C, run.cfgScale, run.cfgMode) : raw;
  const noise = sampler.needsNoise(i) ? stepNoise(opts, k, xShape, rng) : null;
  const next = sampler.step({
    diffusion, index: i, x: x.data, modelOut: out.data, batch: N, channels: C, spatial: H * W, learnSigma, noise,
  });
  const xNext = hostTensor(xShape, next, "x");
  const te = performance.now();
  timings.samplerMs += te - tm;
  timings.stepMs.push(te - ts);
  await opts.onProgress?.({ step: k, totalSteps: steps, t, x: xNext });
  return xNext;
}

/** The noise step k adds: from noiseFn when given (checked), else the next values of the generator. */
function stepNoise(opts: RunSamplerOptions, k: number, xShape: number[], rng: GaussianRng | null): Float32Array {
  if (!opts.noiseFn) return rng!.fill(new Float32Array(numel(xShape)));
  const z = opts.noiseFn(k, [...xShape]);
  checkShape(z, xShape, `noiseFn(${k})`);
  return z.data;
}
