// What is specific to the webgpu backend (the shared op suite and the forward parity run on it anyway
// wherever an adapter exists): adapter reporting and auto selection, odd shapes and every pre-op form vs
// js, layers split to fit the storage-binding limit, the VAE ops (nearest upsampling, attention, SiLU
// pre-op) vs plain TypeScript, errors naming the op, device loss, memory reuse across forwards, and
// `dic forward --backend webgpu` as a Deno process vs the PyTorch fixture, and bench/gpu --dry.
//
// Runs under Deno on any adapter (CI: Mesa's lavapipe, installed by .ci/setup). Under Node and Bun it
// runs where the `webgpu` npm package finds an adapter, and is skipped (saying why) where none exists.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NormPreOp, Tensor } from "../src/backend/contract.ts";
import { JsBackend } from "../src/backend/js/index.ts";
import { gelu, silu } from "../src/backend/js/gelu.ts";
import { createBackend } from "../src/backend/registry.ts";
import { createWebGpuBackend, probeWebGpu, webGpuAdapterFacts, type WebGpuBackend, WebGpuDeviceLostError } from "../src/backend/webgpu/index.ts";
import { f16BitsToF32 as fromHalf, f32ToF16Bits as toHalf } from "../src/f16.ts";
import { batchChunks } from "../src/backend/webgpu/runtime.ts";
import { GaussianRng } from "../src/rng.ts";
import { numel } from "../src/tensor.ts";
import { generate } from "../sdk/generate.ts";
import { loadModel } from "../sdk/model.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { fixturesDir, relL2, runtimeCommand, runtimeName, test } from "./harness.ts";
import { F16_VS_JS, FAST_F32_VS_JS } from "./tolerances.ts";

const why = await probeWebGpu();
// NOTE: Deno always has navigator.gpu; there a missing adapter is a broken setup (no Mesa Vulkan driver), not a skip.
const run = why === null || runtimeName === "deno";
if (!run) console.log(`webgpu [${runtimeName}]: not run: ${why} (Deno runs these tests on any adapter, e.g. Mesa lavapipe)`);
const gpuTest = run ? test : (_name: string, _fn: () => unknown) => {};

const rng = new GaussianRng(4242);
const rand = (shape: number[], scale = 1) => ({ shape, data: rng.fill(new Float32Array(numel(shape))).map((v) => v * scale) });
let shared: WebGpuBackend | null = null;
async function gpu(): Promise<WebGpuBackend> {
  if (why !== null) throw new Error(`webgpu: no adapter under ${runtimeName}: ${why} (CI installs mesa-vulkan-drivers for lavapipe)`);
  shared ??= await createWebGpuBackend();
  return shared;
}

gpuTest(`webgpu [${runtimeName}]: names its adapter, and auto passes over a software adapter`, async () => {
  const b = await gpu();
  console.log(`webgpu [${runtimeName}]: ${b.description}`);
  assert.match(b.description, b.fallbackAdapter ? /fallback \(software\) adapter/ : /hardware adapter/);
  const auto = await createBackend("auto");
  if (b.fallbackAdapter && auto.reason.includes("auto")) {
    assert.notEqual(auto.backend.name, "webgpu", auto.reason);
    assert.match(auto.reason, /software/);
  }
  const explicit = await createBackend("webgpu");
  assert.equal(explicit.backend.name, "webgpu");
  (explicit.backend as WebGpuBackend).destroy();
  if (b.fallbackAdapter) await assert.rejects(createWebGpuBackend({ allowFallback: false }), /fallback/);
});

