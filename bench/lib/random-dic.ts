// Random non-zero weights for any configuration (benchmarks and tests; the official init zeroes
// gates and the head, which would hide bugs). Fan-in scaled so activations stay O(1).
import { GaussianRng } from "../../src/rng.ts";
import type { DiCConfig } from "../../src/model/config.ts";
import { expectedParams } from "../../src/model/params.ts";

/** name -> f32 values of every parameter of `config`, reproducible from `seed`. */
export function randomWeights(config: DiCConfig, seed = 0, scale = 1): Map<string, { shape: number[]; data: Float32Array }> {
  const rng = new GaussianRng(seed);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of expectedParams(config)) {
    const data = rng.fill(new Float32Array(shape.reduce((a, b) => a * b, 1)));
    const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : 0;
    for (let i = 0; i < data.length; i++) {
      if (fanIn) data[i] *= scale / Math.sqrt(fanIn);
      else if (name.includes("norm") && name.endsWith("weight")) data[i] = 1 + 0.2 * data[i];
      else data[i] *= 0.1;
      if (data[i] === 0) data[i] = 1e-3;
    }
    out.set(name, { shape, data });
  }
  return out;
}
