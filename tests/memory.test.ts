// Memory budget and storage modes end to end: `--memory-budget MB` on the CLI, `memoryBudget` on loadVAE,
// and what `dic forward --verbose` prints (weight bytes by storage form, activation peak, scratch).
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../sdk/cli.ts";
import { loadVAE } from "../sdk/vae.ts";
import { probeWasm } from "../src/backend/wasm/index.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { writeSafetensors } from "../src/weights/safetensors.ts";
import { fixturesDir, relL2, runtimeName, test } from "./harness.ts";
import { COMPACT_F16_VS_JS_FORWARD, COMPACT_INT8_VS_JS_FORWARD, FAST_F32_VS_JS, JS_VS_TORCH_FORWARD } from "./tolerances.ts";
import type { Backend } from "../src/backend/contract.ts";
import { createWasmBackend } from "../src/backend/wasm/index.ts";
import { loadModel } from "../sdk/model.ts";

const dir = mkdtempSync(join(tmpdir(), "dic-memory-"));
const weights = `${fixturesDir}forward_odd_weights.safetensors`;
const inputs = `${fixturesDir}forward_odd_inputs.safetensors`;
const why = probeWasm();
const wasmTest = why ? (_name: string, _fn: () => unknown) => console.log(`memory [${runtimeName}]: not run: ${why}`) : test;

async function run(args: string[]): Promise<{ code: number; err: string[] }> {
  const err: string[] = [];
  const code = await runCli(args, { out: () => {}, err: (l) => err.push(l) });
  return { code, err };
}

wasmTest(`memory [${runtimeName}]: dic forward --memory-budget stores weights compactly, prints what memory holds, and refuses a budget too small`, async () => {
  const out = join(dir, "out.safetensors");
  const r = await run(["forward", "--model", weights, "--inputs", inputs, "--out", out, "--backend", "wasm", "--threads", "1", "--memory-budget", "1.5", "--verbose"]);
  assert.equal(r.code, 0, r.err.join("\n"));
  const text = r.err.join("\n");
  assert.match(text, /memory budget 1\.5 MiB/);
  assert.match(text, /weights .*f16 [\d.]+ MiB/);
  assert.match(text, /activation peak [\d.]+ MiB; expansion scratch [\d.]+ MiB; memory [\d.]+ MiB of a 1\.50 MiB budget/);
  const want = (await readSafetensorsFile(`${fixturesDir}forward_odd_out.safetensors`)).getF32("out");
  const err = relL2((await readSafetensorsFile(out)).getF32("out"), want);
  assert.ok(err <= COMPACT_F16_VS_JS_FORWARD, `relative L2 ${err}`);
  const small = await run(["forward", "--model", weights, "--inputs", inputs, "--out", out, "--backend", "wasm", "--threads", "1", "--memory-budget", "0.3"]);
  assert.equal(small.code, 1);
  assert.equal(small.err.length, 1, small.err.join("\n"));
  assert.match(small.err[0], /needs [\d.]+ MiB.*\[memory_budget_too_small\]/);
  const bad = await run(["forward", "--model", weights, "--inputs", inputs, "--out", out, "--memory-budget", "0"]);
  assert.equal(bad.code, 1);
  assert.match(bad.err[0], /--memory-budget: expected a number of MiB > 0/);
});

wasmTest(`memory [${runtimeName}]: loadVAE under a memory budget decodes within it, matching the unbudgeted decode`, async () => {
  const path = `${fixturesDir}vae_small_weights.safetensors`;
  const io = await readSafetensorsFile(`${fixturesDir}vae_small_io.safetensors`);
  const z = { shape: [...io.tensors.get("latent")!.shape], data: io.getF32("latent") };
  const ref = await loadVAE(path, { backend: "wasm" });
  const want = (await ref.decode(z)).image.data;
  const fastBytes = ref.backend.storageReport!().committedBytes;
  const budget = Math.floor(fastBytes * 0.8);
  const vae = await loadVAE(path, { backend: "wasm", memoryBudget: budget });
  const got = (await vae.decode(z)).image.data;
  const r = vae.backend.storageReport!();
  console.log(`memory [${runtimeName}]: VAE fixture: fast ${fastBytes} bytes, budget ${budget}: ${JSON.stringify(r)}`);
  assert.ok(r.committedBytes <= budget, `${r.committedBytes} > ${budget}`);
  assert.ok(relL2(got, want) <= COMPACT_F16_VS_JS_FORWARD, `relative L2 ${relL2(got, want)}`);
});

test(`memory [${runtimeName}]: an int8 file from reference/convert_checkpoint.py --dtype int8 runs on js and wasm like PyTorch's dequantized model`, async () => {
  const path = `${fixturesDir}convert_ema_int8.safetensors`;
  const file = await readSafetensorsFile(path);
  assert.equal(file.metadata.quantization, "int8-per-channel");
  assert.ok([...file.tensors.values()].some((e) => e.dtype === "I8"), "has I8 tensors");
  assert.ok(![...file.tensors.keys()].some((k) => k.endsWith("_scale")), "scales are hidden from the tensor table");
  const io = await readSafetensorsFile(`${fixturesDir}convert_inputs.safetensors`);
  const want = (await readSafetensorsFile(`${fixturesDir}convert_int8_out.safetensors`)).getF32("out");
  const x = { shape: [...io.tensors.get("x")!.shape], data: io.getF32("x") };
  const backends: [string, () => Promise<Backend | "js">, number][] = [["js", async () => "js" as const, JS_VS_TORCH_FORWARD]];
  // wasm fast: the int8 convolutions dequantized into Winograd form, exact up to f32; wasm int8: kept as
  // int8, and its linear weights quantized too (COMPACT_INT8_VS_JS_FORWARD).
  if (!why) backends.push(["wasm fast", () => createWasmBackend({ storage: "fast" }), FAST_F32_VS_JS], ["wasm int8", () => createWasmBackend({ storage: "int8" }), COMPACT_INT8_VS_JS_FORWARD]);
  for (const [label, make, tol] of backends) {
    const model = await loadModel(path, { backend: await make() });
    const out = await model.forward(x, io.getF32("t"), io.getF32("y"));
    const err = relL2(out.data, want);
    console.log(`memory [${runtimeName}]: python int8 file on ${label}: relative L2 vs torch ${err.toExponential(2)}`);
    assert.ok(err <= tol, `${label}: ${err} > ${tol}`);
  }
});

wasmTest(`memory [${runtimeName}]: dic decode --memory-budget decodes under the budget (tiled to what it keeps for activations)`, async () => {
  const io = await readSafetensorsFile(`${fixturesDir}vae_small_io.safetensors`);
  const latents = join(dir, "latents.safetensors");
  writeFileSync(latents, writeSafetensors({ x: { dtype: "F32", shape: [...io.tensors.get("latent")!.shape], data: io.getF32("latent") } }));
  const out = join(dir, "decoded.png");
  const r = await run(["decode", "--vae", `${fixturesDir}vae_small_weights.safetensors`, "--latents", latents, "--out", out, "--backend", "wasm", "--memory-budget", "16"]);
  assert.equal(r.code, 0, r.err.join("\n"));
  const small = await run(["decode", "--vae", `${fixturesDir}vae_small_weights.safetensors`, "--latents", latents, "--out", out, "--backend", "wasm", "--memory-budget", "1"]);
  assert.equal(small.code, 1);
  assert.match(small.err[0], /memory_budget/);
});