gpuTest(`webgpu [${runtimeName}]: conv3x3 (both kernels) / conv1x1 / linear with every pre-op form at odd shapes match js`, async () => {
  for (const path of ["gemm", "rows"] as const) {
  const b = await createWebGpuBackend({ conv3x3: path });
  assert.equal(b.conv3x3Path, path);
  const js = new JsBackend();
  let worst = 0;
  const shapes = [[1, 3, 5, 1, 1], [2, 5, 7, 2, 3], [3, 6, 9, 5, 7], [1, 12, 20, 9, 9], [2, 18, 6, 6, 11], [1, 36, 33, 4, 4], [2, 70, 37, 3, 5]];
  for (const [n, ci, co, h, w] of shapes) {
    const hx = [rand([n, ci, h, w]), rand([co, ci, 3, 3], 0.2), rand([co]), rand([n, 3 * ci]), rand([ci]), rand([ci]), rand([co, ci, 1, 1], 0.3), rand([co, ci], 0.3), rand([n, ci])];
    const groups = ci % 3 === 0 ? 3 : 1;
    const runOn = async (be: WebGpuBackend | JsBackend) => {
      const [x, wt, bias, cond, nw, nb, w1, wl, xl] = hx.map((t) => be.upload(t));
      const pres: (NormPreOp | undefined)[] = [
        undefined,
        { norm: "group", groups, eps: 1e-5, weight: nw, bias: nb, act: "gelu" },
        { norm: "group", groups, eps: 1e-5, modulate: { scale: { tensor: cond, offset: ci }, shift: { tensor: cond, offset: 2 * ci } }, act: "gelu" },
        { norm: "layer", eps: 1e-6, modulate: { scale: { tensor: cond, offset: 1 }, shift: { tensor: cond, offset: 0 } }, act: "none" },
      ];
      const outs: Tensor[] = pres.map((p) => be.conv3x3(x, wt, bias, p));
      outs.push(be.conv1x1(x, w1, bias), be.normalize(x, pres[2]!));
      outs.push(be.linear(xl, wl, bias, "silu"));
      const host = [];
      for (const o of outs) host.push((await be.download(o)).data);
      return host;
    };
    const [got, want] = [await runOn(b), await runOn(js)];
    got.forEach((g, i) => {
      const e = relL2(g, want[i]);
      worst = Math.max(worst, e);
      assert.ok(e <= FAST_F32_VS_JS, `[${n}, ${ci}, ${h}, ${w}] -> ${co}, case ${i}: relative L2 ${e}`);
    });
  }
  console.log(`webgpu [${runtimeName}]: conv3x3 ${path}: worst relative L2 vs js over ${shapes.length} shapes x 7 ops ${worst.toExponential(2)}`);
  b.destroy();
  }
});

gpuTest(`webgpu [${runtimeName}]: layers larger than the storage-binding limit are split by batch and give the same result`, async () => {
  assert.deepEqual(batchChunks(5, [1024, 512], 1 << 20, 256), [[0, 5]]);
  assert.deepEqual(batchChunks(5, [1024, 512], 2048, 256), [[0, 2], [2, 2], [4, 1]]);
  assert.deepEqual(batchChunks(64, [1000], 32000, 256), [[0, 32], [32, 32]]); // 1000-byte samples align every 32
  assert.throws(() => batchChunks(2, [4096], 1024, 256), /maxStorageBufferBindingSize/);
  const b = await createWebGpuBackend();
  const [n, c, h, w] = [5, 8, 16, 16];
  const hx = [rand([n, c, h, w]), rand([2, c, 3, 3], 0.2), rand([n, 2 * c]), rand([n, c, h, w])];
  const runOnce = async () => {
    const [x, wt, cond, y] = hx.map((t) => b.upload(t));
    const pre: NormPreOp = { norm: "group", groups: 2, eps: 1e-5, modulate: { scale: { tensor: cond, offset: 0 }, shift: { tensor: cond, offset: c } }, act: "gelu" };
    const outs = [b.conv3x3(x, wt, null, pre), b.normalize(x, { norm: "layer", eps: 1e-6, act: "none" }), b.gateAdd(x, { tensor: cond, offset: 3 }, y),
      b.concat(x, y), b.pixelUnshuffle(x, 2)];
    const host = [];
    for (const o of outs) host.push((await b.download(o)).data);
    return host;
  };
  const whole = await runOnce();
  b.rt.bindingLimit = 16384; // one sample of x is 8192 bytes: chunks of 2 samples (of the concat output: 1)
  const split = await runOnce();
  whole.forEach((v, i) => assert.deepEqual(split[i], v, `op ${i}: split vs whole`));
  b.destroy();
});

