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
 * multistep samplers what one step leaves to the next, which the sampler serialises itself (so that a
 * cut run resumes exactly; the pipeline and the wire carry the bytes as they are).
 * NOTE: a multistep sampler keeps state; get one sampler per run.
 */
export interface Sampler {
  name: SamplerName;
  needsNoise(index: number): boolean;
  step(input: StepInput): Float32Array;
  /** Whether step `index` of an S-step schedule reads what the step at index + 1 left (saved state). */
  needsState(index: number, numSteps: number): boolean;
  /** What the last step left for the next one, serialised; null for single-step samplers and before the first step. */
  saveState(): Uint8Array | null;
  /**
   * Restores saved state before the step at schedule index `index`, for samples of `elements` values; throws
   * (naming what is wrong) when the bytes are not such a state: single-step samplers carry none.
   */
  loadState(bytes: Uint8Array, index: number, elements: number): void;
}

/** A sampler that carries nothing from one step to the next. */
function singleStep(name: SamplerName, needsNoise: (i: number) => boolean, step: (s: StepInput) => Float32Array): Sampler {
  return {
    name, needsNoise, step,
    needsState: () => false,
    saveState: () => null,
    loadState: () => {
      throw new Error(`sampler "${name}" carries no state between steps; got some (is the state from another sampler's run?)`);
    },
  };
}

/**
 * dpmpp2m's saved state: the schedule index of the step that made the x0 prediction (u32, little-endian),
 * then the prediction, f32 little-endian [N, C, H, W] (docs/protocol.md section 5.4).
 */
function saveX0(h: X0History | null): Uint8Array | null {
  if (!h) return null;
  const out = new Uint8Array(4 + 4 * h.x0.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, h.index, true);
  for (let i = 0; i < h.x0.length; i++) dv.setFloat32(4 + 4 * i, h.x0[i], true);
  return out;
}

function loadX0(bytes: Uint8Array, index: number, elements: number): X0History {
  if (bytes.length !== 4 + 4 * elements) throw new Error(`dpmpp2m state: ${bytes.length} bytes; expected ${4 + 4 * elements} (index and ${elements} f32 values)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const got = dv.getUint32(0, true);
  if (got !== index + 1) throw new Error(`dpmpp2m state: holds the x0 prediction of schedule index ${got}, but the step at index ${index} needs index ${index + 1}`);
  const x0 = new Float32Array(elements);
  for (let i = 0; i < elements; i++) {
    x0[i] = dv.getFloat32(4 + 4 * i, true);
    if (!Number.isFinite(x0[i])) throw new Error(`dpmpp2m state: value ${i} is not finite`);
  }
  return { index: got, x0 };
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
    needsState: dpmpp2mIsSecondOrder,
    saveState: () => saveX0(solver.history),
    loadState: (bytes, index, elements) => void (solver.history = loadX0(bytes, index, elements)),
  };
}
