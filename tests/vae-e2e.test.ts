// End to end through the CLI, as a user with real weights would run it (none can be downloaded in CI): a random
// latent DiC (in_channels 4, 32x32 latents, tiny widths) and a random SD-VAE-shaped decoder (four levels,
// small widths) -> `dic generate --model --vae` -> a 256x256 PNG; in-process and as a real process, and the
// same pixels from the generate() API. Plus the CLI's errors for a latent model without a VAE and vice versa.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../sdk/cli.ts";
import { generate } from "../sdk/generate.ts";
import { loadVAE, previewLatents } from "../sdk/vae.ts";
import { resolveConfig } from "../src/model/config.ts";
import { expectedParams } from "../src/model/params.ts";
import { GaussianRng } from "../src/rng.ts";
import { expectedVAEParams, resolveVAEConfig } from "../src/vae/index.ts";
import { type TensorToWrite, writeSafetensors } from "../src/weights/safetensors.ts";
import { runtimeCommand, runtimeName, test } from "./harness.ts";

const dir = mkdtempSync(join(tmpdir(), "dic-vae-e2e-"));
const rng = new GaussianRng(256);

/** Random non-zero weights for a parameter table: fan-in scaled matrices, norm weights near 1, small biases. */
function randomWeights(table: Map<string, number[]>): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, shape] of table) {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = rng.fill(new Float32Array(n)).map((x) => x + (x >= 0 ? 0.05 : -0.05));
    const fan = shape.length > 1 ? n / shape[0] : 1;
    const isNormWeight = shape.length === 1 && /norm[^.]*\.weight$/.test(name);
    out[name] = { dtype: "F32", shape, data: v.map((x) => (shape.length > 1 ? x / Math.sqrt(fan) : isNormWeight ? 1 + 0.2 * x : 0.1 * x)) };
  }
  return out;
}

const dicConfig = resolveConfig({ input_size: 32, in_channels: 4, num_classes: 3, hidden_size: 8, depth: [1, 1, 1, 1, 1], skip_stride: 1 });
const dicPath = join(dir, "dic-latent.safetensors");
writeFileSync(dicPath, writeSafetensors(randomWeights(expectedParams(dicConfig)), { config: JSON.stringify(dicConfig) }));
// SD's four levels (8x upscale) at small widths; norm_groups travels in the metadata (real files use 32).
const vaeConfig = resolveVAEConfig({ block_out_channels: [8, 8, 16, 16], layers_per_block: 1, norm_groups: 4 });
const vaePath = join(dir, "vae-small.safetensors");
writeFileSync(vaePath, writeSafetensors(randomWeights(expectedVAEParams(vaeConfig)), { config: JSON.stringify({ norm_groups: 4 }) }));

/** Width and height from a PNG's IHDR chunk. */
function pngSize(bytes: Uint8Array): [number, number] {
  assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47], "PNG signature");
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  return [dv.getUint32(16), dv.getUint32(20)];
}

async function run(args: string[]): Promise<{ code: number; err: string[] }> {
  const err: string[] = [];
  const code = await runCli(args, { out: () => {}, err: (l) => err.push(l) });
  return { code, err };
}

const common = ["--label", "1", "--steps", "3", "--seed", "5", "--cfg", "1.5"];

test(`vae e2e [${runtimeName}]: dic generate --model (latent DiC) --vae writes a 256x256 PNG, equal to generate()`, async () => {
  const out = join(dir, "cli.png");
  const r = await run(["generate", "--model", dicPath, "--vae", vaePath, ...common, "--out", out]);
  assert.equal(r.code, 0, r.err.join("\n"));
  assert.match(r.err.join("\n"), /VAE decode/);
  const png = new Uint8Array(readFileSync(out));
  assert.deepEqual(pngSize(png), [256, 256]);
  const api = await generate({ model: dicPath, vae: vaePath, label: 1, steps: 3, seed: 5, cfgScale: 1.5 });
  assert.deepEqual(api.latents.shape, [1, 4, 32, 32]);
  const img = api.images[0];
  assert.equal(img.width, 256);
  assert.equal(img.height, 256);
  const distinct = new Set<number>();
  for (let i = 0; i < img.data.length; i += 4) distinct.add(img.data[i]);
  assert.ok(distinct.size > 16, `the decoded picture is not flat (${distinct.size} red levels)`);
  assert.deepEqual(await img.toPNG(), png, "CLI and generate() give the same PNG");
  // Tiled under a small budget: same size, close to the untiled picture.
  const tiled = await generate({ model: dicPath, vae: vaePath, label: 1, steps: 3, seed: 5, cfgScale: 1.5, vaeMemoryBudget: 4e6 });
  assert.equal(tiled.images[0].width, 256);
  let diff = 0;
  for (let i = 0; i < img.data.length; i++) diff += Math.abs(img.data[i] - tiled.images[0].data[i]);
  console.log(`vae e2e [${runtimeName}]: 256x256 via ${api.backend.split(" — ")[0].split(":")[0]}, sampling ${api.timings.modelMs.toFixed(0)} ms, decode ${api.timings.decodeMs!.toFixed(0)} ms; ` +
    `tiled (4 MB budget) mean |diff| ${(diff / img.data.length).toFixed(2)} levels of 255`);
  const prev = previewLatents(api.latents);
  assert.equal(prev[0].width, 32, "the preview is the latent's size");
});

