// Whole sampling runs with a DiC network on the js backend vs the PyTorch reference loop
// (reference/fixtures_dic_sampling.py): DDIM, DDPM with injected noise, CFG in both modes,
// through the public generate() and through `dic sample --init-noise`.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../sdk/cli.ts";
import { generate } from "../sdk/generate.ts";
import { loadModel } from "../sdk/model.ts";
import { runSampler } from "../src/pipeline.ts";
import type { CfgMode } from "../src/samplers/guidance.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { fixturesDir, relL2, test } from "./harness.ts";
import { SAMPLER_TRAJECTORY } from "./tolerances.ts";

const CASES = ["ddim", "ddpm", "ddim_cfg_reference", "ddim_cfg_standard", "ddpm_cfg_reference"];
const weights = `${fixturesDir}dic_sampling_weights.safetensors`;

for (const name of CASES) {
  test(`DiC ${name} run matches the PyTorch loop`, async () => {
    const fx = await readSafetensorsFile(`${fixturesDir}dic_sampling_${name}.safetensors`);
    const m = fx.metadata;
    const model = await loadModel(weights, { backend: "js" });
    const x = { shape: [...fx.tensors.get("x")!.shape], data: fx.getF32("x") };
    const labels = Array.from(fx.getF32("y"));
    const want = fx.getF32("final");
    const steps = Number(m.steps);
    let got: Float32Array;
    if (fx.tensors.has("noise")) {
      // DDPM: the reference's per-step noise is injected through the loop's noise hook.
      const noise = fx.getF32("noise");
      const per = x.data.length;
      const r = await runSampler({
        model: (xx, t, y) => model.forward(xx, t, y), learnSigma: true, numClasses: model.config.num_classes,
        labels, shape: [x.shape[1], x.shape[2], x.shape[3]], steps, sampler: m.sampler, eta: Number(m.eta),
        cfgScale: Number(m.cfg_scale), cfgMode: m.cfg_mode, initNoise: x,
        noiseFn: (k, shape) => ({ shape, data: noise.slice(k * per, (k + 1) * per) }),
      });
      got = r.x.data;
    } else {
      const r = await generate({
        model, labels, steps, sampler: m.sampler as "ddim", eta: Number(m.eta),
        cfgScale: Number(m.cfg_scale), cfgMode: m.cfg_mode as CfgMode, initNoise: x,
      });
      got = r.latents.data;
    }
    const err = relL2(got, want);
    console.log(`DiC ${name}: relative L2 at the end ${err.toExponential(2)}`);
    assert.ok(err <= SAMPLER_TRAJECTORY, `relative L2 ${err} > ${SAMPLER_TRAJECTORY}`);
  });
}

test("dic sample --init-noise matches the reference DDIM loop", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dic-sample-"));
  const fixture = `${fixturesDir}dic_sampling_ddim.safetensors`;
  const out = join(dir, "latent.safetensors");
  const errs: string[] = [];
  const code = await runCli(
    ["sample", "--model", weights, "--label", "1", "--label", "3", "--steps", "50", "--sampler", "ddim", "--eta", "0",
      "--init-noise", fixture, "--out", out, "--backend", "js", "--quiet"],
    { out: () => {}, err: (l) => errs.push(l) },
  );
  assert.equal(code, 0, errs.join("\n"));
  const got = (await readSafetensorsFile(out)).getF32("x");
  const want = (await readSafetensorsFile(fixture)).getF32("final");
  assert.ok(relL2(got, want) <= SAMPLER_TRAJECTORY);
});
