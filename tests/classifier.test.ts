// The quality classifier (bench/lib/classifier.ts) vs PyTorch (reference/fixtures_classifier.py) on every
// available backend, its accuracy on real Fashion-MNIST test images, and the Frechet distance vs numpy.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createBackend, listBackends } from "../src/backend/registry.ts";
import { accuracy, argmaxRows, asStoredPixels, loadClassifier } from "../bench/lib/classifier.ts";
import { loadFashionMnist } from "../bench/lib/fashion-mnist.ts";
import { featureStats, frechetDistance, symmetricEigen } from "../bench/lib/frechet.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { writeSafetensors } from "../src/weights/safetensors.ts";
import { fixturesDir, relL2, test } from "./harness.ts";
import { FAST_F32_VS_JS, FRECHET_REL, JS_VS_TORCH_FORWARD } from "./tolerances.ts";

const MODEL = new URL("../models/fashion-classifier.safetensors", import.meta.url).pathname;
/** Accuracy the shipped classifier must reach on the first 200 test images (it scores ~0.9 on all 10,000). */
const MIN_ACCURACY_200 = 0.85;

const available = (await listBackends()).filter((b) => b.available).map((b) => b.name);
const unavailable = (await listBackends()).filter((b) => !b.available);
if (unavailable.length) console.log(`classifier: not run on ${unavailable.map((b) => `${b.name} (${b.why})`).join(", ")}`);
/** js is the reference (vs torch); faster backends get the fast-f32 tolerance on top. */
const tolerance = (name: string) => (name === "js" ? JS_VS_TORCH_FORWARD : FAST_F32_VS_JS);

async function fixture(name: string) {
  const f = await readSafetensorsFile(`${fixturesDir}${name}`);
  const tensor = (k: string) => ({ shape: [...f.tensors.get(k)!.shape], data: f.getF32(k) });
  const f64 = (k: string): Float64Array => {
    const e = f.tensors.get(k);
    assert.ok(e, `${name}: no tensor ${k}`);
    assert.equal(e.dtype, "F64", `${name}: ${k} is ${e.dtype}`);
    const b = f.getBytes(k);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return Float64Array.from({ length: b.byteLength / 8 }, (_, i) => dv.getFloat64(8 * i, true));
  };
  return { f, tensor, f64 };
}

for (const name of available) {
  test(`classifier [${name}]: random weights of another shape match PyTorch`, async () => {
    const { backend } = await createBackend(name);
    const clf = await loadClassifier(`${fixturesDir}classifier_random_weights.safetensors`, backend);
    const { tensor } = await fixture("classifier_random.safetensors");
    const got = await clf.classify(tensor("images"));
    const eL = relL2(got.logits.data, tensor("logits").data), eF = relL2(got.features.data, tensor("features").data);
    console.log(`classifier [${name}] random: logits relL2 ${eL.toExponential(2)}, features ${eF.toExponential(2)}`);
    assert.deepEqual(got.logits.shape, tensor("logits").shape);
    assert.ok(eL <= tolerance(name) && eF <= tolerance(name), `logits ${eL}, features ${eF} > ${tolerance(name)}`);
    // Batching is an implementation detail: one image at a time gives the same numbers.
    const one = await clf.classify(tensor("images"), 1);
    assert.ok(relL2(one.logits.data, got.logits.data) <= 1e-7, "batch size changes the logits");
  });

  test(`classifier [${name}]: shipped weights match PyTorch on real and noise images`, async () => {
    const { f, tensor } = await fixture("classifier_parity.safetensors");
    const digest = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", readFileSync(MODEL))), (b) => b.toString(16).padStart(2, "0")).join("");
    assert.equal(digest, f.metadata.weights_sha256, `${MODEL} changed since the fixture was written: run npm run fixtures`);
    const { backend } = await createBackend(name);
    const clf = await loadClassifier(MODEL, backend);
    const got = await clf.classify(tensor("images"));
    const eL = relL2(got.logits.data, tensor("logits").data), eF = relL2(got.features.data, tensor("features").data);
    console.log(`classifier [${name}] shipped: logits relL2 ${eL.toExponential(2)}, features ${eF.toExponential(2)}`);
    assert.ok(eL <= tolerance(name) && eF <= tolerance(name), `logits ${eL}, features ${eF} > ${tolerance(name)}`);
    assert.deepEqual(argmaxRows(got.logits), argmaxRows(tensor("logits")));
  });
}

test("classifier: shipped weights classify real test images", async () => {
  const { backend } = await createBackend("js");
  const clf = await loadClassifier(MODEL, backend);
  assert.equal(clf.classNames[7], "Sneaker");
  assert.ok(Number(clf.metadata.test_accuracy) >= 0.9, `metadata test_accuracy ${clf.metadata.test_accuracy} < 0.9`);
  const { images, labels } = await loadFashionMnist("test", { limit: 200 });
  const t0 = performance.now();
  const { logits, features } = await clf.classify(images);
  const ms = performance.now() - t0;
  const acc = accuracy(logits, labels);
  console.log(`classifier: ${(acc.overall * 100).toFixed(1)}% on the first 200 test images (${(ms / 200).toFixed(1)} ms/image, js)`);
  assert.ok(acc.overall >= MIN_ACCURACY_200, `accuracy ${acc.overall} < ${MIN_ACCURACY_200}`);
  assert.equal(features.shape[1], clf.config.features);
  assert.ok(features.data.every(Number.isFinite));
  // Generated samples are scored as stored pixels: real images are already exactly that (a fixed point).
  assert.deepEqual(asStoredPixels(images).data, images.data);
  const over = asStoredPixels({ shape: [1, 1, 1, 4], data: Float32Array.from([-7, 1.3, 0.001, 0.999]) }).data;
  assert.deepEqual(Array.from(over), [-1, 1, Math.fround(Math.fround(128 / 127.5) - 1), 1]);
  clf.dispose();
});

