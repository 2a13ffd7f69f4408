// Samplers: names, the per-step functions and what each needs (noise), behind one small interface.
// The loop that drives them lives in src/pipeline.ts.

import { ddimNeedsNoise, ddimStep } from "./ddim.ts";
import { ddpmStep } from "./ddpm.ts";
import type { StepInput } from "./schedule.ts";

export { ddimNeedsNoise, ddimSigma, ddimStep } from "./ddim.ts";
export { ddpmStep } from "./ddpm.ts";
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
export const SAMPLER_NAMES = ["ddpm", "ddim"] as const;

/** A sampler name, see {@link SAMPLER_NAMES}. */
export type SamplerName = (typeof SAMPLER_NAMES)[number];

/** Checks a sampler name, with an error listing the valid ones. */
export function checkSamplerName(name: string): SamplerName {
  if ((SAMPLER_NAMES as readonly string[]).includes(name)) return name as SamplerName;
  throw new Error(`unknown sampler "${name}"; valid samplers: ${SAMPLER_NAMES.join(", ")}`);
}

/** A sampler as the pipeline drives it: whether step `index` draws noise, and the step itself. */
export interface Sampler {
  name: SamplerName;
  needsNoise(index: number): boolean;
  step(input: StepInput): Float32Array;
}

/** The sampler called `name` (`eta` is DDIM's stochasticity, 0 = deterministic; ignored by DDPM). */
export function getSampler(name: string, eta = 0): Sampler {
  const checked = checkSamplerName(name);
  if (!(eta >= 0 && eta <= 1)) throw new RangeError(`eta must be in [0, 1], got ${eta}`);
  if (checked === "ddpm") return { name: checked, needsNoise: (i) => i > 0, step: ddpmStep };
  return { name: checked, needsNoise: (i) => ddimNeedsNoise(i, eta), step: (s) => ddimStep(s, eta) };
}
