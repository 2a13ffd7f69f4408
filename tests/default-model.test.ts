// The embedded default model: loads with nothing to download, generates images of the right shape
// and range by class name, and the same seed gives the same image on every runtime and backend
// (compared with a golden sample committed in tests/golden/, written by tests/golden/make-golden.ts).
import assert from "node:assert/strict";
import { generate, listBackends, loadDefaultModel } from "../sdk/index.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { relL2, runtimeName, test } from "./harness.ts";
import { SAMPLER_TRAJECTORY } from "./tolerances.ts";
import { GOLDEN } from "./golden/golden-settings.ts";

test("the default model loads from the package and names its classes", async () => {
  const model = await loadDefaultModel("js");
  assert.equal(model.config.in_channels, 1);
  assert.equal(model.config.input_size, 28);
  assert.equal(model.classNames?.length, 10);
  assert.equal(model.resolveLabel("sneaker"), 7);
  assert.equal(model.resolveLabel("T-shirt"), 0);
  assert.equal(model.resolveLabel("ankle boot"), 9);
  assert.throws(() => model.resolveLabel("hat"), /unknown label "hat"; valid names: "T-shirt\/top"/);
  assert.deepEqual(model.pixelRange, [-1, 1]);
  assert.ok(model.samplingDefaults.sampler, "the model carries measured sampling defaults");
});

test("generate({ label }) returns an RGBA image with a PNG encoder", async () => {
  const model = await loadDefaultModel();
  const r = await generate({ label: "trouser", seed: 3 }); // the model's measured sampling defaults
  assert.equal(r.images.length, 1);
  const img = r.images[0];
  assert.equal(img.width, 28);
  assert.equal(img.height, 28);
  assert.equal(img.data.length, 28 * 28 * 4);
  assert.equal(img.labelName, "Trouser");
  for (let i = 3; i < img.data.length; i += 4) assert.equal(img.data[i], 255);
  const png = await img.toPNG();
  assert.deepEqual(Array.from(png.subarray(0, 8)), [137, 80, 78, 71, 13, 10, 26, 10]);
  const lo = Math.min(...r.latents.data), hi = Math.max(...r.latents.data);
  assert.ok(hi <= 3 && lo >= -3, `samples stay near [-1, 1], got [${lo}, ${hi}]`);
  assert.equal(r.sampler, model.samplingDefaults.sampler);
});

const backends = (await listBackends()).filter((b) => b.available).map((b) => b.name);
for (const backend of backends) {
  test(`the same seed gives the golden image on ${runtimeName}/${backend}`, async () => {
    const golden = await readSafetensorsFile(new URL("./golden/default-model.safetensors", import.meta.url).pathname);
    const model = await loadDefaultModel(backend);
    const r = await generate({ model, ...GOLDEN });
    const err = relL2(r.latents.data, golden.getF32("x"));
    console.log(`default model golden on ${runtimeName}/${backend}: relative L2 ${err.toExponential(2)}`);
    assert.ok(err <= SAMPLER_TRAJECTORY, `relative L2 ${err}`);
  });
}

test("dic generate writes labelled PNGs, scaled and as a grid", async () => {
  const { mkdtempSync, readFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { runCli } = await import("../sdk/cli.ts");
  const dir = mkdtempSync(`${tmpdir()}/dic-generate-`);
  const size = (path: string) => {
    const b = readFileSync(path);
    return [b.readUInt32BE(16), b.readUInt32BE(20)];
  };
  const errs: string[] = [];
  const io = { out: () => {}, err: (l: string) => errs.push(l) };
  assert.equal(await runCli(["generate", "--label", "bag", "--label", "3", "--steps", "3", "--seed", "1", "--scale", "4", "--out", `${dir}/x.png`], io), 0, errs.join("\n"));
  assert.deepEqual(size(`${dir}/x-1.png`), [112, 112]);
  assert.deepEqual(size(`${dir}/x-2.png`), [112, 112]);
  assert.equal(await runCli(["generate", "--grid", "--steps", "2", "--seed", "1", "--out", `${dir}/grid.png`], io), 0, errs.join("\n"));
  const [w, h] = size(`${dir}/grid.png`);
  assert.ok(w > 10 * 28 * 3 && h > 28 * 3, `grid ${w}x${h}`);
  assert.equal(await runCli(["generate", "--label", "hat", "--out", `${dir}/y.png`], io), 1);
  assert.match(errs[errs.length - 1], /unknown label "hat"/);
  assert.equal(await runCli(["generate", "--label", "bag", "--out", `${dir}/y.jpg`], io), 1);
  assert.match(errs[errs.length - 1], /must end in \.png/);
});
