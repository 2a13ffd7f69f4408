// Generation settings: one validator (src/settings.ts) behind generate(), the CLI, the edge and the host.
// Unknown keys and wrong types are refused with a DicError carrying a stable code and the field; a missing
// label is an error and label: null an explicit unconditional sample; backend is honoured or refused.
// Also: what the public API exports (backend creation with its options, DicError, the bounds).
import assert from "node:assert/strict";
import * as sdk from "../sdk/index.ts";
import { createBackend, DicError, DownloadError, generate, loadDefaultModel, loadModel, ProtocolError, WeightsError } from "../sdk/index.ts";
import { CFG_SCALE_MAX, checkNumberSetting, didYouMean, validateSettings } from "../src/settings.ts";
import { fixturesDir, test } from "./harness.ts";

/** Runs `p` and returns the DicError it rejects with (failing when it resolves or throws something else). */
async function refusal(p: Promise<unknown>): Promise<DicError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof DicError, `not a DicError: ${(e as Error).stack ?? e}`);
    return e;
  }
  assert.fail("expected a refusal");
}

test("generate() refuses unknown keys and wrong types with a code and the field", async () => {
  const model = await loadDefaultModel("js");
  const cases: [Record<string, unknown>, string, string, RegExp][] = [
    [{ lable: "bag" }, "unknown_option", "lable", /unknown option "lable" \(did you mean "label"\?\)/],
    [{ label: "bag", stpes: 2 }, "unknown_option", "stpes", /did you mean "steps"/],
    [{ label: "bag", steps: "5" }, "bad_type", "steps", /steps: expected an integer in 1\.\.1000, got the string "5"/],
    [{ label: "bag", steps: 0 }, "out_of_range", "steps", /steps: expected an integer in 1\.\.1000, got 0/],
    [{ label: "bag", steps: 2.5 }, "out_of_range", "steps", /got 2\.5/],
    [{ label: true }, "bad_type", "label", /label: expected a class index or name .*got true \(a boolean\)/],
    [{ labels: [1, {}] }, "bad_type", "labels[1]", /labels\[1\]: .*got an object/],
    [{ labels: [] }, "bad_value", "labels", /labels: is empty/],
    [{ label: 1, labels: [2] }, "conflicting_options", "label", /label or labels, not both/],
    [{ label: "hat" }, "bad_value", "label", /unknown label "hat"; valid names: .*"Bag"/],
    [{ label: 10 }, "out_of_range", "label", /label 10 outside 0\.\.9/],
    [{ label: -1 }, "out_of_range", "label", /class index/],
    [{ label: "bag", sampler: "euler" }, "bad_value", "sampler", /sampler: unknown "euler".*valid: ddpm, ddim, dpmpp2m/],
    [{ label: "bag", sampler: "dim" }, "bad_value", "sampler", /did you mean "ddim"/],
    [{ label: "bag", cfgMode: 1 }, "bad_type", "cfgMode", /cfgMode: expected one of reference, standard/],
    [{ label: "bag", cfgScale: -1 }, "out_of_range", "cfgScale", new RegExp(`cfgScale: expected a number in \\[0, ${CFG_SCALE_MAX}\\], got -1`)],
    [{ label: "bag", cfgScale: CFG_SCALE_MAX + 1 }, "out_of_range", "cfgScale", /cfgScale/],
    [{ label: "bag", eta: 2 }, "out_of_range", "eta", /eta: expected a number in \[0, 1\]/],
    [{ label: "bag", seed: -5 }, "out_of_range", "seed", /seed: expected a non-negative integer/],
    [{ label: "bag", seed: "7" }, "bad_type", "seed", /the string "7"/],
    [{ label: "bag", onProgress: "yes" }, "bad_type", "onProgress", /onProgress: expected a function/],
    [{ label: "bag", vaeMemoryBudget: -1 }, "bad_type", "vaeMemoryBudget", /vaeMemoryBudget/],
    [{ label: "bag", fallbackOnDeviceLoss: 1 }, "bad_type", "fallbackOnDeviceLoss", /a boolean/],
  ];
  for (const [opts, code, field, re] of cases) {
    const e = await refusal(generate({ model, steps: 1, ...opts } as sdk.GenerateOptions));
    assert.equal(e.code, code, `${JSON.stringify(opts)}: ${e.message}`);
    assert.equal(e.field, field, `${JSON.stringify(opts)}: ${e.message}`);
    assert.match(e.message, re, JSON.stringify(opts));
    assert.match(e.message, /^generate: /);
  }
});

