// Noise schedule, timestep respacing and the respaced diffusion's per-step coefficients.
// Mirrors the official diffusion/gaussian_diffusion.py (get_named_beta_schedule("linear"),
// GaussianDiffusion.__init__) and diffusion/respace.py (space_timesteps, SpacedDiffusion), in float64.

/** Number of diffusion steps the DiC models are trained with. */
export const TRAIN_TIMESTEPS = 1000;

/** numpy.linspace(start, stop, num) in float64, element for element (i * step + start, last = stop). */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  if (num === 1) {
    out[0] = start;
    return out;
  }
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  out[num - 1] = stop;
  return out;
}

/**
 * The "linear" beta schedule of Ho et al. extended to any step count: betas linearly spaced from
 * scale*1e-4 to scale*0.02 with scale = 1000 / numTimesteps (float64, like numpy).
 */
export function linearBetas(numTimesteps: number = TRAIN_TIMESTEPS): Float64Array {
  if (!Number.isInteger(numTimesteps) || numTimesteps < 1) {
    throw new RangeError(`linearBetas: numTimesteps must be a positive integer, got ${numTimesteps}`);
  }
  const scale = 1000 / numTimesteps;
  return linspace(scale * 0.0001, scale * 0.02, numTimesteps);
}

/**
 * The original timesteps to keep, sorted ascending, exactly as the official `space_timesteps`:
 * `sectionCounts` is a list (or comma-separated string) of step counts, one per equal section of
 * the original process, each section strided by a fractional stride and rounded (Python's
 * round-half-to-even); "ddimN" instead picks the first integer stride giving exactly N steps.
 */
export function spaceTimesteps(numTimesteps: number, sectionCounts: string | number[]): number[] {
  let counts: number[];
  if (typeof sectionCounts === "string") {
    if (sectionCounts.startsWith("ddim")) {
      const desired = parseIntStrict(sectionCounts.slice(4), sectionCounts);
      for (let stride = 1; stride < numTimesteps; stride++) {
        if (Math.ceil(numTimesteps / stride) === desired) {
          const steps: number[] = [];
          for (let t = 0; t < numTimesteps; t += stride) steps.push(t);
          return steps;
        }
      }
      throw new RangeError(`spaceTimesteps: cannot create exactly ${desired} steps out of ${numTimesteps} with an integer stride`);
    }
    counts = sectionCounts.split(",").map((s) => parseIntStrict(s, sectionCounts));
  } else {
    counts = sectionCounts;
  }
  if (counts.length === 0) throw new RangeError("spaceTimesteps: sectionCounts is empty");
  const sizePer = Math.floor(numTimesteps / counts.length);
  const extra = numTimesteps % counts.length;
  const all = new Set<number>();
  let startIdx = 0;
  counts.forEach((count, i) => {
    if (!Number.isInteger(count)) throw new RangeError(`spaceTimesteps: section count ${count} is not an integer`);
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count) throw new RangeError(`spaceTimesteps: cannot divide section of ${size} steps into ${count}`);
    const fracStride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let k = 0; k < count; k++) {
      all.add(startIdx + roundHalfEven(cur));
      cur += fracStride;
    }
    startIdx += size;
  });
  return [...all].sort((a, b) => a - b);
}

/** Python 3 round(): nearest integer, ties to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Python int() of a decimal string (surrounding spaces allowed), with an error naming the spec. */
function parseIntStrict(s: string, whole: string): number {
  const t = s.trim();
  if (!/^[+-]?\d+$/.test(t)) throw new RangeError(`spaceTimesteps: cannot parse "${s}" in "${whole}" as an integer`);
  return Number.parseInt(t, 10);
}

/**
 * A (respaced) Gaussian diffusion: every coefficient the official GaussianDiffusion precomputes,
 * in float64, indexed by the respaced step i (0 = least noisy). `timestepMap[i]` is the original
 * timestep the model sees at step i.
 */
export interface Diffusion {
  /** Number of respaced steps S. */
  numTimesteps: number;
  /** Steps of the process it was respaced from (1000). */
  originalNumSteps: number;
  /** Original timestep of each respaced step, ascending. */
  timestepMap: number[];
  betas: Float64Array;
  logBetas: Float64Array;
  alphasCumprod: Float64Array;
  alphasCumprodPrev: Float64Array;
  alphasCumprodNext: Float64Array;
  sqrtAlphasCumprod: Float64Array;
  sqrtOneMinusAlphasCumprod: Float64Array;
  logOneMinusAlphasCumprod: Float64Array;
  sqrtRecipAlphasCumprod: Float64Array;
  sqrtRecipm1AlphasCumprod: Float64Array;
  posteriorVariance: Float64Array;
  /** log posterior variance with entry 0 replaced by entry 1 (the variance is 0 at step 0). */
  posteriorLogVarianceClipped: Float64Array;
  posteriorMeanCoef1: Float64Array;
  posteriorMeanCoef2: Float64Array;
  /** FIXED_LARGE variance: betas with entry 0 replaced by posteriorVariance[1]; and its log. */
  fixedLargeVariance: Float64Array;
  fixedLargeLogVariance: Float64Array;
}

/** Applies f to each element, into a new Float64Array. */
function map(a: Float64Array, f: (v: number, i: number) => number): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f(a[i], i);
  return out;
}