test("classifier: loading rejects wrong files, naming the problem", async () => {
  const { backend } = await createBackend("js");
  const src = await readSafetensorsFile(`${fixturesDir}classifier_random_weights.safetensors`);
  const rebuild = (drop: string, meta: Record<string, string>) => {
    const t: Parameters<typeof writeSafetensors>[0] = {};
    for (const [k, e] of src.tensors) if (k !== drop) t[k] = { dtype: "F32", shape: [...e.shape], data: src.getF32(k) };
    return writeSafetensors(t, meta);
  };
  await assert.rejects(loadClassifier(rebuild("fc.bias", { ...src.metadata }), backend), /fc\.bias/);
  await assert.rejects(loadClassifier(rebuild("", { format: "dic-sdk-classifier/1" }), backend), /config is missing/);
  const clf = await loadClassifier(rebuild("", { ...src.metadata }), backend);
  await assert.rejects(clf.classify({ shape: [1, 1, 12, 12], data: new Float32Array(144) }), /expected \[N, 2, 12, 12\]/);
});

const frechetCases = JSON.parse((await readSafetensorsFile(`${fixturesDir}frechet.safetensors`)).metadata.cases) as string[];
for (const c of frechetCases) {
  test(`frechet: ${c} matches numpy (mean, covariance, distance)`, async () => {
    const { tensor, f64 } = await fixture("frechet.safetensors");
    const a = featureStats(tensor(`${c}_a`)), b = featureStats(tensor(`${c}_b`));
    const close = (got: ArrayLike<number>, want: Float64Array, what: string) => {
      const e = relL2(got, want);
      assert.ok(e <= FRECHET_REL, `${c}: ${what} relL2 ${e}`);
    };
    close(a.mean, f64(`${c}_mean_a`), "mean a");
    close(a.cov, f64(`${c}_cov_a`), "cov a");
    close(b.cov, f64(`${c}_cov_b`), "cov b");
    const want = f64(`${c}_fd`)[0];
    const got = frechetDistance(a, b);
    // Cancellation in Tr(S1) + Tr(S2) - 2 Tr sqrt: error scales with the traces, not with the distance.
    let scale = 0;
    for (let i = 0; i < a.d; i++) scale += a.cov[i * a.d + i] + b.cov[i * b.d + i];
    // A singular covariance has zero eigenvalues that both sides compute as +-eps * norm, and their square
    // roots are then ~sqrt(eps) * norm: no method does better, so that case gets a sqrt(eps) tolerance.
    const tol = (c === "singular" ? Math.sqrt(Number.EPSILON) : FRECHET_REL) * scale;
    console.log(`frechet ${c}: ${got} vs numpy ${want} (traces ${scale.toFixed(2)}, tolerance ${tol.toExponential(1)})`);
    assert.ok(Math.abs(got - want) <= tol, `${c}: ${got} vs ${want}`);
    assert.ok(Math.abs(frechetDistance(b, a) - got) <= tol, `${c}: not symmetric`);
    assert.ok(Math.abs(frechetDistance(a, a)) <= tol, `${c}: d(a, a) = ${frechetDistance(a, a)}`);
  });
}

test("frechet: Jacobi eigendecomposition reconstructs a matrix with repeated and zero eigenvalues", () => {
  // A = Q diag(3, 3, 0, -1, 1e-12) Q^T with Q a product of plane rotations.
  const d = 5, lam = [3, 3, 0, -1, 1e-12];
  const q = new Float64Array(d * d);
  for (let i = 0; i < d; i++) q[i * d + i] = 1;
  for (const [p, r, th] of [[0, 1, 0.3], [1, 3, 1.1], [2, 4, -0.7], [0, 4, 2.0]] as const) {
    const c = Math.cos(th), s = Math.sin(th);
    for (let k = 0; k < d; k++) {
      const a = q[k * d + p], b = q[k * d + r];
      q[k * d + p] = c * a - s * b;
      q[k * d + r] = s * a + c * b;
    }
  }
  const m = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) m[i * d + j] += q[i * d + k] * lam[k] * q[j * d + k];
  const { values, vectors } = symmetricEigen(m, d);
  assert.deepEqual([...values].sort((x, y) => x - y).map((v) => Math.round(v * 1e9) / 1e9), [-1, 0, 0, 3, 3]);
  const back = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) back[i * d + j] += vectors[i * d + k] * values[k] * vectors[j * d + k];
  assert.ok(relL2(back, m) <= 1e-14, `reconstruction relL2 ${relL2(back, m)}`);
});
