// Whole-model forward on every available backend vs the PyTorch reference (fixtures from
// reference/make_fixtures.py): js within JS_VS_TORCH_FORWARD, fast f32 backends within FAST_F32_VS_JS.
import assert from "node:assert/strict";
import { listBackends } from "../src/backend/registry.ts";
import { loadModel } from "../sdk/model.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { fixturesDir, relL2, runtimeName, test } from "./harness.ts";
import { FAST_F32_VS_JS, JS_VS_TORCH_FORWARD } from "./tolerances.ts";

const backends = await listBackends();
const skipped = backends.filter((b) => !b.available);
if (skipped.length) console.log(`forward [${runtimeName}]: not run on ${skipped.map((b) => `${b.name} (${b.why})`).join(", ")}`);
/** js is the reference (vs torch); faster backends get the fast-f32 tolerance. */
const tolerance = (name: string) => (name === "js" ? JS_VS_TORCH_FORWARD : FAST_F32_VS_JS);

for (const { name: backend } of backends.filter((b) => b.available)) {
  for (const name of ["tiny", "odd", "dics"]) {
    test(`${backend} forward matches PyTorch: ${name}`, async () => {
      const base = `${fixturesDir}forward_${name}`;
      const model = await loadModel(`${base}_weights.safetensors`, { backend });
      const inputs = await readSafetensorsFile(`${base}_inputs.safetensors`);
      const want = (await readSafetensorsFile(`${base}_out.safetensors`)).getF32("out");
      const x = { shape: [...inputs.tensors.get("x")!.shape], data: inputs.getF32("x") };
      const t0 = performance.now();
      const out = await model.forward(x, inputs.getF32("t"), inputs.getF32("y"));
      const ms = performance.now() - t0;
      const err = relL2(out.data, want);
      console.log(`forward [${runtimeName}] ${backend} ${name}: relative L2 ${err.toExponential(2)} (${ms.toFixed(0)} ms)`);
      assert.deepEqual(out.shape, [x.shape[0], model.config.in_channels * (model.config.learn_sigma ? 2 : 1), x.shape[2], x.shape[3]]);
      assert.ok(err <= tolerance(backend), `${backend}: relative L2 ${err} > ${tolerance(backend)}`);
    });
  }
}