gpuTest(`webgpu [${runtimeName}]: upsampleNearest, attention and the SiLU pre-op match plain TypeScript`, async () => {
  const b = await gpu();
  // Nearest upsampling.
  for (const [shape, r] of [[[2, 3, 5, 7], 2], [[1, 5, 3, 3], 3], [[1, 2, 4, 4], 1]] as [number[], number][]) {
    const x = rand(shape);
    const [n, c, hh, ww] = shape;
    const want = new Float32Array(n * c * hh * r * ww * r);
    for (let p = 0; p < n * c; p++)
      for (let y = 0; y < hh * r; y++)
        for (let xx = 0; xx < ww * r; xx++) want[(p * hh * r + y) * ww * r + xx] = x.data[(p * hh + Math.floor(y / r)) * ww + Math.floor(xx / r)];
    const got = await b.download(b.upsampleNearest(b.upload(x), r));
    assert.deepEqual(got.shape, [n, c, hh * r, ww * r]);
    assert.deepEqual(got.data, want, `upsampleNearest ${shape} r=${r}`);
  }
  // Attention.
  for (const [n, c, hh, ww] of [[1, 4, 3, 3], [2, 7, 5, 3], [1, 33, 6, 6]]) {
    const [q, k, v] = [rand([n, c, hh, ww]), rand([n, c, hh, ww]), rand([n, c, hh, ww])];
    const t = hh * ww;
    const want = new Float32Array(n * c * t);
    for (let s = 0; s < n; s++) {
      for (let i = 0; i < t; i++) {
        const logits = new Float64Array(t);
        for (let j = 0; j < t; j++) {
          let dot = 0;
          for (let ch = 0; ch < c; ch++) dot += q.data[(s * c + ch) * t + i] * k.data[(s * c + ch) * t + j];
          logits[j] = dot / Math.sqrt(c);
        }
        const mx = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - mx));
        const sum = e.reduce((a, x) => a + x, 0);
        for (let ch = 0; ch < c; ch++) {
          let acc = 0;
          for (let j = 0; j < t; j++) acc += (e[j] / sum) * v.data[(s * c + ch) * t + j];
          want[(s * c + ch) * t + i] = acc;
        }
      }
    }
    const got = await b.download(b.attention(b.upload(q), b.upload(k), b.upload(v)));
    const err = relL2(got.data, want);
    assert.ok(err <= FAST_F32_VS_JS, `attention [${n}, ${c}, ${hh}, ${ww}]: relative L2 ${err}`);
  }
  // SiLU as the pre-op activation (the VAE's GroupNorm + SiLU), fused into conv3x3 and on its own.
  const [n, c, hh, ww, co] = [2, 8, 5, 6, 3];
  const [xh, wh] = [rand([n, c, hh, ww]), rand([co, c, 3, 3], 0.3)];
  const normed = new Float32Array(xh.data.length);
  const size = (c / 2) * hh * ww;
  for (let g = 0; g < n * 2; g++) {
    const seg = xh.data.subarray(g * size, (g + 1) * size);
    const mean = seg.reduce((a, v) => a + v, 0) / size;
    const vr = seg.reduce((a, v) => a + (v - mean) ** 2, 0) / size;
    seg.forEach((v, i) => (normed[g * size + i] = silu((v - mean) / Math.sqrt(vr + 1e-6))));
  }
  const pre = { norm: "group", groups: 2, eps: 1e-6, act: "silu" } as unknown as NormPreOp;
  const x = b.upload(xh);
  const direct = await b.download(b.normalize(x, pre));
  assert.ok(relL2(direct.data, normed) <= FAST_F32_VS_JS, `normalize with SiLU: ${relL2(direct.data, normed)}`);
  const js = new JsBackend();
  const want = (await js.download(js.conv3x3(js.upload({ shape: xh.shape, data: normed }), js.upload(wh), null))).data;
  const fused = await b.download(b.conv3x3(x, b.upload(wh), null, pre));
  assert.ok(relL2(fused.data, want) <= FAST_F32_VS_JS, `conv3x3 with a GroupNorm + SiLU pre-op: ${relL2(fused.data, want)}`);
  assert.ok(Math.abs(gelu(1) - 0.8413447460685429) < 1e-12); // the js GELU the other tests compare with
});

gpuTest(`webgpu [${runtimeName}]: a WebGPU validation error becomes an exception naming the op and shape`, async () => {
  const b = await createWebGpuBackend();
  const x = b.upload(rand([1, 4, 5, 5]));
  const w = b.upload(rand([6, 4, 3, 3]));
  (w as unknown as { buffer: GPUBuffer }).buffer.destroy(); // the weight's memory vanishes under the backend
  const y = b.conv3x3(x, w, null);
  await assert.rejects(b.download(y), (e: Error) => {
    assert.match(e.message, /conv3x3 \[1, 4, 5, 5\]/);
    assert.match(e.message, /validation/i);
    return true;
  });
  b.destroy();
});

