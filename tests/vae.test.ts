// The SD-VAE decoder (src/vae) vs our PyTorch reference (reference/vae_ref.py via fixtures_vae.py) on random
// non-zero weights: small widths (channels not multiples of 4, odd latent sizes, batch 2) and the real SD
// widths (128/256/512/512) at a 4x4 latent; js vs torch, every other backend vs js; legacy attention names;
// tiled vs untiled; the linear preview; bad files.
import assert from "node:assert/strict";
import type { Backend } from "../src/backend/contract.ts";
import { createBackend, listBackends } from "../src/backend/registry.ts";
import { GaussianRng } from "../src/rng.ts";
import { bindVAE, decodeLatents, estimateDecodeBytes, latentPreview, SD_LATENT_RGB_FACTORS, vaeConfigForFile } from "../src/vae/index.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { parseSafetensors, type SafetensorsFile, type TensorToWrite, WeightsError, writeSafetensors } from "../src/weights/safetensors.ts";
import { fixturesDir, relL2, runtimeName, test } from "./harness.ts";
import { FAST_F32_VS_JS, JS_VS_TORCH_FORWARD, VAE_TILED_VS_UNTILED } from "./tolerances.ts";

const js = (await createBackend("js")).backend;
const others: Backend[] = [];
const notRun: string[] = [];
for (const e of await listBackends()) {
  if (e.name === "js") continue;
  if (!e.available) notRun.push(`${e.name}: ${e.why}`);
  else others.push((await createBackend(e.name)).backend);
}
/** The fastest backend here (the tiled test decodes many tiles). */
const fast = others.find((b) => b.name === "wasm") ?? others[0] ?? js;

async function fixture(name: string): Promise<{ weights: SafetensorsFile; io: SafetensorsFile }> {
  return { weights: await readSafetensorsFile(`${fixturesDir}vae_${name}_weights.safetensors`), io: await readSafetensorsFile(`${fixturesDir}vae_${name}_io.safetensors`) };
}

for (const name of ["tiny", "small", "real"]) {
  test(`vae ${name}: js vs PyTorch <= ${JS_VS_TORCH_FORWARD}, other backends vs js <= ${FAST_F32_VS_JS}`, async () => {
    const { weights, io } = await fixture(name);
    const meta = JSON.parse(io.metadata.case);
    const latent = { shape: [...io.tensors.get("latent")!.shape], data: io.getF32("latent") };
    const want = io.getF32("image");
    const cfg = vaeConfigForFile(weights);
    assert.deepEqual(cfg.block_out_channels, meta.config.block_out_channels, "widths read from the tensor shapes");
    assert.equal(cfg.layers_per_block, meta.config.layers_per_block);
    const lines: string[] = [];
    let ref: Float32Array | null = null;
    for (const b of [js, ...others]) {
      const t0 = performance.now();
      const vae = bindVAE(weights, b);
      const { image } = await decodeLatents(vae, latent);
      vae.dispose();
      assert.deepEqual(image.shape, [...io.tensors.get("image")!.shape], `${b.name}: image shape`);
      const vsTorch = relL2(image.data, want);
      if (b === js) {
        ref = image.data;
        assert.ok(vsTorch <= JS_VS_TORCH_FORWARD, `js vs torch: relative L2 ${vsTorch} > ${JS_VS_TORCH_FORWARD}`);
        lines.push(`js vs torch ${vsTorch.toExponential(2)}`);
      } else {
        const vsJs = relL2(image.data, ref!);
        assert.ok(vsJs <= FAST_F32_VS_JS, `${b.name} vs js: relative L2 ${vsJs} > ${FAST_F32_VS_JS}`);
        lines.push(`${b.name} vs js ${vsJs.toExponential(2)} (vs torch ${vsTorch.toExponential(2)})`);
      }
      lines[lines.length - 1] += ` ${((performance.now() - t0) / 1000).toFixed(1)}s`;
    }
    console.log(`vae [${runtimeName}] ${name} (${meta.naming} attention names, ${meta.dtype}, widths ${cfg.block_out_channels}, latent ${latent.shape}): ` +
      `${lines.join(", ")}; torch fp32 vs fp64 ${Number(meta.torchF32VsF64).toExponential(2)}${notRun.length ? `; not run: ${notRun.join("; ")}` : ""}`);
  });
}

