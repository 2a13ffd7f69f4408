// Child process of tests/webgpu-npm.test.ts, run by Node and by Bun with the `webgpu` npm package (Dawn)
// pointed at SwiftShader: the webgpu backend from dist/ against js on a fused conv3x3 at an odd shape and
// on a whole forward vs the PyTorch fixture. Prints one JSON line.
import { createBackend, listBackends } from "../dist/src/backend/registry.js";
import { loadModel } from "../dist/sdk/model.js";
import { readSafetensorsFile } from "../dist/src/weights/read-file.js";

const fixtures = new URL("./fixtures/gen/", import.meta.url).pathname;
const relL2 = (a, b) => {
  let n = 0, d = 0;
  for (let i = 0; i < a.length; i++) { n += (a[i] - b[i]) ** 2; d += b[i] ** 2; }
  return Math.sqrt(n / d);
};
const entry = (await listBackends()).find((e) => e.name === "webgpu");
const { backend: gpu } = await createBackend("webgpu");
const { backend: js } = await createBackend("js");
const rnd = (n, s) => Float32Array.from({ length: n }, (_, i) => Math.sin((i + 1) * 12.9898 * s) * 0.8 + 0.1);
const x = { shape: [2, 10, 9, 7], data: rnd(2 * 10 * 9 * 7, 1) };
const w = { shape: [6, 10, 3, 3], data: rnd(6 * 10 * 9, 2) };
const bias = { shape: [6], data: rnd(6, 3) };
const gamma = { shape: [10], data: rnd(10, 4) }, beta = { shape: [10], data: rnd(10, 5) };
const conv = async (b) => {
  const pre = { norm: "group", groups: 5, eps: 1e-5, weight: b.upload(gamma, "vector"), bias: b.upload(beta, "vector"), act: "gelu" };
  return (await b.download(b.conv3x3(b.upload(x), b.upload(w, "conv3x3.weight"), b.upload(bias, "vector"), pre))).data;
};
const convErr = relL2(await conv(gpu), await conv(js));
const base = `${fixtures}forward_tiny`;
const model = await loadModel(`${base}_weights.safetensors`, { backend: gpu });
const inputs = await readSafetensorsFile(`${base}_inputs.safetensors`);
const want = (await readSafetensorsFile(`${base}_out.safetensors`)).getF32("out");
const out = await model.forward({ shape: [...inputs.tensors.get("x").shape], data: inputs.getF32("x") }, inputs.getF32("t"), inputs.getF32("y"));
console.log(JSON.stringify({ available: entry.available, description: gpu.description, convErr, forwardErr: relL2(out.data, want) }));
gpu.destroy?.();
process.exit(0);