test("a missing label is an error, never a silent class 0; label: null is an explicit unconditional sample", async () => {
  const model = await loadDefaultModel("js");
  for (const opts of [{}, { steps: 2 }, { label: undefined }]) {
    const e = await refusal(generate({ model, ...opts }));
    assert.equal(e.code, "missing_label");
    assert.equal(e.field, "label");
    assert.match(e.message, /label: missing; give label .*"T-shirt\/top".*label: null for an unconditional sample/);
  }
  const r = await generate({ model, label: null, steps: 2, seed: 3 });
  assert.deepEqual(r.labels, [model.config.num_classes], "the null class is reported");
  assert.equal(r.images[0].unconditional, true);
  assert.equal(r.images[0].labelName, null);
  assert.equal(r.images[0].label, model.config.num_classes);
  const mixed = await generate({ model, labels: ["bag", null], steps: 2, seed: 3 });
  assert.deepEqual(mixed.images.map((i) => [i.label, i.unconditional]), [[8, false], [10, true]]);
  // A model trained without the null class cannot sample unconditionally, nor guide.
  const noNull = await loadModel(`${fixturesDir}dic_sampling_weights.safetensors`, { backend: "js", config: { num_classes: 6, class_dropout_prob: 0 } }); // its 6-row tables, read as 6 classes and no null class
  assert.equal((await refusal(generate({ model: noNull, label: null, steps: 1 }))).code, "no_null_class");
  assert.equal((await refusal(generate({ model: noNull, label: 1, steps: 1, cfgScale: 2 }))).code, "no_null_class");
});

test("generate({ model, backend }) honours the backend or refuses clearly", async () => {
  const model = await loadDefaultModel("js");
  const r = await generate({ model, backend: "js", label: "bag", steps: 1, seed: 1 });
  assert.match(r.backend, /^js/);
  await generate({ model, backend: "auto", label: "bag", steps: 1, seed: 1 }); // auto: whatever the model runs on
  await generate({ model, backend: model.backend, label: "bag", steps: 1, seed: 1 });
  const e = await refusal(generate({ model, backend: "wasm", label: "bag", steps: 1 }));
  assert.equal(e.code, "backend_mismatch");
  assert.equal(e.field, "backend");
  assert.match(e.message, /backend "wasm" was given, but the model runs on js; load it there/);
  const other = (await createBackend("js")).backend;
  assert.equal((await refusal(generate({ model, backend: other, label: "bag", steps: 1 }))).code, "backend_mismatch");
});

test("the SDK's errors are DicErrors with their codes", async () => {
  assert.ok(new WeightsError("truncated", "f", "x") instanceof DicError);
  assert.equal(new WeightsError("truncated", "f", "x").code, "truncated");
  assert.equal(new WeightsError("truncated", "f", "x").name, "WeightsError");
  assert.ok(new DownloadError("http", "u", "x") instanceof DicError);
  const p = new ProtocolError("busy", "x");
  assert.ok(p instanceof DicError);
  assert.equal(p.code, "busy");
  assert.equal(p.status, 503);
  const e = await refusal(loadModel(new Uint8Array(3), { backend: "js" }));
  assert.equal(e.code, "truncated");
});