test(`vae: tiled vs untiled decode agree within ${VAE_TILED_VS_UNTILED} (relative L2); a tile covering the latent is exact`, async () => {
  const { weights } = await fixture("small");
  const vae = bindVAE(weights, fast);
  const rng = new GaussianRng(77);
  const latent = { shape: [2, 4, 24, 20], data: rng.fill(new Float32Array(2 * 4 * 24 * 20)).map((v) => 0.8 * v) };
  const whole = await decodeLatents(vae, latent);
  assert.equal(whole.tile, null);
  const same = await decodeLatents(vae, latent, { tile: 24 });
  assert.deepEqual(same.image.data, whole.image.data, "a tile as large as the latent is the untiled decode");
  const tiled = await decodeLatents(vae, latent, { tile: 16, overlap: 6 });
  assert.equal(tiled.tiles, 2 * 2, "24x20 in tiles of 16 with overlap 6: 2 x 2 tiles");
  const err = relL2(tiled.image.data, whole.image.data);
  const limit = estimateDecodeBytes(vae.config, 16, 16) + 1;
  const budget = await decodeLatents(vae, latent, { memoryBudgetBytes: limit });
  assert.ok(limit < whole.estimatedBytes && budget.tile === 16 && budget.estimatedBytes <= limit, `budget picks the largest tile that fits: ${budget.tile}`);
  const errBudget = relL2(budget.image.data, whole.image.data);
  console.log(`vae [${runtimeName}] tiled vs untiled on ${fast.name}, latent [2, 4, 24, 20]: tile 16 overlap 6 relative L2 ${err.toExponential(2)}; ` +
    `budget ${(limit / 1e6).toFixed(1)} MB (untiled ${(whole.estimatedBytes / 1e6).toFixed(1)} MB) -> tile ${budget.tile} overlap ${budget.overlap} (${budget.tiles} tiles) ${errBudget.toExponential(2)}`);
  assert.ok(err <= VAE_TILED_VS_UNTILED && errBudget <= VAE_TILED_VS_UNTILED, `tiled vs untiled: ${err}, ${errBudget} > ${VAE_TILED_VS_UNTILED}`);
  await assert.rejects(decodeLatents(vae, latent, { memoryBudgetBytes: 1000 }), /memory budget 1000 bytes is below/);
  await assert.rejects(decodeLatents(vae, { shape: [1, 3, 4, 4], data: new Float32Array(48) }), /\[1, 3, 4, 4\].*\[N, 4, h, w\]/);
  vae.dispose();
});

test("vae: the linear preview is latents x factors, 8x smaller than the decode", () => {
  const latent = { shape: [1, 4, 1, 2], data: Float32Array.from([1, 0, 0.5, -1, 0, 2, 0, 1]) };
  const p = latentPreview(latent);
  assert.deepEqual(p.shape, [1, 3, 1, 2]);
  const F = SD_LATENT_RGB_FACTORS;
  for (let k = 0; k < 3; k++) {
    assert.ok(Math.abs(p.data[k * 2] - (F[0][k] + 0.5 * F[1][k])) < 1e-6);
    assert.ok(Math.abs(p.data[k * 2 + 1] - (-F[1][k] + 2 * F[2][k] + F[3][k])) < 1e-6);
  }
  assert.throws(() => latentPreview({ shape: [1, 3, 1, 1], data: new Float32Array(3) }), /\[1, 3, 1, 1\]/);
});

// ----- bad files: each fails before upload with an error naming the file and the tensor -----------------
function rewrite(file: SafetensorsFile, edit: (t: Record<string, TensorToWrite>) => void, metadata?: Record<string, string>): SafetensorsFile {
  const t: Record<string, TensorToWrite> = {};
  for (const [k, e] of file.tensors) t[k] = { dtype: "F32", shape: [...e.shape], data: file.getF32(k) };
  edit(t);
  return parseSafetensors(writeSafetensors(t, metadata ?? { ...file.metadata }), "bad-vae.safetensors");
}

test("vae: bad files name the file, the tensor and the problem", async () => {
  const { weights } = await fixture("tiny");
  const attn = "decoder.mid_block.attentions.0";
  const cases: [string, SafetensorsFile, RegExp][] = [
    ["missing tensor", rewrite(weights, (t) => delete t["decoder.up_blocks.1.resnets.0.conv2.bias"]), /bad-vae\.safetensors.*missing.*decoder\.up_blocks\.1\.resnets\.0\.conv2\.bias.*missing_tensors/],
    ["mis-shaped tensor", rewrite(weights, (t) => (t["decoder.conv_out.bias"] = { dtype: "F32", shape: [4], data: [1, 2, 3, 4] })), /decoder\.conv_out\.bias.*\[4\].*expected \[3\].*shape_mismatch/],
    ["unknown decoder tensor", rewrite(weights, (t) => (t["decoder.up_blocks.9.extra.weight"] = { dtype: "F32", shape: [1], data: [1] })), /unexpected.*decoder\.up_blocks\.9\.extra\.weight/],
    ["legacy and current name together", rewrite(weights, (t) => (t[`${attn}.to_q.bias`] = t[`${attn}.query.bias`])), /both.*query\.bias.*to_q\.bias|both.*to_q\.bias.*query\.bias/],
    ["not a VAE file", rewrite(weights, (t) => { for (const k of Object.keys(t)) if (k.startsWith("decoder.") || k.startsWith("post_quant")) delete t[k]; }), /no VAE decoder tensors/],
    ["bad config metadata", rewrite(weights, () => {}, { config: "{not json" }), /__metadata__\.config is not valid JSON/],
    ["groups that do not divide", rewrite(weights, () => {}, { config: JSON.stringify({ norm_groups: 4 }) }), /norm_groups 4 does not divide block width 10/],
    ["a non-finite weight", rewrite(weights, (t) => (t["decoder.conv_in.bias"].data as Float32Array)[3] = NaN), /decoder\.conv_in\.bias.*non-finite/],
  ];
  for (const [what, file, re] of cases) {
    assert.throws(() => bindVAE(file, js), (e: Error) => {
      assert.ok(e instanceof WeightsError, `${what}: ${e}`);
      assert.match(e.message, re, what);
      return true;
    });
  }
});
