// One ancestral DDPM step x_t -> x_{t-1} (Ho et al. 2020) with the learned-range variance of
// Nichol & Dhariwal 2021; mirrors the official GaussianDiffusion.p_sample (clip_denoised=False).

import { coef, type StepInput } from "./schedule.ts";

// Symbols: abar_t = alphasCumprod[i], beta_t = betas[i] (of the respaced process),
// eps = model noise prediction, v = model variance interpolation value in [-1, 1].

/**
 * DDPM step at respaced index `index`; returns x_{t-1} [N, C, H, W] (f32). Learned sigma reads eps
 * from channels [0, C) and v from [C, 2C); otherwise eps only, with the fixed-large variance.
 * `noise` must be given for index > 0 and is ignored at index 0 (the last step adds no noise).
 */
export function ddpmStep(s: StepInput): Float32Array {
  const { diffusion: d, index: i, x, modelOut, batch, channels: C, spatial: HW, learnSigma } = s;
  const outC = learnSigma ? 2 * C : C;
  const addNoise = i > 0;
  if (addNoise && !s.noise) throw new Error(`ddpmStep: step ${i} needs noise`);
  // Coefficients as float32, read once per step (the official _extract_into_tensor).
  const recip = coef(d.sqrtRecipAlphasCumprod, i);
  const recipm1 = coef(d.sqrtRecipm1AlphasCumprod, i);
  const c1 = coef(d.posteriorMeanCoef1, i);
  const c2 = coef(d.posteriorMeanCoef2, i);
  const maxLog = coef(d.logBetas, i);
  const minLog = coef(d.posteriorLogVarianceClipped, i);
  const fixedStd = Math.exp(0.5 * coef(d.fixedLargeLogVariance, i));
  const out = new Float32Array(x.length);
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < C; c++) {
      const xo = (n * C + c) * HW;
      const eo = (n * outC + c) * HW;
      const vo = (n * outC + C + c) * HW;
      for (let p = 0; p < HW; p++) {
        const xt = x[xo + p];
        // 1. x0 from eps (Ho et al. eq. 15 solved for x0): x0 = sqrt(1/abar) x_t - sqrt(1/abar - 1) eps
        const x0 = recip * xt - recipm1 * modelOut[eo + p];
        // 2. posterior mean (Ho et al. eq. 7): mu = coef1 x0 + coef2 x_t
        const mean = c1 * x0 + c2 * xt;
        if (!addNoise) {
          out[xo + p] = mean;
          continue;
        }
        // 3. std: learned range (Nichol & Dhariwal eq. 15) log var = f log beta + (1 - f) log beta_tilde,
        //    f = (v + 1) / 2; or the fixed-large variance beta_t.
        let std = fixedStd;
        if (learnSigma) {
          const frac = (modelOut[vo + p] + 1) / 2;
          std = Math.exp(0.5 * (frac * maxLog + (1 - frac) * minLog));
        }
        // 4. x_{t-1} = mu + std z
        out[xo + p] = mean + std * s.noise![xo + p];
      }
    }
  }
  return out;
}
