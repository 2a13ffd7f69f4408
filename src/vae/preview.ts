// A cheap preview of SD-VAE latents without the decoder: a per-pixel linear map from the 4 latent
// channels to RGB. The factors are the widely published approximate least-squares fit for SD 1.x latents
// (model space, i.e. already multiplied by 0.18215); the result is a blurry, 8x smaller, roughly
// colour-correct picture, good for step previews only.
import type { HostTensor } from "../tensor.ts";
import { shapeStr } from "../tensor.ts";

/** Approximate SD 1.x latent -> RGB factors: row = latent channel, column = R, G, B. */
export const SD_LATENT_RGB_FACTORS: readonly (readonly [number, number, number])[] = Object.freeze([
  [0.298, 0.207, 0.208],
  [0.187, 0.286, 0.173],
  [-0.158, 0.189, 0.264],
  [-0.184, -0.271, -0.473],
]);
/** Bias added after the factors (zero for these factors). */
export const SD_LATENT_RGB_BIAS: readonly [number, number, number] = Object.freeze([0, 0, 0]) as unknown as readonly [number, number, number];

/**
 * Linear latent-to-RGB preview: latents [N, 4, h, w] -> RGB [N, 3, h, w] roughly in [-1, 1] (the decoder's
 * range, so `toRGBA(preview, [-1, 1])` shows it). Approximate: not a substitute for the decoder.
 */
export function latentPreview(
  latents: HostTensor,
  factors: readonly (readonly number[])[] = SD_LATENT_RGB_FACTORS,
  bias: readonly number[] = SD_LATENT_RGB_BIAS,
): HostTensor {
  const [n, c, h, w] = latents.shape;
  if (latents.shape.length !== 4 || c !== factors.length || factors.some((r) => r.length !== 3) || bias.length !== 3) {
    throw new Error(`latentPreview: latents ${shapeStr(latents.shape)} need [N, ${factors.length}, h, w] and a ${factors.length}x3 factor matrix with 3 biases`);
  }
  const hw = h * w;
  const out = new Float32Array(n * 3 * hw);
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < 3; k++) {
      const dst = (b * 3 + k) * hw;
      for (let i = 0; i < hw; i++) {
        let v = bias[k];
        for (let ch = 0; ch < c; ch++) v += latents.data[(b * c + ch) * hw + i] * factors[ch][k];
        out[dst + i] = v;
      }
    }
  }
  return { shape: [n, 3, h, w], data: out };
}
