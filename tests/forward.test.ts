// JS backend forward vs the PyTorch reference (fixtures from reference/make_fixtures.py).
import assert from "node:assert/strict";
import { loadModel } from "../sdk/model.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { fixturesDir, relL2, test } from "./harness.ts";
import { JS_VS_TORCH_FORWARD } from "./tolerances.ts";

for (const name of ["tiny", "odd", "dics"]) {
  test(`js forward matches PyTorch: ${name}`, async () => {
    const base = `${fixturesDir}forward_${name}`;
    const model = await loadModel(`${base}_weights.safetensors`, { backend: "js" });
    const inputs = await readSafetensorsFile(`${base}_inputs.safetensors`);
    const want = (await readSafetensorsFile(`${base}_out.safetensors`)).getF32("out");
    const x = { shape: [...inputs.tensors.get("x")!.shape], data: inputs.getF32("x") };
    const t0 = performance.now();
    const out = await model.forward(x, inputs.getF32("t"), inputs.getF32("y"));
    const ms = performance.now() - t0;
    const err = relL2(out.data, want);
    console.log(`forward ${name}: relative L2 ${err.toExponential(2)} (${ms.toFixed(0)} ms)`);
    assert.deepEqual(out.shape, [x.shape[0], model.config.in_channels * (model.config.learn_sigma ? 2 : 1), x.shape[2], x.shape[3]]);
    assert.ok(err <= JS_VS_TORCH_FORWARD, `relative L2 ${err} > ${JS_VS_TORCH_FORWARD}`);
  });
}
