// CI quality gate (issue 6, item 6): the shipped model generates a few images per class and the classifier
// (models/fashion-classifier.safetensors) must recognise the requested class, so a broken sampler, guidance
// or model cannot pass silently. Skips nothing: a missing model fails. DIC_QUALITY_MODEL=path tests another file.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { generate } from "../sdk/generate.ts";
import { loadModel } from "../sdk/model.ts";
import { createBackend } from "../src/backend/registry.ts";
import { readEnv } from "../src/env.ts";
import { accuracy, argmaxRows, asStoredPixels, loadClassifier } from "../bench/lib/classifier.ts";
import { runtimeName, test } from "./harness.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MODEL = readEnv("DIC_QUALITY_MODEL") || `${ROOT}models/dic-fashion.safetensors`;
const CLASSIFIER = `${ROOT}models/fashion-classifier.safetensors`;

// Cost: 20 images x 5 steps x 2 (guidance doubles the batch) = 200 image-forwards of the 116 MMAC model:
// measured on the js backend 29 s (bun), 42 s (node), 50 s (deno) on a busy 2-core machine; ~2 s on wasm.
// Guidance and the few-step solver make so few images and steps informative. Measured over 10 seeds
// (20 images each): checkpoint step 3099 (28% of training) mean 0.895, min 0.75; step 4707 mean 0.945,
// min 0.90; uniform noise 0.10. With SEED 1234: 0.90 and 0.95.
const PER_CLASS = 2;
const SAMPLER = "dpmpp2m";
const STEPS = 5;
const CFG_SCALE = 2;
const SEED = 1234;
/** At least 16 of 20. Without guidance (dpmpp2m 6 steps, cfg 1) step 3099 scored 0.695; noise 0.1. */
const MIN_ACCURACY = 0.8;
/** Unclipped samples overshoot [-1, 1] at a few pixels (measured 0.1%); a diverging run everywhere. */
const MAX_FRACTION_BEYOND_1_5 = 0.01;
/** Uniform noise must score near chance (1 / num_classes). */
const MAX_NOISE_ACCURACY = 0.3;

test("quality: generated images are recognised as the requested class", async () => {
  assert.ok(existsSync(MODEL), `quality gate: model ${MODEL} does not exist. Ship models/dic-fashion.safetensors ` +
    `(reference/export_model.py) or point DIC_QUALITY_MODEL at a model file.`);
  assert.ok(existsSync(CLASSIFIER), `quality gate: classifier ${CLASSIFIER} does not exist (reference/train_classifier.py)`);
  const { backend, reason } = await createBackend();
  const clf = await loadClassifier(CLASSIFIER, backend);
  const model = await loadModel(MODEL, { backend });
  const k = model.config.num_classes;
  assert.equal(k, clf.config.num_classes, "model and classifier disagree on the number of classes");
  const labels = Array.from({ length: PER_CLASS * k }, (_, i) => i % k);

  const t0 = performance.now();
  const r = await generate({ model, labels, steps: STEPS, sampler: SAMPLER, cfgScale: CFG_SCALE, seed: SEED });
  const genS = (performance.now() - t0) / 1000;
  const { shape, data } = r.latents;
  assert.deepEqual(shape, [labels.length, clf.config.in_channels, clf.config.input_size, clf.config.input_size]);
  let beyond = 0, lo = Infinity, hi = -Infinity;
  for (const v of data) {
    assert.ok(Number.isFinite(v), "generated images hold NaN or infinity");
    if (Math.abs(v) > 1.5) beyond++;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const frac = beyond / data.length;
  assert.ok(frac <= MAX_FRACTION_BEYOND_1_5, `${(frac * 100).toFixed(2)}% of the pixels lie beyond +-1.5 (range [${lo}, ${hi}])`);

  // Scored as an image file stores them (clamped to [-1, 1], 8-bit), like the real data the classifier knows.
  const { logits } = await clf.classify(asStoredPixels(r.latents));
  const acc = accuracy(logits, labels);
  const pred = argmaxRows(logits);
  const names = clf.classNames;
  const misses = labels.flatMap((l, i) => (pred[i] === l ? [] : [`${names[l]} -> ${names[pred[i]]}`]));
  console.log(`quality [${runtimeName}, ${reason}]: ${labels.length} images, ${SAMPLER} ${STEPS} steps, cfg ${CFG_SCALE}: ` +
    `${genS.toFixed(1)} s; values in [${lo.toFixed(2)}, ${hi.toFixed(2)}], ${(frac * 100).toFixed(2)}% beyond +-1.5; accuracy ${(acc.overall * 100).toFixed(0)}% (model ${MODEL}, train_steps ${model.metadata.train_steps ?? "?"})` +
    (misses.length ? `; misses: ${misses.join(", ")}` : ""));
  assert.ok(acc.overall >= MIN_ACCURACY, `accuracy of the requested class ${acc.overall} < ${MIN_ACCURACY} (misses: ${misses.join(", ")})`);

  // Control: the gate can fail. Uniform noise in [-1, 1] (what a sampler that does nothing would return,
  // roughly) must not be "recognised" as the requested classes.
  let state = SEED;
  const noise = Float32Array.from(data, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0; // LCG: deterministic, no Math.random
    return (state / 2 ** 32) * 2 - 1;
  });
  const control = accuracy((await clf.classify({ shape: [...shape], data: noise })).logits, labels).overall;
  console.log(`quality control: uniform noise scores ${(control * 100).toFixed(0)}%`);
  assert.ok(control <= MAX_NOISE_ACCURACY, `noise images score ${control} > ${MAX_NOISE_ACCURACY}: the classifier cannot tell`);
});