gpuTest(`webgpu [${runtimeName}]: a lost device is reported as WebGpuDeviceLostError`, async () => {
  const b = await createWebGpuBackend();
  const x = b.upload(rand([1, 4, 5, 5]));
  b.rt.device.destroy(); // what a driver reset or an unplugged GPU looks like to the page
  await new Promise((r) => setTimeout(r, 50));
  const err = await (async () => {
    try {
      await b.download(b.add(x, x));
    } catch (e) {
      return e as Error;
    }
    return null;
  })();
  assert.ok(err instanceof WebGpuDeviceLostError, `expected a device-lost error, got ${err}`);
  assert.equal((err as WebGpuDeviceLostError).deviceLost, true);
  assert.match(err!.message, /device lost/);
});

gpuTest(`webgpu [${runtimeName}]: repeated forwards reuse pooled buffers, give identical results, and match PyTorch`, async () => {
  const b = await createWebGpuBackend();
  const base = `${fixturesDir}forward_odd`;
  const model = await loadModel(`${base}_weights.safetensors`, { backend: b });
  const inputs = await readSafetensorsFile(`${base}_inputs.safetensors`);
  const want = (await readSafetensorsFile(`${base}_out.safetensors`)).getF32("out");
  const x = { shape: [...inputs.tensors.get("x")!.shape], data: inputs.getF32("x") };
  const sizes: number[] = [];
  let first: Float32Array | null = null;
  for (let i = 0; i < 3; i++) {
    const out = await model.forward(x, inputs.getF32("t"), inputs.getF32("y"));
    first ??= out.data;
    assert.deepEqual(out.data, first, `forward ${i}`);
    sizes.push(b.rt.allocatedBytes);
  }
  assert.ok(relL2(first!, want) <= FAST_F32_VS_JS, `vs PyTorch: ${relL2(first!, want)}`);
  assert.equal(sizes[2], sizes[1], `GPU memory grew after the first forward: ${sizes.join(", ")}`);
  b.destroy();
});

if (!run) {
  test(`webgpu [${runtimeName}]: without an adapter the backend is reported unavailable, with the reason, and never picked`, async () => {
    assert.ok(why && why.length > 0);
    const { listBackends } = await import("../src/backend/registry.ts");
    const entry = (await listBackends()).find((e) => e.name === "webgpu");
    assert.deepEqual(entry, { name: "webgpu", available: false, why });
    await assert.rejects(createBackend("webgpu"), (e: Error) => e.message.includes("cannot run here") && e.message.includes(why!));
    assert.notEqual((await createBackend("auto")).backend.name, "webgpu");
  });
}

// bench/gpu must not rot: its --dry mode (tiny model, software adapter) runs end to end under Deno.
if (runtimeName === "deno") {
  test("bench/gpu --dry validates, times and prints its tables (and JSON)", () => {
    const { exe, args } = runtimeCommand("bench/gpu.bench.ts");
    const r = spawnSync(exe, [...args, "--dry", "--json"], { encoding: "utf8", env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? "/tmp" } });
    assert.equal(r.status, 0, r.stderr);
    const out = r.stdout;
    console.log(out.split("\n").filter((l) => !l.startsWith("{")).join("\n"));
    assert.match(out, /validation: dry f32: relative L2 vs wasm \S+ \(<= 0.0001\)/);
    assert.match(out, /\| model \| precision \| batch \| ms \| images\/s \|/);
    assert.match(out, /\| dry \| f32 \| 1 \| [\d.]+ \| [\d.]+ \|/);
    assert.match(out, /\| dry \| f32 \| 2 \| [\d.]+ \| [\d.]+ \|/);
    assert.match(out, /CPU vs GPU/);
    assert.match(out, /per-kernel GPU time/);
    const json = JSON.parse(out.trim().split("\n").pop()!);
    assert.equal(json.bench, "gpu");
    assert.ok(json.rows.length >= 2 && json.rows.every((row: { imgPerS: number }) => row.imgPerS > 0));
  });
}

if (runtimeName === "deno") {
  test("dic forward --backend webgpu as a Deno process matches PyTorch", () => {
    const dir = mkdtempSync(join(tmpdir(), "dic-webgpu-"));
    const out = join(dir, "out.safetensors");
    const { exe, args } = runtimeCommand("sdk/bin.ts");
    const r = spawnSync(exe, [...args, "forward", "--model", `${fixturesDir}forward_tiny_weights.safetensors`, "--inputs", `${fixturesDir}forward_tiny_inputs.safetensors`,
      "--out", out, "--backend", "webgpu"], { encoding: "utf8", env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? "/tmp" } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /webgpu: WGSL kernels/);
    return (async () => {
      const got = (await readSafetensorsFile(out)).getF32("out");
      const want = (await readSafetensorsFile(`${fixturesDir}forward_tiny_out.safetensors`)).getF32("out");
      const err = relL2(got, want);
      console.log(`webgpu [deno]: dic forward --backend webgpu: relative L2 vs PyTorch ${err.toExponential(2)}`);
      assert.ok(err <= FAST_F32_VS_JS, `relative L2 ${err}`);
    })();
  });
}