test("the validator is shared: text sources take decimal strings, every bound in one place", () => {
  assert.equal(checkNumberSetting("steps", "5", { text: true }), 5);
  assert.throws(() => checkNumberSetting("steps", "5"), (e: DicError) => e.code === "bad_type");
  assert.throws(() => checkNumberSetting("steps", "-3", { text: true, names: { steps: "--steps" } }),
    (e: DicError) => e.code === "out_of_range" && e.field === "--steps" && /--steps: expected an integer in 1\.\.1000, got "-3"/.test(e.message));
  assert.throws(() => validateSettings({ cfgScale: "abc" }, { text: true, names: { cfgScale: "guidance" } }),
    (e: DicError) => e.code === "bad_type" && e.field === "guidance");
  assert.deepEqual(validateSettings({ labels: ["bag", 3], steps: "4", sampler: "ddim" }, { text: true }), { labels: ["bag", 3], steps: 4, sampler: "ddim" });
  assert.equal(didYouMean("lable", ["label", "labels", "steps"]), "label");
  assert.equal(didYouMean("zzzzzz", ["label", "steps"]), null);
});

test("the public API exports backend creation with its options, and the documented names", async () => {
  for (const name of ["createBackend", "createWasmBackend", "createWebGpuBackend", "BACKEND_NAMES", "DicError", "validateSettings", "CFG_SCALE_MAX", "VERSION", "listBackends"]) {
    assert.ok(name in sdk, `dic-sdk exports ${name}`);
  }
  assert.deepEqual([...sdk.BACKEND_NAMES], ["auto", "js", "wasm", "webgpu"]);
  const { backend } = await sdk.createBackend("wasm", { threads: 1 });
  assert.match(backend.description, /1 thread|single/i);
  const w = await sdk.createWasmBackend({ threads: 1 });
  assert.equal(w.name, "wasm");
  // loadModel takes the backend's options too.
  const m = await loadModel(`${fixturesDir}dic_sampling_weights.safetensors`, { backend: "wasm", threads: 1 });
  assert.equal(m.backend.name, "wasm");
  (m.backend as { close?: () => void }).close?.();
  await assert.rejects(loadModel(`${fixturesDir}dic_sampling_weights.safetensors`, { backend: w, threads: 2 }), /threads and f16 configure a backend that is created/);
  w.close?.();
  (backend as { close?: () => void }).close?.();
});

test("the edge's HTTP API checks its settings with the same validator: a missing label is refused", async () => {
  const { createEdgeHandler, loadServingModel } = sdk;
  const edge = await createEdgeHandler({ model: await loadServingModel(undefined, "js"), upstreams: ["http://127.0.0.1:9"], secret: "a-long-random-shared-secret" });
  const cases: [string, RegExp][] = [
    ["", /^labels: missing; give one or more class names or indices/],
    ["label=", /^labels\[0\]: expected a class index or name/],
    ["label=bag&steps=5x", /^steps: expected an integer in 1\.\.1000, got the string "5x"$/],
    ["label=bag&steps=-3", /^steps: expected an integer in 1\.\.1000, got "-3"$/],
    ["label=bag&guidance=101", new RegExp(`^guidance: expected a number in \\[0, ${CFG_SCALE_MAX}\\], got "101"$`)],
    ["label=bag&cfg_scale=-1", /^cfg_scale: expected a number in \[0, 100\]/],
    ["label=bag&sampler=dim", /^sampler: unknown "dim" \(did you mean "ddim"\?\)/],
    ["label=bag&cfg_mode=all", /^cfg_mode: unknown "all"/],
    ["label=bag&seed=-1", /^seed: expected a non-negative integer/],
    ["label=hat", /^labels: unknown label "hat"/],
  ];
  for (const [q, re] of cases) {
    const res = await edge(new Request(`http://edge.test/v1/generate?${q}`));
    assert.equal(res.status, 422, q);
    const body = await res.json();
    assert.equal(body.code, "bad_request", q);
    assert.match(body.message, re, q);
  }
});
