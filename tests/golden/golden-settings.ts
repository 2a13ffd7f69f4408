// Settings of the committed golden sample of the default model (tests/default-model.test.ts).
import type { GenerateOptions } from "../../sdk/generate.ts";

/** One image per class with guidance: covers the sampler, CFG and the noise stream. */
export const GOLDEN: GenerateOptions = {
  labels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  seed: 2026,
  steps: 10,
  sampler: "dpmpp2m",
  cfgScale: 2,
  cfgMode: "standard",
};