gpuTest(`webgpu [${runtimeName}]: generate() continues on wasm when the device is lost mid-run, nothing lost`, async () => {
  const weights = `${fixturesDir}forward_tiny_weights.safetensors`;
  const b = await createWebGpuBackend();
  const onGpu = await loadModel(weights, { backend: b });
  const onWasm = await loadModel(weights, { backend: "wasm" });
  const opts = { labels: [1, 2], steps: 6, sampler: "ddim" as const, seed: 11 };
  const reference = await generate({ ...opts, model: onWasm });
  const lostAt = 3;
  const r = await generate({
    ...opts, model: onGpu, fallbackOnDeviceLoss: true,
    onProgress: (p) => {
      if (p.step === lostAt - 1) b.rt.device.destroy(); // the device disappears between steps
    },
  });
  assert.ok(r.deviceLost, "the result reports the lost device");
  assert.equal(r.deviceLost!.step, lostAt);
  assert.match(r.deviceLost!.continuedOn, /^wasm/);
  assert.match(r.backend, /wasm/);
  const err = relL2(r.latents.data, reference.latents.data);
  console.log(`webgpu [${runtimeName}]: device lost before step ${lostAt}, finished on wasm: relative L2 vs an all-wasm run ${err.toExponential(2)}`);
  assert.ok(err <= FAST_F32_VS_JS, `relative L2 ${err}`);
  // Without the option the loss is the caller's error.
  const b2 = await createWebGpuBackend();
  const m2 = await loadModel(weights, { backend: b2 });
  await assert.rejects(generate({ ...opts, model: m2, fallbackOnDeviceLoss: false, onProgress: () => b2.rt.device.destroy() }), WebGpuDeviceLostError);
});

test(`f16 [${runtimeName}]: binary16 conversion (src/f16.ts) rounds to nearest even, keeps signed zeros, subnormals and infinities`, () => {
  const cases: [number, number][] = [[0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e9, 0x7c00],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [2 ** -14, 0x0400], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
    [0.1, 0x2e66], [Infinity, 0x7c00], [-Infinity, 0xfc00]];
  for (const [v, bits] of cases) assert.equal(toHalf(v), bits, `toHalf(${v})`);
  assert.ok(Number.isNaN(fromHalf(toHalf(NaN))));
  for (let h = 0; h < 0x7c00; h += 7) assert.equal(toHalf(fromHalf(h)), h, `round trip of 0x${h.toString(16)}`);
});

gpuTest(`webgpu [${runtimeName}]: the f16 path (shader-f16) matches js within the f16 tolerance, or says why it cannot run`, async () => {
  const b32 = await gpu();
  const has = b32.rt.device.features.has("shader-f16") || (await webGpuAdapterFacts())?.f16;
  if (!has) {
    await assert.rejects(createWebGpuBackend({ f16: true }), /shader-f16/);
    console.log(`webgpu [${runtimeName}]: f16 not run: this adapter has no shader-f16 (checked that asking for it fails clearly)`);
    return;
  }
  for (const path of ["rows", "gemm"] as const) {
    const b = await createWebGpuBackend({ f16: true, conv3x3: path });
    assert.match(b.description, /f16/);
    const base = `${fixturesDir}forward_odd`;
    const model = await loadModel(`${base}_weights.safetensors`, { backend: b });
    const inputs = await readSafetensorsFile(`${base}_inputs.safetensors`);
    const want = (await readSafetensorsFile(`${base}_out.safetensors`)).getF32("out");
    const out = await model.forward({ shape: [...inputs.tensors.get("x")!.shape], data: inputs.getF32("x") }, inputs.getF32("t"), inputs.getF32("y"));
    const err = relL2(out.data, want);
    console.log(`webgpu [${runtimeName}]: f16 forward (odd config, conv3x3 ${path}) relative L2 vs PyTorch ${err.toExponential(2)}`);
    assert.ok(err <= F16_VS_JS, `f16 ${path}: relative L2 ${err}`);
    assert.ok(err > 1e-6, `f16 ${path}: relative L2 ${err} is f32-small: is f16 storage really on?`);
    b.destroy();
  }
});
