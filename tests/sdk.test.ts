// The public API: loadModel from every kind of source, config overrides, generate() options,
// progress, cancellation and errors that name what is wrong.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { generate, loadModel, resolveConfig } from "../sdk/index.ts";
import { fixturesDir, test } from "./harness.ts";

const weightsPath = `${fixturesDir}dic_sampling_weights.safetensors`;

test("loadModel takes a path, file URL, Uint8Array, ArrayBuffer and Response alike", async () => {
  const bytes = new Uint8Array(readFileSync(weightsPath));
  const x = { shape: [1, 4, 8, 8], data: Float32Array.from({ length: 256 }, (_, i) => Math.sin(i)) };
  const sources = [
    weightsPath,
    new URL(`file://${weightsPath}`),
    bytes,
    bytes.slice().buffer,
    new Response(bytes.slice()),
  ];
  let first: Float32Array | null = null;
  for (const src of sources) {
    const m = await loadModel(src, { backend: "js" });
    assert.equal(m.config.hidden_size, 8);
    assert.equal(m.backend.name, "js");
    const out = await m.forward(x, [10], [2]);
    assert.deepEqual(out.shape, [1, 8, 8, 8]);
    if (first) assert.deepEqual(out.data, first);
    else first = out.data;
  }
});

test("config overrides win over the file and bad ones are named", async () => {
  await assert.rejects(loadModel(weightsPath, { config: { hidden_size: 16 } }), /shape_mismatch/);
  await assert.rejects(loadModel(weightsPath, { config: { depth: [1, 1] } }), /config\.depth/);
  await assert.rejects(loadModel(weightsPath, { config: { hiden_size: 8 } }), /unknown field "hiden_size"/);
  await assert.rejects(loadModel(weightsPath, { backend: "cuda" }), /unknown "cuda".*valid: auto, js/);
  assert.deepEqual(resolveConfig({ preset: "DiC-XL" }).depth, [7, 7, 8, 7, 7]);
  assert.deepEqual(resolveConfig({ depth: [2, 3, 4], skip_stride: 5 }).depth, [2, 3, 4, 4, 3]);
  assert.throws(() => resolveConfig({ depth: [2, 3, 4], skip_stride: 1 }), /saves 2 skips but decoder stage 4 \(3 blocks\) consumes 3/);
  assert.throws(() => resolveConfig({ hidden_size: 6, mult_channels: [1, 3, 4, 3, 1] }), /GroupNorm|divisible/);
});

test("forward rejects inputs of the wrong shape or label range", async () => {
  const m = await loadModel(weightsPath, { backend: "js" });
  const x = { shape: [1, 4, 8, 8], data: new Float32Array(256) };
  await assert.rejects(m.forward({ shape: [1, 3, 8, 8], data: new Float32Array(192) }, [1], [1]), /x has shape \[1, 3, 8, 8\]/);
  await assert.rejects(m.forward(x, [1, 2], [1]), /t has 2 entries/);
  await assert.rejects(m.forward(x, [1], [6]), /label 6 outside 0\.\.5/);
});

test("generate reports progress per step, is reproducible by seed, and can be cancelled", async () => {
  const model = await loadModel(weightsPath, { backend: "js" });
  const seen: number[] = [];
  const a = await generate({ model, labels: [1, 4], steps: 5, seed: 9, onProgress: (p) => { seen.push(p.step); } });
  assert.deepEqual(seen, [0, 1, 2, 3, 4]);
  assert.equal(a.seed, 9);
  assert.equal(a.images.length, 0, "a model without pixel_range makes latents, not images");
  const b = await generate({ model, labels: [1, 4], steps: 5, seed: 9 });
  assert.deepEqual(a.latents.data, b.latents.data);
  const c = await generate({ model, labels: [1, 4], steps: 5, seed: 10 });
  assert.notDeepEqual(a.latents.data, c.latents.data);
  const ctl = new AbortController();
  await assert.rejects(
    generate({ model, labels: [1], steps: 20, seed: 1, signal: ctl.signal, onProgress: (p) => { if (p.step === 2) ctl.abort(); } }),
    (e: Error) => e.name === "AbortError",
  );
  await assert.rejects(generate({ model, labels: [7] }), /label 7 outside 0\.\.4/);
  await assert.rejects(generate({ model, labels: ["sneaker"] }), /no class names/);
});

test("configuration fields are bounded before anything is expanded from them", async () => {
  const { writeSafetensors } = await import("../src/weights/safetensors.ts");
  for (const [over, re] of [
    [{ depth: [1_000_000, 1_000_000, 1_000_000] }, /config\.depth: entries above 256/],
    [{ depth: Array(10_000_000).fill(1) }, /config\.depth: expected 3 or 5 entries/],
    [{ hidden_size: 1e9 }, /config\.hidden_size: 1000000000 is above the limit/],
    [{ num_classes: 1e9 }, /config\.num_classes/],
    [{ input_size: 1 << 20 }, /config\.input_size/],
    [{ mult_channels: [1, 1e6, 1] }, /config\.mult_channels/],
  ] as const) {
    assert.throws(() => resolveConfig(over as Record<string, unknown>), re, JSON.stringify(over).slice(0, 80));
  }
  // A small file whose config asks for a million blocks per level is refused at once.
  const file = writeSafetensors({ w: { dtype: "F32", shape: [1], data: new Float32Array(1) } }, { config: JSON.stringify({ depth: [1_000_000, 1_000_000, 1_000_000] }) });
  const t0 = performance.now();
  await assert.rejects(loadModel(file, { backend: "js" }), /config\.depth: entries above 256/);
  assert.ok(performance.now() - t0 < 5000);
});