/** GaussianDiffusion.__init__: the coefficients of a process with the given betas (float64). */
export function makeDiffusion(betas: Float64Array, timestepMap?: number[], originalNumSteps?: number): Diffusion {
  const n = betas.length;
  if (n < 1) throw new RangeError("makeDiffusion: needs at least one beta");
  betas.forEach((b, i) => {
    if (!(b > 0 && b <= 1)) throw new RangeError(`makeDiffusion: betas[${i}] = ${b} is outside (0, 1]`);
  });
  const alphasCumprod = new Float64Array(n);
  let acc = 1;
  for (let i = 0; i < n; i++) alphasCumprod[i] = acc = acc * (1 - betas[i]);
  const alphasCumprodPrev = map(alphasCumprod, (_, i) => (i === 0 ? 1 : alphasCumprod[i - 1]));
  const alphasCumprodNext = map(alphasCumprod, (_, i) => (i === n - 1 ? 0 : alphasCumprod[i + 1]));
  const posteriorVariance = map(betas, (b, i) => (b * (1 - alphasCumprodPrev[i])) / (1 - alphasCumprod[i]));
  // NOTE: with a single step the official array is empty; entry 0 is only read at step 0, where no
  // noise is added, so -Infinity (log 0) is never used.
  const posteriorLogVarianceClipped = map(posteriorVariance, (v, i) => Math.log(i === 0 && n > 1 ? posteriorVariance[1] : v));
  const fixedLargeVariance = map(betas, (b, i) => (i === 0 && n > 1 ? posteriorVariance[1] : b));
  return {
    numTimesteps: n,
    originalNumSteps: originalNumSteps ?? n,
    timestepMap: timestepMap ?? Array.from({ length: n }, (_, i) => i),
    betas,
    logBetas: map(betas, Math.log),
    alphasCumprod,
    alphasCumprodPrev,
    alphasCumprodNext,
    sqrtAlphasCumprod: map(alphasCumprod, Math.sqrt),
    sqrtOneMinusAlphasCumprod: map(alphasCumprod, (a) => Math.sqrt(1 - a)),
    logOneMinusAlphasCumprod: map(alphasCumprod, (a) => Math.log(1 - a)),
    sqrtRecipAlphasCumprod: map(alphasCumprod, (a) => Math.sqrt(1 / a)),
    sqrtRecipm1AlphasCumprod: map(alphasCumprod, (a) => Math.sqrt(1 / a - 1)),
    posteriorVariance,
    posteriorLogVarianceClipped,
    posteriorMeanCoef1: map(betas, (b, i) => (b * Math.sqrt(alphasCumprodPrev[i])) / (1 - alphasCumprod[i])),
    posteriorMeanCoef2: map(betas, (b, i) => ((1 - alphasCumprodPrev[i]) * Math.sqrt(1 - b)) / (1 - alphasCumprod[i])),
    fixedLargeVariance,
    fixedLargeLogVariance: map(fixedLargeVariance, Math.log),
  };
}

/**
 * SpacedDiffusion: the diffusion restricted to the kept original timesteps `useTimesteps`, with
 * new betas 1 - abar[t_k] / abar[t_{k-1}] so that alphas_cumprod at the kept steps is unchanged.
 */
export function spacedDiffusion(useTimesteps: Iterable<number>, baseBetas: Float64Array = linearBetas()): Diffusion {
  const keep = new Set(useTimesteps);
  const base = makeDiffusion(baseBetas);
  const newBetas: number[] = [];
  const timestepMap: number[] = [];
  let last = 1;
  base.alphasCumprod.forEach((ac, i) => {
    if (keep.has(i)) {
      newBetas.push(1 - ac / last);
      last = ac;
      timestepMap.push(i);
    }
  });
  if (timestepMap.length !== keep.size) {
    const bad = [...keep].filter((t) => !(Number.isInteger(t) && t >= 0 && t < baseBetas.length));
    throw new RangeError(`spacedDiffusion: timesteps ${bad.join(", ")} are outside [0, ${baseBetas.length})`);
  }
  return makeDiffusion(Float64Array.from(newBetas), timestepMap, baseBetas.length);
}

/**
 * The diffusion the official `create_diffusion(respacing)` builds for sampling: linear betas over
 * 1000 steps respaced by `respacing` (e.g. "50", "ddim50", "10,15,20" or [10, 15, 20]).
 */
export function createDiffusion(respacing: string | number[], numTimesteps: number = TRAIN_TIMESTEPS): Diffusion {
  return spacedDiffusion(spaceTimesteps(numTimesteps, respacing), linearBetas(numTimesteps));
}

/**
 * `_extract_into_tensor`: the official casts each float64 coefficient to float32 when it reads it
 * for a step; this returns that float32 value (as a JS number).
 */
export function coef(arr: Float64Array, i: number): number {
  return Math.fround(arr[i]);
}

/** What every sampler step receives. Layouts are NCHW, row-major. */
export interface StepInput {
  diffusion: Diffusion;
  /** Respaced step index i (the loop runs i = S-1 down to 0). */
  index: number;
  /** x_t [N, C, H, W]. */
  x: Float32Array;
  /** Model output for the N samples [N, outC, H, W]: eps in channels [0, C), then v in [C, 2C) if learnSigma. */
  modelOut: Float32Array;
  batch: number;
  channels: number;
  /** H * W. */
  spatial: number;
  learnSigma: boolean;
  /** Standard normal noise [N, C, H, W] for this step, or null when the step draws none. */
  noise: Float32Array | null;
}
