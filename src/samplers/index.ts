// Samplers: names, the per-step functions and what each needs (noise), behind one small interface.
// The loop that drives them lives in src/pipeline.ts.

import { ddimNeedsNoise, ddimStep } from "./ddim.ts";
import { ddpmStep } from "./ddpm.ts";
import { DpmSolverPP2M, dpmpp2mIsSecondOrder, type X0History } from "./dpm-solver.ts";
import type { StepInput } from "./schedule.ts";

export { ddimNeedsNoise, ddimSigma, ddimStep } from "./ddim.ts";
export { ddpmStep } from "./ddpm.ts";
export { type DpmSolverCoefs, DpmSolverPP2M, dpmpp2mCoefs, dpmpp2mIsSecondOrder, type X0History } from "./dpm-solver.ts";
export { CFG_MODES, type CfgMode, checkCfgMode, combineGuided, doubleBatch } from "./guidance.ts";
export {
  coef,
  createDiffusion,
  type Diffusion,
  linearBetas,
  linspace,
  makeDiffusion,
  spaceTimesteps,
  spacedDiffusion,
  type StepInput,
  TRAIN_TIMESTEPS,
} from "./schedule.ts";

/** Names of the available samplers. */
export const SAMPLER_NAMES = ["ddpm", "ddim", "dpmpp2m"] as const;

/** A sampler name, see {@link SAMPLER_NAMES}. */
export type SamplerName = (typeof SAMPLER_NAMES)[number];

/** Checks a sampler name, with an error listing the valid ones. */
export function checkSamplerName(name: string): SamplerName {
  if ((SAMPLER_NAMES as readonly string[]).includes(name)) return name as SamplerName;
  throw new Error(`unknown sampler "${name}"; valid samplers: ${SAMPLER_NAMES.join(", ")}`);
}

/**
 * A sampler as the pipeline drives it: whether step `index` draws noise, the step itself, and for
 * multistep samplers the history one step leaves to the next (so that a cut run resumes exactly).
 * NOTE: a multistep sampler keeps state; get one sampler per run.
 */
export interface Sampler {
  name: SamplerName;
  needsNoise(index: number): boolean;
  step(input: StepInput): Float32Array;
  /** Whether step `index` of an S-step schedule reads the history left by step index + 1. */
  needsHistory(index: number, numSteps: number): boolean;
  /** What the last step left for the next one; null for single-step samplers and before the first step. */
  getHistory(): X0History | null;
  /** Restores the history of a cut run (throws for single-step samplers, which have none). */
  setHistory(h: X0History): void;
}

/** A sampler that carries nothing from one step to the next. */
function singleStep(name: SamplerName, needsNoise: (i: number) => boolean, step: (s: StepInput) => Float32Array): Sampler {
  return {
    name, needsNoise, step,
    needsHistory: () => false,
    getHistory: () => null,
    setHistory: () => {
      throw new Error(`sampler "${name}" carries no history between steps; got one (is the state from another sampler's run?)`);
    },
  };
}

/**
 * The sampler called `name`, fresh for one run (`eta` is DDIM's stochasticity, 0 = deterministic;
 * DDPM and the deterministic dpmpp2m ignore it).
 */
export function getSampler(name: string, eta = 0): Sampler {
  const checked = checkSamplerName(name);
  if (!(eta >= 0 && eta <= 1)) throw new RangeError(`eta must be in [0, 1], got ${eta}`);
  if (checked === "ddpm") return singleStep(checked, (i) => i > 0, ddpmStep);
  if (checked === "ddim") return singleStep(checked, (i) => ddimNeedsNoise(i, eta), (s) => ddimStep(s, eta));
  const solver = new DpmSolverPP2M();
  return {
    name: checked,
    needsNoise: () => false,
    step: (s) => solver.step(s),
    needsHistory: dpmpp2mIsSecondOrder,
    getHistory: () => solver.history,
    setHistory: (h) => void (solver.history = { index: h.index, x0: Float32Array.from(h.x0) }),
  };
}
