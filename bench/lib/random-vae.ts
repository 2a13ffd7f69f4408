// Random non-zero VAE decoder weights for any configuration (benchmarks): fan-in scaled convolutions and
// projections, norm weights near 1, small biases; attention projections already in 1x1-conv shape.
import { GaussianRng } from "../../src/rng.ts";
import type { VAEConfig } from "../../src/vae/config.ts";
import { expectedVAEParams } from "../../src/vae/params.ts";

/** name -> f32 values of every decoder parameter (current diffusers names), reproducible from `seed`. */
export function randomVAEWeights(config: VAEConfig, seed = 0): Map<string, { shape: number[]; data: Float32Array }> {
  const rng = new GaussianRng(seed);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, s] of expectedVAEParams(config)) {
    const shape = s.length === 2 ? [s[0], s[1], 1, 1] : s;
    const data = rng.fill(new Float32Array(shape.reduce((a, b) => a * b, 1)));
    const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : 0;
    for (let i = 0; i < data.length; i++) {
      if (fanIn) data[i] /= Math.sqrt(fanIn);
      else if (name.includes("norm") && name.endsWith("weight")) data[i] = 1 + 0.2 * data[i];
      else data[i] *= 0.1;
      if (data[i] === 0) data[i] = 1e-3;
    }
    out.set(name, { shape, data });
  }
  return out;
}
