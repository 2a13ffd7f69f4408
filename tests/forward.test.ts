// Whole-model forward on every available backend vs the PyTorch reference (fixtures from
// reference/make_fixtures.py): js within JS_VS_TORCH_FORWARD, fast f32 backends within FAST_F32_VS_JS.
import assert from "node:assert/strict";
import { listBackends } from "../src/backend/registry.ts";
import { loadModel } from "../sdk/model.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { fixturesDir, relL2, runtimeName, test } from "./harness.ts";
import { COMPACT_F16_VS_JS_FORWARD, COMPACT_INT8_VS_JS_FORWARD, FAST_F32_VS_JS, JS_VS_TORCH_FORWARD } from "./tolerances.ts";
import { createWasmBackend } from "../src/backend/wasm/index.ts";
import { quantizeSafetensors } from "../src/weights/quantize.ts";
import type { DiCModel } from "../sdk/model.ts";

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

// The wasm backend's compact storage modes (conv3x3 weights as f16 or int8 3x3 kernels expanded per layer)
// and a memory budget, vs the same PyTorch outputs; int8 also from an int8 weights file (src/weights/int8.ts),
// which the js backend loads dequantized.
if (backends.some((b) => b.name === "wasm" && b.available)) {
  for (const name of ["tiny", "odd", "dics"]) {
    test(`wasm storage modes forward match PyTorch: ${name}`, async () => {
      const base = `${fixturesDir}forward_${name}`;
      const inputs = await readSafetensorsFile(`${base}_inputs.safetensors`);
      const want = (await readSafetensorsFile(`${base}_out.safetensors`)).getF32("out");
      const x = { shape: [...inputs.tensors.get("x")!.shape], data: inputs.getF32("x") };
      const int8File = quantizeSafetensors(await readSafetensorsFile(`${base}_weights.safetensors`));
      const runs: [string, () => Promise<DiCModel>, number][] = [
        ["f16", async () => loadModel(`${base}_weights.safetensors`, { backend: await createWasmBackend({ storage: "f16" }) }), COMPACT_F16_VS_JS_FORWARD],
        ["int8", async () => loadModel(`${base}_weights.safetensors`, { backend: await createWasmBackend({ storage: "int8" }) }), COMPACT_INT8_VS_JS_FORWARD],
        ["int8 file", async () => loadModel(int8File, { backend: await createWasmBackend({ storage: "int8" }) }), COMPACT_INT8_VS_JS_FORWARD],
        ["int8 file on js", () => loadModel(int8File, { backend: "js" }), COMPACT_INT8_VS_JS_FORWARD],
      ];
      const outs = new Map<string, Float32Array>();
      for (const [label, load, tol] of runs) {
        if (name === "dics" && label === "int8 file on js") continue; // the js reference takes seconds on DiC-S; the small models cover it
        const model = await load();
        const out = await model.forward(x, inputs.getF32("t"), inputs.getF32("y"));
        outs.set(label, out.data);
        const err = relL2(out.data, want);
        console.log(`forward [${runtimeName}] wasm ${label} storage ${name}: relative L2 ${err.toExponential(2)}`);
        assert.ok(err <= tol, `wasm ${label}: relative L2 ${err} > ${tol}`);
      }
      // wasm keeps the file's int8 convolutions as they are (tests/wasm.test.ts checks them exactly) and quantizes
      // its f32 linear weights too; js dequantizes the file.
      if (outs.has("int8 file on js")) {
        const e = relL2(outs.get("int8 file")!, outs.get("int8 file on js")!);
        assert.ok(e <= COMPACT_INT8_VS_JS_FORWARD, `int8 file: wasm vs js relative L2 ${e}`);
      }
    });
  }
}
