// One DPM-Solver++(2M) step (Lu et al. 2022, "DPM-Solver++", arXiv 2211.01095, Algorithm 2): multistep
// second-order solver of the diffusion ODE in data prediction x0 and log-SNR time lambda = log(alpha / sigma).
// Mirrors reference/diffusion_ref.py dpmpp2m_step; deterministic, eps channels only (variance ignored).

import { coef, type Diffusion, type StepInput } from "./schedule.ts";

// Symbols. The step at respaced index i goes from abar = alphasCumprod[i] to abar_next = alphasCumprodPrev[i]
// (the same respaced discrete schedule as DDIM; Algorithm 2 names them t_{i-1} and t_i):
//   alpha = sqrt(abar), sigma = sqrt(1 - abar)            alpha_{t_{i-1}}, sigma_{t_{i-1}}
//   alpha_next, sigma_next, from abar_next                alpha_{t_i}, sigma_{t_i}
//   lambda(abar) = log(alpha / sigma) = log(abar / (1 - abar)) / 2
//   h = lambda(abar_next) - lambda(abar)                  h_i
//   h_prev = lambda(abar) - lambda(alphasCumprod[i + 1])  h_{i-1} (the previous step, from index i + 1)
//   r = h_prev / h                                        r_i
//   x0 = data prediction at this step, x0Prev = at step i + 1     x_theta(x_{t_{i-1}}), x_theta(x_{t_{i-2}})
// Order per step (NOTE: the reference and the fixtures use the same rule):
//   - first step of the schedule (i = S - 1): first order, there is no history yet (Algorithm 2, first update);
//   - last two steps (i = 1 into t = 0, i = 0 from t = 0 to sigma = 0): first order. At i = 0 lambda_next
//     = +inf, so r = 0 and 1 / (2r) is undefined; at i = 1 the lambda jump into t = 0 is several times the
//     previous one (3.6 vs 0.8 at 10 steps) and extrapolating x0 linearly in lambda over it overshoots. This is
//     the "lower order final" of common implementations, whose last step goes straight to sigma = 0;
//   - every other step: second order.
// A first-order step is DPM-Solver++(1), which is algebraically DDIM with eta 0.

/** The coefficients of one step, float64 (read as float32 like every schedule coefficient). */
export interface DpmSolverCoefs {
  /** sigma_next / sigma. */
  ratio: number;
  /** -alpha_next (e^{-h} - 1). */
  phi: number;
  /** 1 / (2 r) for a second-order step; null for a first-order step. */
  c: number | null;
}

/** Whether the step at respaced index `index` of an S-step schedule is second order (see the rule above). */
export function dpmpp2mIsSecondOrder(index: number, numSteps: number): boolean {
  return index >= 2 && index < numSteps - 1;
}

/** lambda = log(alpha / sigma) of a cumulative alpha. */
function logSnrHalf(abar: number): number {
  return 0.5 * Math.log(abar / (1 - abar));
}

/** DPM-Solver++(2M) coefficients of the step at respaced index `index` (float64). */
export function dpmpp2mCoefs(d: Diffusion, index: number): DpmSolverCoefs {
  const ab = d.alphasCumprod[index];
  const abNext = d.alphasCumprodPrev[index];
  const alpha = Math.sqrt(ab);
  const sigma = Math.sqrt(1 - ab);
  const alphaNext = Math.sqrt(abNext);
  const sigmaNext = Math.sqrt(1 - abNext);
  const ratio = sigmaNext / sigma;
  // NOTE: e^{-h} = (alpha / sigma) (sigma_next / alpha_next), written without log/exp so that it is exactly 0 at
  // sigma_next = 0 (the last step) and the same double on every engine.
  const expNegH = (ratio * alpha) / alphaNext;
  const phi = alphaNext * (1 - expNegH);
  if (!dpmpp2mIsSecondOrder(index, d.numTimesteps)) return { ratio, phi, c: null };
  const h = logSnrHalf(abNext) - logSnrHalf(ab);
  const hPrev = logSnrHalf(ab) - logSnrHalf(d.alphasCumprod[index + 1]);
  const r = hPrev / h;
  return { ratio, phi, c: 1 / (2 * r) };
}

/** What DPM-Solver++(2M) carries from one step to the next: the data prediction x0 [N, C, H, W] of step `index`. */
export interface X0History {
  /** Respaced index of the step that predicted it. */
  index: number;
  x0: Float32Array;
}

/**
 * A DPM-Solver++(2M) run: `step` advances x_t and remembers its x0 prediction in `history`, which the next
 * (second-order) step extrapolates from. One object per run; `history` can be set to resume a cut run.
 */
export class DpmSolverPP2M {
  /** x0 prediction of the last step run, or null before the first. */
  history: X0History | null = null;

  /** Returns x_{t-1} [N, C, H, W] (f32) for respaced step `s.index`, which must follow the step in `history`. */
  step(s: StepInput): Float32Array {
    const { diffusion: d, index: i, x, modelOut, batch, channels: C, spatial: HW, learnSigma } = s;
    const outC = learnSigma ? 2 * C : C;
    const { ratio, phi, c } = dpmpp2mCoefs(d, i);
    const prev = c === null ? null : this.history;
    if (c !== null) {
      if (!prev) throw new Error(`dpmpp2m: step at index ${i} is second order and needs the x0 prediction of index ${i + 1} (history)`);
      if (prev.index !== i + 1) throw new Error(`dpmpp2m: step at index ${i} needs the x0 prediction of index ${i + 1}, history holds index ${prev.index}`);
      if (prev.x0.length !== x.length) throw new Error(`dpmpp2m: history x0 has ${prev.x0.length} values, x has ${x.length}`);
    }
    const recip = coef(d.sqrtRecipAlphasCumprod, i);
    const recipm1 = coef(d.sqrtRecipm1AlphasCumprod, i);
    const ratioF = Math.fround(ratio);
    const phiF = Math.fround(phi);
    const cF = c === null ? 0 : Math.fround(c);
    const cF1 = Math.fround(1 + cF);
    const x0Now = new Float32Array(x.length);
    const out = new Float32Array(x.length);
    for (let n = 0; n < batch; n++) {
      for (let ch = 0; ch < C; ch++) {
        const xo = (n * C + ch) * HW;
        const eo = (n * outC + ch) * HW;
        for (let p = 0; p < HW; p++) {
          const xt = x[xo + p];
          // 1. data prediction (paper eq. x_theta = (x_t - sigma eps) / alpha, in the official form):
          //    x0 = sqrt(1/abar) x_t - sqrt(1/abar - 1) eps
          const x0 = Math.fround(recip * xt - recipm1 * modelOut[eo + p]);
          x0Now[xo + p] = x0;
          // 2. Algorithm 2, D_i = (1 + 1/(2 r_i)) x0 - 1/(2 r_i) x0Prev on a second-order step, else D = x0
          const D = prev ? cF1 * x0 - cF * prev.x0[xo + p] : x0;
          // 3. Algorithm 2, x_{t_i} = (sigma_{t_i} / sigma_{t_{i-1}}) x_{t_{i-1}} - alpha_{t_i} (e^{-h_i} - 1) D_i
          out[xo + p] = ratioF * xt + phiF * D;
        }
      }
    }
    this.history = { index: i, x0: x0Now };
    return out;
  }
}
