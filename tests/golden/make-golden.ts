// Writes tests/golden/default-model.safetensors: the default model's sample for GOLDEN on the js
// reference backend. Run when the shipped model changes: `bun tests/golden/make-golden.ts`.
import { writeFileSync } from "node:fs";
import { generate, loadDefaultModel } from "../../sdk/index.ts";
import { writeSafetensors } from "../../src/weights/safetensors.ts";
import { GOLDEN } from "./golden-settings.ts";

const model = await loadDefaultModel("js");
const r = await generate({ model, ...GOLDEN });
const out = new URL("./default-model.safetensors", import.meta.url).pathname;
writeFileSync(out, writeSafetensors({ x: { dtype: "F32", shape: r.latents.shape, data: r.latents.data } }, {
  settings: JSON.stringify(GOLDEN), model_train_steps: model.metadata.train_steps ?? "",
}));
console.log(`golden: ${r.latents.shape.join("x")} -> ${out}`);
