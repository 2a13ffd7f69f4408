// Page-side half of tests/browser.test.ts: runs one forward of the default model on every backend the
// page's listBackends() reports available (same seeded input, batch 2) and returns the raw outputs, so the
// test compares each with js under the tolerance of tests/tolerances.ts. A backend that registers itself
// (webgpu) is included with no change here.
import * as sdk from "../../bundles/dic-sdk.browser.js";

export async function forwardOnEveryBackend() {
  const backends = await sdk.listBackends();
  const results = [];
  let x = null;
  for (const b of backends.filter((b) => b.available)) {
    try {
      const model = await sdk.loadDefaultModel(b.name);
      const c = model.config;
      x ??= new sdk.GaussianRng(11).normal([2, c.in_channels, c.input_size, c.input_size]);
      const out = await model.forward(x, [999, 400], [7, 8]);
      results.push({ backend: b.name, description: model.backend.description, out: Array.from(out.data) });
    } catch (e) {
      results.push({ backend: b.name, error: e.message });
    }
  }
  const report = await sdk.doctor({ parity: false });
  return { backends, results, webgpu: report.webgpu, isolated: report.capabilities.crossOriginIsolated };
}
