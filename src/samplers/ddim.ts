// One DDIM step x_t -> x_{t-1} (Song et al. 2021, eq. 12 and 16); mirrors the official
// GaussianDiffusion.ddim_sample (clip_denoised=False), eps re-derived from the predicted x0.

import { coef, type StepInput } from "./schedule.ts";

// Symbols: abar = alphasCumprod[i], abar_prev = alphasCumprodPrev[i] (of the respaced process),
// eps = model noise prediction (channels [0, C); variance channels are ignored), eta in [0, 1].

/** DDIM sigma_t (Song et al. eq. 16) for step `index`, in float32 coefficients like the official. */
export function ddimSigma(s: Pick<StepInput, "diffusion" | "index">, eta: number): number {
  const ab = coef(s.diffusion.alphasCumprod, s.index);
  const abPrev = coef(s.diffusion.alphasCumprodPrev, s.index);
  return eta * Math.sqrt((1 - abPrev) / (1 - ab)) * Math.sqrt(1 - ab / abPrev);
}

/** Whether the DDIM step at `index` draws noise (eta > 0 and not the last step). */
export function ddimNeedsNoise(index: number, eta: number): boolean {
  return eta > 0 && index > 0;
}

/**
 * DDIM step at respaced index `index` with stochasticity `eta` (0 = deterministic); returns
 * x_{t-1} [N, C, H, W] (f32). `noise` is needed only when {@link ddimNeedsNoise}.
 */
export function ddimStep(s: StepInput, eta: number): Float32Array {
  const { diffusion: d, index: i, x, modelOut, batch, channels: C, spatial: HW, learnSigma } = s;
  const outC = learnSigma ? 2 * C : C;
  const addNoise = ddimNeedsNoise(i, eta);
  if (addNoise && !s.noise) throw new Error(`ddimStep: step ${i} with eta ${eta} needs noise`);
  const recip = coef(d.sqrtRecipAlphasCumprod, i);
  const recipm1 = coef(d.sqrtRecipm1AlphasCumprod, i);
  const abPrev = coef(d.alphasCumprodPrev, i);
  const sigma = ddimSigma(s, eta);
  const sqrtAbPrev = Math.sqrt(abPrev);
  // NOTE: 1 - abar_prev - sigma^2 >= 0 for eta in [0, 1]; the clamp only absorbs rounding at abar_prev = 1.
  const dirCoef = Math.sqrt(Math.max(0, 1 - abPrev - sigma * sigma));
  const out = new Float32Array(x.length);
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < C; c++) {
      const xo = (n * C + c) * HW;
      const eo = (n * outC + c) * HW;
      for (let p = 0; p < HW; p++) {
        const xt = x[xo + p];
        // 1. predicted x0 (Song et al. eq. 12, first term): x0 = sqrt(1/abar) x_t - sqrt(1/abar - 1) eps
        const x0 = recip * xt - recipm1 * modelOut[eo + p];
        // 2. eps re-derived from x0, as the official does: eps = (sqrt(1/abar) x_t - x0) / sqrt(1/abar - 1)
        const eps = (recip * xt - x0) / recipm1;
        // 3. eq. 12: x_{t-1} = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z
        let next = sqrtAbPrev * x0 + dirCoef * eps;
        if (addNoise) next += sigma * s.noise![xo + p];
        out[xo + p] = next;
      }
    }
  }
  return out;
}