test(`vae e2e [${runtimeName}]: a real dic process writes the 256x256 PNG`, () => {
  const { exe, args } = runtimeCommand("sdk/bin.ts");
  const out = join(dir, "process.png");
  const r = spawnSync(exe, [...args, "generate", "--model", dicPath, "--vae", vaePath, ...common, "--vae-memory", "50", "--quiet", "--out", out], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(pngSize(new Uint8Array(readFileSync(out))), [256, 256]);
});

test(`vae e2e [${runtimeName}]: CLI errors for a latent model without --vae and bad --vae inputs`, async () => {
  const out = join(dir, "never.png");
  let r = await run(["generate", "--model", dicPath, ...common, "--out", out]);
  assert.equal(r.code, 1);
  assert.match(r.err[0], /latent model.*--vae/);
  r = await run(["generate", "--model", dicPath, "--vae", dicPath, ...common, "--out", out]);
  assert.equal(r.code, 1);
  assert.match(r.err[0], /dic-latent\.safetensors.*no VAE decoder tensors/);
  r = await run(["generate", "--model", dicPath, "--vae", vaePath, "--vae-memory", "-3", ...common, "--out", out]);
  assert.equal(r.code, 1);
  assert.match(r.err[0], /--vae-memory/);
  r = await run(["generate", "--vae", vaePath, "--label", "sneaker", "--out", out]);
  assert.equal(r.code, 1);
  assert.match(r.err[0], /pixel-space model, it takes no VAE/);
  const vae = await loadVAE(vaePath, { backend: "js" });
  assert.deepEqual(vae.config.block_out_channels, [8, 8, 16, 16]);
  vae.dispose();
});

test(`vae e2e [${runtimeName}]: dic sample then dic decode gives the generate picture; --preview the linear preview`, async () => {
  const latents = join(dir, "latents.safetensors");
  let r = await run(["sample", "--model", dicPath, ...common, "--sampler", "ddim", "--out", latents]);
  assert.equal(r.code, 0, r.err.join("\n"));
  const out = join(dir, "decoded.png");
  r = await run(["decode", "--vae", vaePath, "--latents", latents, "--out", out]);
  assert.equal(r.code, 0, r.err.join("\n"));
  assert.deepEqual(pngSize(new Uint8Array(readFileSync(out))), [256, 256]);
  const api = await generate({ model: dicPath, vae: vaePath, label: 1, steps: 3, seed: 5, cfgScale: 1.5, sampler: "ddim" });
  const vae = await loadVAE(vaePath);
  const [img] = await vae.decodeToRGBA(api.latents);
  assert.deepEqual(img.data, api.images[0].data, "decode of the sampled latents == generate's picture");
  vae.dispose();
  const prev = join(dir, "preview.png");
  r = await run(["decode", "--preview", "--latents", latents, "--out", prev]);
  assert.equal(r.code, 0, r.err.join("\n"));
  assert.deepEqual(pngSize(new Uint8Array(readFileSync(prev))), [32, 32]);
  r = await run(["decode", "--latents", latents, "--out", prev]);
  assert.equal(r.code, 1);
  assert.match(r.err[0], /missing --vae/);
  r = await run(["decode", "--vae", vaePath, "--latents", vaePath, "--out", prev]);
  assert.equal(r.code, 1);
  assert.match(r.err[0], /vae-small\.safetensors: no tensor "x"/);
});
